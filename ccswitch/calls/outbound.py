"""The legs we place: INVITEs to agents and vendor trunks (we are the UAC), and probes.

:class:`OutboundLegs` rings a target when the engine says ``Ring``: it opens a media
port, offers both G.711 laws (the caller's first), follows the responses
(ringing, answer, failure, a digest challenge from a vendor answered once), and
tells the engine through ``feed``. An INVITE that is never answered reports a 408,
one that cannot be sent reports ``AgentSendFailed``. It also sends the OPTIONS
probes the engine asks for, to vendors and to agents it cannot reach, and the in-dialog
OPTIONS keepalives to answered vendor legs.
"""

from __future__ import annotations

import secrets
from typing import Callable

from twisted.logger import Logger

from ccswitch.calls.legs import (
    Call, CallTable, LegRole, LegState, OutLeg, leg_event, payload_type,
)
from ccswitch.calls.signalling import ALLOW, SDP, Signalling
from ccswitch.clock import Clock
from ccswitch.errors import MediaError, SdpError, SipParseError
from ccswitch.media import g711
from ccswitch.media.engine import MediaEngine
from ccswitch.metrics.calls import CallMetrics
from ccswitch.model import Config
from ccswitch.routing import events as ev
from ccswitch.routing.target import Target
from ccswitch.sip.dialog import Dialog
from ccswitch.sip.digest import DigestError, authorization, choose_challenge
from ccswitch.sip.message import Request, Response, SipURI
from ccswitch.sip.sdp import build_sdp, negotiate, offer_formats, parse_sdp

log = Logger()

TELEPHONE_EVENT_PT = 101
_OFFERED = (LegState.CALLING, LegState.RINGING)  # an offer not yet answered nor withdrawn


