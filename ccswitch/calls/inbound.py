"""The caller's leg: we are the UAS for the INVITE that starts a call.

:class:`InboundLegs` is the transaction layer's TransactionUser for the node. It
validates each request, admits new calls (trust, routing, the call limits, an
SDP offer, a media port), answers BYE, CANCEL, re-INVITE, UPDATE and OPTIONS, and tells
the routing engine what happened through ``feed``. The runtime calls
:meth:`answer` and :meth:`hang_up` when the engine says so.
"""

from __future__ import annotations

import secrets
import urllib.parse
from typing import Callable

from twisted.logger import Logger

from ccswitch.calls.admission import CallAdmission, is_trusted
from ccswitch.calls.legs import (
    Call, CallerLeg, CallTable, LegState, OutLeg, caller_id, leg_event, payload_type,
    routing_call_id,
)
from ccswitch.calls.reoffer import reanswer
from ccswitch.calls.signalling import ALLOW, SDP, Signalling
from ccswitch.clock import TimeSource
from ccswitch.errors import MediaError, SdpError, SipParseError
from ccswitch.media.engine import MediaEngine
from ccswitch.metrics.calls import CallMetrics
from ccswitch.model import Config, Queue
from ccswitch.routing import events as ev
from ccswitch.routing.target import CALLER, Caller, Target
from ccswitch.sip.dialog import Dialog
from ccswitch.sip.message import Request, Response, new_tag
from ccswitch.sip.sdp import answer_formats, build_sdp, negotiate, parse_sdp
from ccswitch.sip.transaction import ServerTransaction
from ccswitch.sip.validate import check_request

log = Logger()

#: Called for a call routed to a queue but refused before it got there:
#: (the INVITE, the queue, the routing call id if one was given, why).
Rejected = Callable[[Request, Queue, "str | None", str], None]