class OutboundLegs:
    """Places and follows the agent and vendor legs of calls."""

    def __init__(self, *, clock: Clock, config: Config, media: MediaEngine,
                 metrics: CallMetrics, calls: CallTable, signalling: Signalling,
                 feed: Callable[[ev.Event], None]) -> None:
        self._clock = clock
        self.config = config
        self._media = media
        self._metrics = metrics
        self._calls = calls
        self._sig = signalling
        self._feed = feed

    def ring(self, call: Call, target: Target, uri_text: str) -> None:
        """INVITE ``target`` at ``uri_text`` on behalf of the call's caller."""
        kind, name = target.kind.value, target.id
        try:
            media = self._media.open_leg(call.id, f"{kind}:{name}")
        except MediaError as e:
            self._offer_failed(call, target, 503, str(e))
            return
        uri = SipURI.parse(uri_text)
        negotiated = call.caller.negotiated
        # Every codec the relay can bridge, the caller's first: a far end that can do it
        # answers with it and nothing is transcoded; one that cannot still picks a codec
        # and the relay translates. telephone-event only when the caller has it, since
        # events are relayed, never turned into audio.
        formats = offer_formats(
            negotiated.codec.encoding, g711.CODECS,
            TELEPHONE_EVENT_PT if negotiated.telephone_event is not None else None)
        session_id = secrets.randbelow(2**31)
        body = build_sdp(address=self.config.rtp.address, port=media.local_port,
                         formats=formats, session_id=session_id, session_version=session_id)
        caller = call.caller.invite.from_
        headers = self._sig.request_headers("INVITE", uri, caller.uri.user, caller.display)
        headers.add("Contact", self._sig.contact)
        headers.add("Allow", ALLOW)
        headers.add("User-Agent", self._sig.user_agent)
        headers.add("Content-Type", SDP)
        invite = Request(method="INVITE", uri=uri, headers=headers, body=body)
        leg = OutLeg.to(target, invite=invite, media=media)
        self._calls.add_leg(call, leg)
        self._send_invite(call, leg)
        log.info("call {call_id}: ringing {kind} {target} at {uri}", call_id=call.id,
                 kind=kind, target=name, uri=uri_text)

    def cancel(self, call: Call, target: Target) -> None:
        """Stop ringing ``target`` (CANCEL if the INVITE was sent) and free its port."""
        leg = call.legs.pop(target, None)
        if leg is not None:
            leg.move(LegState.CANCELLED)
            if leg.tx is not None:
                leg.tx.cancel()
            leg.media.close()

    def hang_up(self, call: Call, target: Target) -> None:
        """BYE the answered leg to ``target``."""
        leg = call.legs.get(target)
        if leg is not None and leg.dialog is not None and leg.state is LegState.ANSWERED:
            leg.move(LegState.ENDED)
            self._sig.send_bye(leg.dialog)

    def _send_invite(self, call: Call, leg: OutLeg) -> None:
        leg.tx = self._sig.layer.request(
            leg.invite, leg.invite.uri.host_port(),
            on_response=lambda response: self._leg_response(call, leg, response),
            on_timeout=lambda: self._leg_failed(call, leg, 408, "no answer"),
            on_send_error=(lambda: self._feed(ev.AgentSendFailed(agent_id=leg.target.id)))
            if leg.role is LegRole.AGENT else None)

    def _leg_response(self, call: Call, leg: OutLeg, response: Response) -> None:
        status = response.status
        if leg.role is LegRole.AGENT and not leg.responded:
            # Any response (100 Trying included, even after the offer was cancelled)
            # proves the phone alive; the engine decides what silence means.
            leg.responded = True
            self._feed(ev.AgentResponded(agent_id=leg.target.id))
        if status < 200:
            if status > 100 and leg.state is LegState.CALLING:
                leg.move(LegState.RINGING)
                self._feed(leg_event(call, leg, "ringing"))
            return
        if status in (401, 407) and leg.state in _OFFERED:
            if self._authenticate(call, leg, response):
                return
        if status >= 300:
            if leg.state in _OFFERED:
                self._leg_failed(call, leg, status, response.reason)
            return
        # 2xx: the first one makes the dialog; retransmissions are ACKed again.
        if leg.dialog is not None:
            self._sig.send_ack(leg.dialog, response.cseq[0])
            return
        try:
            leg.dialog = Dialog.as_uac(leg.invite, response, contact=self._sig.contact)
            self._sig.send_ack(leg.dialog, response.cseq[0])
        except SipParseError as e:
            self._leg_failed(call, leg, 502, f"answered with an unusable dialog: {e.reason}")
            return
        if leg.state not in _OFFERED:
            # Answered after we gave up on it (CANCEL crossed the 200): hang up at once.
            log.info("call {call_id}: late answer from {kind} {target}, hanging up",
                     call_id=call.id, kind=leg.role.value, target=leg.target.id)
            self._sig.send_bye(leg.dialog)
            return
        try:
            answer = parse_sdp(response.body)
            agreed = negotiate(answer, supported=g711.CODECS,
                               prefer=call.caller.negotiated.codec.encoding)
        except SdpError as e:
            self._sig.send_bye(leg.dialog)
            self._leg_failed(call, leg, 488, f"answered with unusable SDP: {e.reason}")
            return
        # An answer listing both laws lets its sender use either (RFC 3264 6.1).
        listed = {f.payload_type: f.encoding.upper() for f in answer.formats
                  if f.clock_rate == 8000 and f.encoding.upper() in g711.CODECS}
        leg.media.configure(remote=(answer.address, answer.port),
                            codec=agreed.codec.encoding, payload_type=agreed.codec.payload_type,
                            dtmf_payload_type=payload_type(agreed.telephone_event),
                            also_receive=listed)
        leg.negotiated, leg.sdp = agreed, leg.invite.body
        leg.move(LegState.ANSWERED)
        leg.answered_at = self._clock.seconds()
        self._feed(leg_event(call, leg, "answered"))

    def _authenticate(self, call: Call, leg: OutLeg, response: Response) -> bool:
        """Resend a vendor INVITE once with digest credentials; False if we cannot."""
        vendor = (self.config.dialplan.vendors.get(leg.target.id)
                  if leg.role is LegRole.VENDOR else None)
        if (vendor is None or vendor.username is None or vendor.password is None
                or leg.authenticated):
            return False
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        try:
            challenge = choose_challenge(response.headers.get_all(header))
        except DigestError as e:
            log.warn("call {call_id}: vendor {vendor} sent an unusable challenge: {reason}",
                     call_id=call.id, vendor=leg.target.id, reason=e.reason)
            return False
        invite = leg.invite
        credentials = authorization(
            challenge, method="INVITE", uri=str(invite.uri), username=vendor.username,
            password=vendor.password, cnonce=secrets.token_hex(8))
        headers = invite.headers.copy()
        headers.set("CSeq", f"{invite.cseq[0] + 1} INVITE")
        headers.set("Authorization" if response.status == 401 else "Proxy-Authorization",
                    credentials)
        leg.invite = Request(method="INVITE", uri=invite.uri, headers=headers, body=invite.body)
        leg.authenticated = True
        self._send_invite(call, leg)
        return True

    def _leg_failed(self, call: Call, leg: OutLeg, status: int, reason: str) -> None:
        if call.legs.get(leg.target) is not leg:
            return
        leg.move(LegState.ENDED)
        del call.legs[leg.target]
        leg.media.close()
        self._offer_failed(call, leg.target, status, reason)

    def _offer_failed(self, call: Call, target: Target, status: int, reason: str) -> None:
        """An offer that ended unanswered (not cancelled by us): logged with the status
        and reason (the ``agent`` or ``vendor`` field names the target), counted, and
        told to the engine."""
        kind = target.kind.value
        log.warn("call {call_id}: offer to {kind} {target} failed: {status} {reason}",
                 call_id=call.id, kind=kind, target=target.id, status=status, reason=reason,
                 **{kind: target.id})
        self._metrics.offer_failed(call.queue.name, target, status)
        self._feed(ev.LegFailed(call_id=call.id, target=target, status=status))

    # -- probes -----------------------------------------------------------

    def probe_vendor(self, vendor: str, uris: tuple[str, ...], timeout: float) -> None:
        """OPTIONS to each trunk; the vendor is alive if any trunk answers something other
        than 5xx. A trunk silent after ``timeout`` seconds counts as not answering then,
        rather than at the transaction's own 32 s timer F; when no trunk answered at all
        the result says so (the engine takes that as a dead vendor). Answers arriving
        after the round is reported are ignored."""
        results: dict[int, bool] = {}  # trunk index -> answered and alive
        answered: set[int] = set()
        reported = False

        def report() -> None:
            nonlocal reported
            if not reported:
                reported = True
                if deadline.active():
                    deadline.cancel()
                self._feed(ev.VendorProbed(vendor=vendor, ok=any(results.values()),
                                           answered=bool(answered)))

        def done(index: int, ok: bool, *, heard: bool) -> None:
            if reported or index in results:
                return
            results[index] = ok
            if heard:
                answered.add(index)
            if len(results) == len(uris):
                report()

        def expired() -> None:
            silent = [uris[i] for i in range(len(uris)) if i not in results]
            log.info("vendor {vendor}: no answer to OPTIONS within {timeout}s from {trunks}",
                     vendor=vendor, timeout=timeout, trunks=", ".join(silent))
            report()

        def send(index: int, uri: SipURI) -> None:
            self._sig.layer.request(
                self._options(uri), uri.host_port(),
                on_response=lambda r: None if r.status < 200 else done(
                    index, r.status < 500, heard=True),
                on_timeout=lambda: done(index, False, heard=False))

        deadline = self._clock.callLater(timeout, expired)
        for index, uri_text in enumerate(uris):
            send(index, SipURI.parse(uri_text))

    def keepalive(self, call: Call, leg: OutLeg, timeout: float) -> None:
        """In-dialog OPTIONS to an answered vendor leg: 481 (the far end no longer knows
        the dialog), 408 or no final answer within ``timeout`` seconds reports the leg lost
        while it is still answered; any other answer (200, 405 ...) says it is alive."""
        dialog = leg.dialog
        if dialog is None:
            return
        try:
            options = dialog.request("OPTIONS", user_agent=self._sig.user_agent)
            destination = dialog.destination()
        except SipParseError as e:
            log.warn("call {call_id}: no keepalive to vendor {vendor}: unusable route "
                     "({reason})", call_id=call.id, vendor=leg.target.id, reason=e.reason)
            return
        settled = False

        def settle(cause: str | None) -> None:
            nonlocal settled
            if settled:
                return
            settled = True
            if deadline.active():
                deadline.cancel()
            if cause is not None and leg.state is LegState.ANSWERED:
                self._feed(ev.VendorLegLost(call_id=call.id, vendor=leg.target.id, cause=cause))

        def answered(response: Response) -> None:
            if response.status >= 200:
                settle(f"options_{response.status}" if response.status in (408, 481) else None)

        deadline = self._clock.callLater(timeout, settle, "options_timeout")
        self._sig.layer.request(options, destination, on_response=answered,
                                on_timeout=lambda: settle("options_timeout"))

    def probe_agent(self, agent_id: str, uri_text: str) -> None:
        """OPTIONS to an unreachable agent's phone: any response at all (405, 404 ...)
        says it is alive; silence just waits for the engine's next probe."""
        try:
            uri = SipURI.parse(uri_text)
        except SipParseError as e:
            log.warn("agent {agent}: cannot probe {uri}: {reason}", agent=agent_id,
                     uri=uri_text, reason=e.reason)
            return
        self._sig.layer.request(
            self._options(uri), uri.host_port(),
            on_response=lambda r: self._feed(ev.AgentResponded(agent_id=agent_id)),
            on_timeout=lambda: log.debug("agent {agent}: no answer to OPTIONS",
                                         agent=agent_id))

    def _options(self, uri: SipURI) -> Request:
        headers = self._sig.request_headers("OPTIONS", uri, "ccswitch")
        headers.add("User-Agent", self._sig.user_agent)
        return Request(method="OPTIONS", uri=uri, headers=headers, body=b"")