class InboundLegs:
    """Turns requests from callers into calls and engine events."""

    def __init__(self, *, clock: TimeSource, config: Config, media: MediaEngine,
                 metrics: CallMetrics, calls: CallTable, signalling: Signalling,
                 feed: Callable[[ev.Event], None], rejected: Rejected) -> None:
        self._clock = clock
        self._config = config
        self._media = media
        self._metrics = metrics
        self._calls = calls
        self._sig = signalling
        self._feed = feed
        self._rejected = rejected
        self._admission = CallAdmission(config.sip.admission, clock)

    def reload(self, config: Config) -> None:
        """New dialplan and trusted networks; the call limits start afresh if they changed."""
        self._config = config
        if config.sip.admission != self._admission.config:
            self._admission = CallAdmission(config.sip.admission, self._clock)

    # -- TransactionUser -------------------------------------------------

    def request_received(self, request: Request, source: tuple[str, int],
                         tx: ServerTransaction) -> None:
        try:
            self._dispatch_request(request, source, tx)
        except SipParseError as e:
            log.warn("bad {method} from {source}: {reason}", method=request.method,
                     source=source, reason=e.reason)
            self._sig.reject(tx, e.status, e.reason)

    def ack_received(self, request: Request, source: tuple[str, int]) -> None:
        """ACKs for our 2xx need no action: the transaction layer stops retransmitting."""

    def cancel_received(self, invite_tx: ServerTransaction) -> None:
        call = self._calls.dialogs.get(invite_tx.request.call_id)
        if call is not None:
            self._caller_gone(call)
        if not invite_tx.final_sent:
            invite_tx.respond(487)

    def stray_response(self, response: Response, source: tuple[str, int]) -> None:
        """A 2xx retransmitted after its transaction ended: ACK it again."""
        if response.status // 100 != 2 or response.cseq[1] != "INVITE":
            return
        call = self._calls.dialogs.get(response.call_id)
        leg = call.out_leg(response.call_id) if call else None
        if leg is not None and leg.dialog is not None:
            self._sig.send_ack(leg.dialog, response.cseq[0])

    # -- what the engine asks of the caller's leg ------------------------------

    def answer(self, call: Call) -> None:
        """200 OK with our SDP; a caller that never ACKs it is hung up."""
        caller = call.caller
        if caller.state is LegState.CALLING:  # a caller who already left stays ended
            caller.move(LegState.ANSWERED)
        caller.tx.respond(200, to_tag=caller.dialog.local.tag, body=caller.sdp,
                          content_type=SDP, headers=self._sig.answer_headers(),
                          on_no_ack=lambda: self._caller_no_ack(call))

    def hang_up(self, call: Call) -> None:
        """BYE the caller (once)."""
        if not call.caller.ended:
            call.caller.move(LegState.ENDED)
            self._sig.send_bye(call.caller.dialog)

    def hang_up_and_tell(self, call: Call) -> None:
        """BYE the caller and tell the engine the caller is gone."""
        if not call.caller.ended:
            self.hang_up(call)
            self._feed(ev.CallerHungUp(call_id=call.id))

    # -- requests ---------------------------------------------------------

    def _dispatch_request(self, request: Request, source: tuple[str, int],
                          tx: ServerTransaction) -> None:
        rejection = check_request(request)
        if rejection is not None:
            log.info("{method} from {source} refused: {status} {reason}",
                     method=request.method, source=source, status=rejection.status,
                     reason=rejection.reason)
            self._sig.reject(tx, rejection.status, rejection.reason, rejection.headers)
            return
        method = request.method
        if method == "INVITE" and request.to.tag is None:
            self._new_call(request, source, tx)
        elif method == "BYE":
            self._bye(request, tx)
        elif method in ("INVITE", "UPDATE"):
            self._reoffer(request, tx)
        elif method == "OPTIONS":
            tx.respond(200, headers=[("Allow", ALLOW), ("Accept", SDP)])
        elif method in ("INFO", "NOTIFY") and request.call_id in self._calls.dialogs:
            tx.respond(200)
        elif request.to.tag is not None:
            tx.respond(481)
        else:
            self._sig.reject(tx, 405, None, headers=[("Allow", ALLOW)])

    def _new_call(self, request: Request, source: tuple[str, int],
                  tx: ServerTransaction) -> None:
        if not is_trusted(source[0], self._config.sip.trusted):
            log.warn("INVITE from untrusted source {source} refused", source=source)
            self._sig.reject(tx, 403, "Forbidden (untrusted source)")
            return
        if request.call_id in self._calls.dialogs:
            self._sig.reject(tx, 482, "Loop Detected")
            return
        dialed = urllib.parse.unquote(request.uri.user or "")  # RFC 3261 19.1.4
        queue = self._config.dialplan.route(dialed)
        if queue is None:
            log.info("no route for dialed number {dialed!r}", dialed=dialed)
            self._sig.reject(tx, 404, "No Route")
            return
        refusal = self._admission.admit(len(self._calls))
        if refusal is not None:
            self._metrics.refused(refusal.limit)
            log.info("INVITE {sip_call_id} refused: {reason}", sip_call_id=request.call_id,
                     reason=refusal.reason)
            self._sig.reject(tx, refusal.status, refusal.reason,
                             headers=[("Retry-After", str(refusal.retry_after))])
            self._rejected(request, queue, None, refusal.reason)
            return
        if not request.body:
            self._sig.reject(tx, 488, "Offer Required")
            self._rejected(request, queue, None, "no SDP offer")
            return
        try:
            offer = parse_sdp(request.body)
            negotiated = negotiate(offer)
        except SdpError as e:
            log.info("INVITE {sip_call_id} refused: {reason}", sip_call_id=request.call_id,
                     reason=e.reason)
            self._sig.reject(tx, e.status, e.reason)
            self._rejected(request, queue, None, e.reason)
            return
        dialog = Dialog.as_uas(request, local_tag=new_tag(), contact=self._sig.contact)
        call_id = routing_call_id(self._clock.seconds())
        try:
            leg = self._media.open_leg(call_id, "caller")
        except MediaError as e:
            log.error("no media port for new call: {error}", error=str(e))
            self._sig.reject(tx, 503, "No Media Ports", headers=[("Retry-After", "5")])
            self._rejected(request, queue, call_id, "no media port")
            return
        leg.configure(remote=(offer.address, offer.port), codec=negotiated.codec.encoding,
                      payload_type=negotiated.codec.payload_type,
                      dtmf_payload_type=payload_type(negotiated.telephone_event))
        session_id = secrets.randbelow(2**31)
        sdp = build_sdp(address=self._config.rtp.address, port=leg.local_port,
                        formats=answer_formats(negotiated), session_id=session_id,
                        session_version=session_id)
        call = Call(id=call_id, queue=queue, started=self._clock.seconds(), caller=CallerLeg(
            invite=request, tx=tx, media=leg, negotiated=negotiated, dialog=dialog, sdp=sdp))
        self._calls.add(call)
        caller = request.from_
        log.info("call {call_id} from {caller} to {dialed} -> queue {queue}",
                 call_id=call_id, caller=str(caller.uri), dialed=dialed, queue=queue.name)
        self._feed(ev.CallArrived(call_id=call_id, caller=caller_id(caller),
                                  dialed=dialed, queue=queue.name))

    def _bye(self, request: Request, tx: ServerTransaction) -> None:
        call = self._calls.dialogs.get(request.call_id)
        if call is None:
            tx.respond(481)
            return
        tx.respond(200)
        if request.call_id == call.caller.invite.call_id:
            self._caller_gone(call)
            return
        leg = call.out_leg(request.call_id)
        if leg is not None and leg.state is LegState.ANSWERED:
            leg.move(LegState.ENDED)
            self._feed(leg_event(call, leg, "hung_up"))

    def _reoffer(self, request: Request, tx: ServerTransaction) -> None:
        """A re-INVITE or UPDATE on any answered leg: a session refresh, hold or resume,
        or a new address or codec, answered per RFC 3264 (see :mod:`reoffer`). An offer
        we cannot take gets 488 and the session stays as it was (RFC 3261 14.2)."""
        call = self._calls.dialogs.get(request.call_id)
        leg: CallerLeg | OutLeg | None = None
        if call is not None:
            leg = call.caller if request.call_id == call.caller.invite.call_id \
                else call.out_leg(request.call_id)
        if call is None or leg is None or leg.state is not LegState.ANSWERED:
            tx.respond(481)
            return
        dialog, current = leg.dialog, leg.negotiated
        assert dialog is not None and current is not None  # set when the leg was answered
        events = leg is call.caller or call.caller.negotiated.telephone_event is not None
        headers = [("Contact", self._sig.contact), ("Allow", ALLOW)]
        if not request.body:
            # No offer: a refresh (UPDATE) or an offerless re-INVITE, which gets our
            # current SDP as the offer (its answer comes in the ACK).
            body = leg.sdp if request.method == "INVITE" else b""
            tx.respond(200, to_tag=dialog.local.tag, body=body,
                       content_type=SDP if body else None, headers=headers)
            return
        try:
            answer = reanswer(request.body, media=leg.media, local_sdp=leg.sdp,
                              address=self._config.rtp.address, current=current,
                              events=events)
        except SdpError as e:
            log.info("call {call_id}: {method} on {sip_call_id} refused: {status} {reason}",
                     call_id=call.id, method=request.method, sip_call_id=request.call_id,
                     status=e.status, reason=e.reason)
            self._sig.reject(tx, e.status, e.reason)
            return
        changed = answer.held != leg.on_hold
        leg.sdp, leg.negotiated, leg.on_hold = answer.sdp, answer.negotiated, answer.held
        tx.respond(200, to_tag=dialog.local.tag, body=answer.sdp, content_type=SDP,
                   headers=headers)
        if changed:
            leg.hold_changed_at = self._clock.seconds()
            log.info("call {call_id}: {role} {what}", call_id=call.id, role=leg.role.value,
                     what="holds" if answer.held else "resumes")
            party: Target | Caller = CALLER if isinstance(leg, CallerLeg) else leg.target
            self._feed((ev.LegHeld if answer.held else ev.LegResumed)(
                call_id=call.id, party=party))

    def _caller_gone(self, call: Call) -> None:
        """The caller hung up or cancelled: the engine is told once."""
        if not call.caller.ended:
            call.caller.move(LegState.ENDED)
            self._feed(ev.CallerHungUp(call_id=call.id))

    def _caller_no_ack(self, call: Call) -> None:
        log.warn("call {call_id}: no ACK for our 200 OK, ending the call", call_id=call.id)
        self.hang_up_and_tell(call)
