"""The back-to-back user agent: SIP legs <-> routing engine <-> media.

Each customer call has one caller leg (we are the UAS) and, while agents are
offered the call, one agent leg per offer (we are the UAC). The routing engine
decides; this adapter turns SIP into engine events and engine actions into SIP
and media operations. Nothing here blocks: every call runs on the reactor.
"""

from __future__ import annotations

import functools
import ipaddress
import urllib.parse
import secrets
import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel

from ccswitch.errors import CCSwitchError, MediaError, RecordingError, SdpError, SipParseError
from ccswitch.media import g711
from ccswitch.media.engine import MediaEngine, MediaLeg
from ccswitch.media.prompt import load_prompt
from ccswitch.metrics.registry import Metrics
from ccswitch.model import Config, Dialplan, IPNetwork, Queue, RecordingStart
from ccswitch.recording.note import CallNote, accepted, fact_for
from ccswitch.recording.recorder import CallRecorder, export_compressed
from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing.engine import RoutingEngine
from ccswitch.routing.record import CallRecord, Outcome, epoch, iso_utc
from ccswitch.routing.target import CALLER, Caller, Target, TargetKind
from ccswitch.routing.timers import TimerId
from ccswitch.sip.dialog import Dialog
from ccswitch.sip.digest import DigestError, authorization, choose_challenge
from ccswitch.sip.guard import CallAdmission
from ccswitch.sip.message import (
    Headers, NameAddr, Request, Response, SipURI, new_call_id, new_tag,
)
from ccswitch.sip.sdp import (
    MediaFormat, Negotiated, answer_formats, build_sdp, negotiate, offer_formats, parse_sdp,
)
from ccswitch.sip.transaction import ClientTransaction, ServerTransaction, TransactionLayer
from ccswitch.sip.validate import check_request
from ccswitch.state.presence import PresenceFile
from ccswitch.state.sync import SharedState

log = Logger()
# The routing engine's own log lines (Note actions) keep the engine's namespace.
routing_log = Logger(namespace="ccswitch.routing.engine")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"
SDP = "application/sdp"
TELEPHONE_EVENT_PT = 101


@attrs.define(kw_only=True, eq=False)
class CallerLeg:
    invite: Request
    tx: ServerTransaction
    media: MediaLeg
    negotiated: Negotiated
    dialog: Dialog
    sdp: bytes
    ended: bool = False
    on_hold: bool = False  # the caller's last re-INVITE said sendonly or inactive


@attrs.define(kw_only=True, eq=False)
class OutLeg:
    """A leg we place: to an in-house agent (``kind`` agent) or a vendor trunk (vendor)."""

    kind: str
    target: str  # the agent id or the vendor name
    invite: Request
    media: MediaLeg
    tx: ClientTransaction | None = None
    dialog: Dialog | None = None
    state: str = "calling"  # calling -> ringing -> answered -> ended | cancelled
    authenticated: bool = False  # the INVITE was resent with credentials once
    responded: bool = False  # the far end sent some response (it is alive)
    answered_at: float = 0.0

    @property
    def key(self) -> str:
        return leg_key(self.kind, self.target)


def leg_key(kind: str, target: str) -> str:
    """Where a call keeps a leg: agent ids as they are, vendors as ``vendor:<name>``."""
    return target if kind == AGENT else f"{VENDOR}:{target}"


AGENT = "agent"
VENDOR = "vendor"


@attrs.define(kw_only=True, eq=False)
class Call:
    id: str
    queue: Queue
    started: float
    caller: CallerLeg
    legs: dict[str, OutLeg] = attrs.Factory(dict)
    recorder: CallRecorder | None = None
    recording_error: str | None = None
    recording_pauses: list[list[float | None]] = attrs.Factory(list)  # [from, to] epoch s
    recording_started: float | None = None
    note: CallNote | None = None  # what a crash recovery needs, from the 200 OK on


class CallController:
    """Implements the transaction layer's TransactionUser for the whole node."""

    def __init__(self, *, clock: IReactorTime, config: Config, engine: RoutingEngine,
                 media: MediaEngine, metrics: Metrics,
                 defer_to_thread: Callable[..., Any] | None = None,
                 on_record: Callable[[dict[str, Any]], None] | None = None,
                 presence: PresenceFile | None = None) -> None:
        self._clock = clock
        self._config = config
        self._engine = engine
        self._media = media
        self._metrics = metrics
        self._defer_to_thread = defer_to_thread
        self._on_record = on_record  # gets every finished call's record (the CDR sink)
        self._layer: TransactionLayer | None = None
        self._calls: dict[str, Call] = {}
        self._dialogs: dict[str, Call] = {}  # SIP Call-ID (caller's or ours) -> call
        self._timers: dict[TimerId, IDelayedCall] = {}
        self._pending: deque[ev.Event | Dialplan] = deque()
        self._feeding = False
        self._trusted: tuple[IPNetwork, ...] = config.sip.trusted
        self._admission = CallAdmission(config.sip.admission, clock)
        self._media_watch: IDelayedCall | None = None
        self._presence = presence  # where agent presence is kept across restarts
        self._presence_save: IDelayedCall | None = None
        self._saved_presence: dict[str, tuple[str, bool]] | None = None
        self._presence_seq = self._presence_written = 0
        self._presence_lock = threading.Lock()
        self._shared: SharedState | None = None
        self._held_overflow: dict[tuple[str, str], act.OverflowFired] = {}
        host = config.sip.advertised_host
        self._contact = f"<sip:ccswitch@{_host(host)}:{config.sip.listen_port}>"
        self._user_agent = config.sip.user_agent

    def submit(self, event: ev.Event) -> None:
        """Hand an event from another part of the node (the shared state) to the engine."""
        self._feed(event)

    def share(self, shared: SharedState) -> None:
        """Coordinate with other nodes through a shared state store (before attach)."""
        self._shared = shared

    # -- wiring -----------------------------------------------------------

    def attach(self, layer: TransactionLayer, listen_port: int) -> None:
        """Bind to the transaction layer once the SIP port is listening."""
        self._layer = layer
        self._contact = f"<sip:ccswitch@{_host(self._config.sip.advertised_host)}:{listen_port}>"
        if self._presence is not None:
            saved = self._presence.load()
            for action in self._engine.restore(saved):
                self._execute(action)
            log.info("agent presence restored from {path} ({count} agent(s))",
                     path=str(self._presence.path), count=len(saved))
        self._feed(ev.NodeStarted())
        if self._shared is not None:
            self._shared.start()
        if self._config.rtp.timeout > 0:
            self._watch_media()

    def _watch_media(self) -> None:
        """Every second: a caller (not on hold) or an answered agent/vendor that has sent no
        RTP for ``rtp.timeout`` seconds ends its call."""
        timeout = self._config.rtp.timeout
        now = self._clock.seconds()
        for call in list(self._calls.values()):
            caller = call.caller
            if caller.ended:
                continue
            silent: Target | Caller | None = None
            if not caller.on_hold and now - (caller.media.last_packet_at or call.started) > timeout:
                silent = CALLER
            for leg in call.legs.values():
                if leg.state == "answered" and now - (
                        leg.media.last_packet_at or leg.answered_at) > timeout:
                    silent = silent or Target(TargetKind(leg.kind), leg.target)
            if silent is not None:
                self._feed(ev.MediaTimedOut(call_id=call.id, leg=silent))
        self._media_watch = self._clock.callLater(1.0, self._watch_media)

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    # -- TransactionUser -------------------------------------------------

    def request_received(self, request: Request, source: tuple[str, int],
                         tx: ServerTransaction) -> None:
        try:
            self._dispatch_request(request, source, tx)
        except SipParseError as e:
            log.warn("bad {method} from {source}: {reason}", method=request.method,
                     source=source, reason=e.reason)
            self._reject(tx, e.status, e.reason)

    def ack_received(self, request: Request, source: tuple[str, int]) -> None:
        """ACKs for our 2xx need no action: the transaction layer stops retransmitting."""

    def cancel_received(self, invite_tx: ServerTransaction) -> None:
        call = self._dialogs.get(invite_tx.request.call_id)
        if call is not None and not call.caller.ended:
            call.caller.ended = True
            self._feed(ev.CallerHungUp(call_id=call.id))
        if not invite_tx.final_sent:
            invite_tx.respond(487)

    def stray_response(self, response: Response, source: tuple[str, int]) -> None:
        """A 2xx retransmitted after its transaction ended: ACK it again."""
        if response.status // 100 != 2 or response.cseq[1] != "INVITE":
            return
        call = self._dialogs.get(response.call_id)
        leg = _out_leg_for(call, response.call_id) if call else None
        if leg is not None and leg.dialog is not None:
            self._send_ack(leg.dialog, response.cseq[0])

    # -- requests ---------------------------------------------------------

    def _dispatch_request(self, request: Request, source: tuple[str, int],
                          tx: ServerTransaction) -> None:
        rejection = check_request(request)
        if rejection is not None:
            log.info("{method} from {source} refused: {status} {reason}",
                     method=request.method, source=source, status=rejection.status,
                     reason=rejection.reason)
            self._reject(tx, rejection.status, rejection.reason, rejection.headers)
            return
        method = request.method
        if method == "INVITE" and request.to.tag is None:
            self._new_call(request, source, tx)
        elif method == "BYE":
            self._bye(request, tx)
        elif method == "INVITE":
            self._reinvite(request, tx)
        elif method == "OPTIONS":
            tx.respond(200, headers=[("Allow", ALLOW), ("Accept", SDP)])
        elif method in ("INFO", "UPDATE", "NOTIFY") and request.call_id in self._dialogs:
            tx.respond(200)
        elif request.to.tag is not None:
            tx.respond(481)
        else:
            self._reject(tx, 405, None, headers=[("Allow", ALLOW)])

    def _new_call(self, request: Request, source: tuple[str, int],
                  tx: ServerTransaction) -> None:
        if not self._is_trusted(source[0]):
            log.warn("INVITE from untrusted source {source} refused", source=source)
            self._reject(tx, 403, "Forbidden (untrusted source)")
            return
        if request.call_id in self._dialogs:
            self._reject(tx, 482, "Loop Detected")
            return
        dialed = urllib.parse.unquote(request.uri.user or "")  # RFC 3261 19.1.4
        queue = self._config.dialplan.route(dialed)
        if queue is None:
            log.info("no route for dialed number {dialed!r}", dialed=dialed)
            self._reject(tx, 404, "No Route")
            return
        refusal = self._admission.admit(len(self._calls))
        if refusal is not None:
            self._metrics.overload_refused.labels(limit=refusal.limit).inc()
            log.info("INVITE {sip_call_id} refused: {reason}", sip_call_id=request.call_id,
                     reason=refusal.reason)
            self._reject(tx, refusal.status, refusal.reason,
                         headers=[("Retry-After", str(refusal.retry_after))])
            self._record_rejected(request, queue)
            return
        if not request.body:
            self._reject(tx, 488, "Offer Required")
            self._record_rejected(request, queue)
            return
        try:
            offer = parse_sdp(request.body)
            negotiated = negotiate(offer)
        except SdpError as e:
            log.info("INVITE {sip_call_id} refused: {reason}", sip_call_id=request.call_id,
                     reason=e.reason)
            self._reject(tx, e.status, e.reason)
            self._record_rejected(request, queue)
            return
        dialog = Dialog.as_uas(request, local_tag=new_tag(), contact=self._contact)
        call_id = _routing_call_id(self._clock.seconds())
        try:
            leg = self._media.open_leg(call_id, "caller")
        except MediaError as e:
            log.error("no media port for new call: {error}", error=str(e))
            self._reject(tx, 503, "No Media Ports", headers=[("Retry-After", "5")])
            self._record_rejected(request, queue, call_id)
            return
        leg.configure(remote=(offer.address, offer.port), codec=negotiated.codec.encoding,
                      payload_type=negotiated.codec.payload_type,
                      dtmf_payload_type=_pt(negotiated.telephone_event))
        session_id = secrets.randbelow(2**31)
        sdp = build_sdp(address=self._config.rtp.address, port=leg.local_port,
                        formats=answer_formats(negotiated), session_id=session_id,
                        session_version=session_id)
        call = Call(id=call_id, queue=queue, started=self._clock.seconds(), caller=CallerLeg(
            invite=request, tx=tx, media=leg, negotiated=negotiated, dialog=dialog, sdp=sdp))
        self._calls[call_id] = call
        self._dialogs[request.call_id] = call
        caller = request.from_
        log.info("call {call_id} from {caller} to {dialed} -> queue {queue}",
                 call_id=call_id, caller=str(caller.uri), dialed=dialed, queue=queue.name)
        self._feed(ev.CallArrived(call_id=call_id, caller=_caller_id(caller),
                                  dialed=dialed, queue=queue.name))

    def _bye(self, request: Request, tx: ServerTransaction) -> None:
        call = self._dialogs.get(request.call_id)
        if call is None:
            tx.respond(481)
            return
        tx.respond(200)
        if request.call_id == call.caller.invite.call_id:
            if not call.caller.ended:
                call.caller.ended = True
                self._feed(ev.CallerHungUp(call_id=call.id))
            return
        leg = _out_leg_for(call, request.call_id)
        if leg is not None and leg.state == "answered":
            leg.state = "ended"
            self._feed(_leg_event(call, leg, "hung_up"))

    def _reinvite(self, request: Request, tx: ServerTransaction) -> None:
        """Session refresh or hold from either side: keep media anchored, answer as before."""
        call = self._dialogs.get(request.call_id)
        if call is None:
            tx.respond(481)
            return
        if request.call_id == call.caller.invite.call_id:
            if request.body:
                try:
                    direction = parse_sdp(request.body).direction
                except SdpError:
                    direction = "sendrecv"
                call.caller.on_hold = direction in ("sendonly", "inactive")
            tx.respond(200, to_tag=call.caller.dialog.local.tag, body=call.caller.sdp,
                       content_type=SDP, headers=[("Contact", self._contact)])
            return
        # An agent or vendor leg keeps the media first agreed (RFC 3261 14.1: after a
        # non-2xx answer to a re-INVITE the session stays as it was).
        log.info("call {call_id}: re-INVITE on {sip_call_id} refused: 488",
                 call_id=call.id, sip_call_id=request.call_id)
        self._reject(tx, 488, "Not Acceptable Here")

    # -- engine -----------------------------------------------------------

    def reload(self, config: Config) -> None:
        """Put a reloaded config in force (dialplan, trusted networks, compressed copies).

        Calls in progress keep going; see RoutingEngine.reload for what changes when.
        """
        self._config = config
        self._trusted = config.sip.trusted
        self._save_presence_soon()
        if config.sip.admission != self._admission.config:
            self._admission = CallAdmission(config.sip.admission, self._clock)
        self._feed(config.dialplan)

    # -- operator control (the HTTP API) -------------------------------------

    def control(self, event: ev.Event) -> None:
        """Apply an operator's event (agent login, pause, ...) now; the engine's
        CCSwitchError (unknown agent, not allowed in this state) goes to the caller and
        changes nothing."""
        actions = self._engine.handle(event)
        self._feeding = True
        try:
            self._execute_all(actions)
        finally:
            self._feeding = False
        if self._pending:
            self._feed(self._pending.popleft())
        self._shared_changed()

    def live_calls(self) -> list[dict[str, Any]]:
        """The calls in progress, oldest first, as JSON-ready dicts."""
        now = self._clock.seconds()
        out = []
        for call in self._calls.values():
            info = self._engine.view.calls.get(call.id)
            if info is None:
                continue  # ending right now
            record, state = info.record, str(info.state)
            out.append({
                "call_id": call.id, "queue": record.queue, "state": state,
                "caller": record.caller, "dialed": record.dialed,
                "agent_id": record.agent_id, "route": str(record.route),
                "vendor": record.vendor, "overflow_reason": record.overflow_reason,
                "seconds": round(now - record.arrived_at, 3),
                "recording": self._recording_state(call),
            })
        return out

    def _recording_state(self, call: Call) -> str:
        if call.recording_started is None:
            return "not_started"  # recordings.start after_notice: the notice still plays
        if call.recorder is None or call.recording_error is not None:
            return "failed"
        return "paused" if call.recording_pauses and call.recording_pauses[-1][1] is None \
            else "recording"

    def pause_recording(self, call_id: str, paused: bool) -> str:
        """PCI pause/resume: silence on both channels while paused; the pauses go into the
        sidecar. Returns the new recording state; KeyError for an unknown call,
        CCSwitchError when the call has no working recording."""
        call = self._calls[call_id]
        tap = self._media.tap_for(call.caller.media)
        if tap is None or call.recorder is None:
            raise RecordingError(f"call {call_id} has no recording in progress")
        now = self._clock.seconds()
        was_paused = tap.paused
        tap.paused = paused
        if paused and not was_paused:
            call.recording_pauses.append([now, None])
        elif not paused and was_paused:
            call.recording_pauses[-1][1] = now
        if call.note is not None and paused != was_paused:
            call.note.add("paused" if paused else "resumed", now)
        log.info("call {call_id}: recording {what}", call_id=call_id,
                 what="paused" if paused else "resumed")
        return self._recording_state(call)

    def _feed(self, item: ev.Event | Dialplan) -> None:
        """Hand an event (or a new dialplan) to the engine; items raised while executing
        actions are queued behind it."""
        self._pending.append(item)
        if self._feeding:
            return
        self._feeding = True
        try:
            while self._pending:
                item = self._pending.popleft()
                try:
                    actions = (self._engine.reload(item) if isinstance(item, Dialplan)
                               else self._engine.handle(item))
                except CCSwitchError as e:
                    log.warn("engine refused {event}: {error}", event=item, error=str(e))
                    continue
                self._execute_all(actions)
        finally:
            self._feeding = False
        if self._shared is not None:
            self._shared.changed()

    def _execute_all(self, actions: list[act.Action]) -> None:
        """Carry out the engine's actions in order; one failing is logged, not fatal."""
        for action in actions:
            try:
                self._execute(action)
            except Exception:
                log.failure("action {action} failed", action=action)

    def _execute(self, action: act.Action) -> None:
        if isinstance(action, act.StartTimer):
            self._start_timer(action.timer_id, action.delay)
        elif isinstance(action, act.CancelTimer):
            timer = self._timers.pop(action.timer_id, None)
            if timer is not None and timer.active():
                timer.cancel()
        elif isinstance(action, act.AgentStateChanged):
            log.info("agent {agent} in {group}: {old} -> {new}", agent=action.agent_id,
                     group=action.group, old=str(action.old), new=str(action.new))
            self._save_presence_soon()
        elif isinstance(action, act.CallFinished):
            self._finish(action.record)
        elif isinstance(action, act.OverflowFired):
            if self._shared is not None and self._shared.up:
                self._held_overflow[(action.call_id, action.vendor)] = action  # on grant
            else:
                self._count_overflow(action)
        elif isinstance(action, act.OverflowUnavailable):
            self._metrics.overflow_failed.labels(queue=action.queue, vendor=action.vendor,
                                                 cause=action.cause).inc()
            log.info("call {call_id}: vendor {vendor} cannot take it ({cause})",
                     call_id=action.call_id, vendor=action.vendor, cause=action.cause)
        elif isinstance(action, act.VendorHealthChanged):
            log.info("vendor {vendor}: {old} -> {new}", vendor=action.vendor,
                     old=str(action.old), new=str(action.new))
        elif isinstance(action, act.ProbeVendor):
            self._probe(action.vendor, action.uris)
        elif isinstance(action, act.ProbeAgent):
            self._probe_agent(action.agent_id, action.uri)
        elif isinstance(action, act.Note):
            routing_log.emit(LogLevel.lookupByName(action.level.value), action.format,
                             **dict(action.fields))
        else:
            call = self._calls.get(action.call_id)
            if call is None:
                log.warn("action {action} for unknown call", action=action)
                return
            self._execute_call_action(call, action)

    def _execute_call_action(self, call: Call, action: act.Action) -> None:
        self._note_action(call, action)
        caller = call.caller
        if isinstance(action, act.AnswerCaller):
            caller.tx.respond(200, to_tag=caller.dialog.local.tag, body=caller.sdp,
                              content_type=SDP, headers=self._answer_headers(),
                              on_no_ack=lambda: self._caller_no_ack(call))
            if self._config.recordings.start is RecordingStart.ANSWER:
                self._start_recording(call)
        elif isinstance(action, act.PlayAnnouncement):
            prompt = load_prompt(Path(action.path), caller.negotiated.codec.encoding)
            caller.media.play(prompt, on_done=lambda: self._announced(call))
        elif isinstance(action, act.StartMusicOnHold):
            if action.path is not None:
                caller.media.play(load_prompt(Path(action.path),
                                              caller.negotiated.codec.encoding), loop=True)
        elif isinstance(action, act.StopMusicOnHold):
            caller.media.stop_playing()
        elif isinstance(action, act.Ring):
            if self._shared is None:
                self._ring(call, action.target.kind.value, action.target.id, action.uri)
            elif action.target.is_agent:
                self._reserve_and_ring(call, action)
            else:
                self._acquire_and_ring(call, action)
        elif isinstance(action, act.Cancel):
            leg = call.legs.pop(_action_key(action), None)
            if leg is not None:
                leg.state = "cancelled"
                if leg.tx is not None:
                    leg.tx.cancel()
                leg.media.close()
        elif isinstance(action, act.Bridge):
            leg = call.legs[_action_key(action)]
            self._media.bridge(caller.media, leg.media)
            if call.recorder is not None:
                self._media.record_agent(leg.media, call.recorder)
        elif isinstance(action, act.HangupCaller):
            if not caller.ended:
                caller.ended = True
                self._send_bye(caller.dialog)
        elif isinstance(action, act.Hangup):
            leg = call.legs.get(_action_key(action))
            if leg is not None and leg.dialog is not None and leg.state == "answered":
                leg.state = "ended"
                self._send_bye(leg.dialog)
        else:
            log.warn("unhandled action {action}", action=action)

    def _note_action(self, call: Call, action: act.Action) -> None:
        """Keep the call note in step with the engine: opened before the caller's 200 OK
        (so every answered call leaves a record after a crash), one fact per queue entry,
        offer and answer."""
        if call.note is None and not isinstance(action, act.AnswerCaller):
            return  # not answered yet, or the disk refused the note (logged)
        info = self._engine.view.calls.get(call.id)
        if info is None:
            return  # the call ended in this batch: its record is on its way
        record = info.record
        now = self._clock.seconds()
        if isinstance(action, act.AnswerCaller):
            call.note = CallNote.open(self._config.recordings.directory, call.id, now,
                                      accepted(record, call.caller.invite.call_id))
            return
        fact = fact_for(action, record)
        if fact is not None and call.note is not None:
            call.note.add(fact[0], now, **fact[1])

    def _save_presence_soon(self) -> None:
        """Save agent presence once, after the current burst of changes."""
        if (self._presence is None and self._shared is None) or (
                self._presence_save is not None and self._presence_save.active()):
            return
        self._presence_save = self._clock.callLater(0, self._save_presence)

    def _save_presence(self) -> None:
        """When agent presence changed (a call ending leaves a ready agent ready: nothing
        to do), write the presence file, off the reactor when there is a worker pool, and
        tell the shared state."""
        presence = self._engine.view.presence()
        if presence == self._saved_presence:
            return
        self._saved_presence = presence
        if self._shared is not None:
            self._shared.presence_changed(presence)
        if self._presence is None:
            return
        self._presence_seq += 1
        store, seq = self._presence, self._presence_seq

        def save() -> None:
            with self._presence_lock:  # worker threads may run saves out of order
                if seq < self._presence_written:
                    return
                self._presence_written = seq
                try:
                    store.save(presence)
                except CCSwitchError as e:
                    log.error("agent presence not saved: {error}", error=str(e))

        if self._defer_to_thread is None:
            save()
        else:
            self._defer_to_thread(save).addErrback(
                lambda f: log.failure("saving agent presence failed", f))

    def _start_timer(self, timer_id: TimerId, delay: float) -> None:
        old = self._timers.pop(timer_id, None)
        if old is not None and old.active():
            old.cancel()

        def fire() -> None:
            self._timers.pop(timer_id, None)
            self._feed(ev.TimerFired(timer_id=timer_id))

        self._timers[timer_id] = self._clock.callLater(delay, fire)

    # -- shared state: reserve before ringing ------------------------------------

    def _reserve_and_ring(self, call: Call, action: act.Ring) -> None:
        assert self._shared is not None
        agent_id = action.target.id

        def still_offered() -> bool:
            info = self._engine.view.calls.get(call.id)
            return (self._calls.get(call.id) is call and agent_id not in call.legs
                    and info is not None and agent_id in info.ringing)

        def decided(granted: bool) -> None:
            if not still_offered():
                self._shared_changed()  # a hold nobody uses is given back
            elif granted:
                self._ring(call, AGENT, agent_id, action.uri)
            else:
                self._feed(ev.AgentTaken(call_id=call.id, agent_id=agent_id))

        d = self._shared.reserve(call.id, agent_id, call.queue.name)
        d.addCallback(decided)
        d.addErrback(lambda f: log.failure("call {call_id}: reserving {agent} failed", f,
                                           call_id=call.id, agent=agent_id))

    def _acquire_and_ring(self, call: Call, action: act.Ring) -> None:
        assert self._shared is not None
        vendor = action.target.id
        spec = self._config.dialplan.vendors.get(vendor)
        most = spec.max_channels if spec is not None else 0

        def decided(granted: bool) -> None:
            held = self._held_overflow.pop((call.id, vendor), None)
            info = self._engine.view.calls.get(call.id)
            if self._calls.get(call.id) is not call or info is None or info.vendor != vendor:
                self._shared_changed()
            elif granted:
                if held is not None:
                    self._count_overflow(held)
                self._ring(call, VENDOR, vendor, action.uri)
            else:
                self._feed(ev.VendorFull(call_id=call.id, vendor=vendor))

        d = self._shared.acquire_channel(call.id, vendor, most)
        d.addCallback(decided)
        d.addErrback(lambda f: log.failure("call {call_id}: vendor channel for {vendor} "
                                           "failed", f, call_id=call.id, vendor=vendor))

    def _shared_changed(self) -> None:
        if self._shared is not None:
            self._shared.changed()

    def _count_overflow(self, action: act.OverflowFired) -> None:
        self._metrics.overflow_fired(action)

    # -- outgoing legs (agents and vendor trunks) -------------------------------

    def _ring(self, call: Call, kind: str, target: str, uri_text: str) -> None:
        assert self._layer is not None
        try:
            media = self._media.open_leg(call.id, f"{kind}:{target}")
        except MediaError as e:
            self._offer_failed(call, kind, target, 503, str(e))
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
        body = build_sdp(address=self._config.rtp.address, port=media.local_port,
                         formats=formats, session_id=session_id, session_version=session_id)
        caller = call.caller.invite.from_
        headers = self._new_request_headers("INVITE", uri, caller.uri.user, caller.display)
        headers.add("Contact", self._contact)
        headers.add("Allow", ALLOW)
        headers.add("User-Agent", self._user_agent)
        headers.add("Content-Type", SDP)
        invite = Request(method="INVITE", uri=uri, headers=headers, body=body)
        leg = OutLeg(kind=kind, target=target, invite=invite, media=media)
        call.legs[leg.key] = leg
        self._dialogs[invite.call_id] = call
        self._send_invite(call, leg)
        log.info("call {call_id}: ringing {kind} {target} at {uri}", call_id=call.id,
                 kind=kind, target=target, uri=uri_text)

    def _send_invite(self, call: Call, leg: OutLeg) -> None:
        assert self._layer is not None
        leg.tx = self._layer.request(
            leg.invite, leg.invite.uri.host_port(),
            on_response=lambda response: self._leg_response(call, leg, response),
            on_timeout=lambda: self._leg_failed(call, leg, 408, "no answer"),
            on_send_error=(lambda: self._feed(ev.AgentSendFailed(agent_id=leg.target)))
            if leg.kind == AGENT else None)

    def _leg_response(self, call: Call, leg: OutLeg, response: Response) -> None:
        status = response.status
        if leg.kind == AGENT and not leg.responded:
            # Any response (100 Trying included, even after the offer was cancelled)
            # proves the phone alive; the engine decides what silence means.
            leg.responded = True
            self._feed(ev.AgentResponded(agent_id=leg.target))
        if status < 200:
            if status > 100 and leg.state == "calling":
                leg.state = "ringing"
                self._feed(_leg_event(call, leg, "ringing"))
            return
        if status in (401, 407) and leg.state in ("calling", "ringing"):
            if self._authenticate(call, leg, response):
                return
        if status >= 300:
            if leg.state in ("calling", "ringing"):
                self._leg_failed(call, leg, status, response.reason)
            return
        # 2xx: the first one makes the dialog; retransmissions are ACKed again.
        if leg.dialog is not None:
            self._send_ack(leg.dialog, response.cseq[0])
            return
        try:
            leg.dialog = Dialog.as_uac(leg.invite, response, contact=self._contact)
            self._send_ack(leg.dialog, response.cseq[0])
        except SipParseError as e:
            self._leg_failed(call, leg, 502, f"answered with an unusable dialog: {e.reason}")
            return
        if leg.state not in ("calling", "ringing"):
            # Answered after we gave up on it (CANCEL crossed the 200): hang up at once.
            log.info("call {call_id}: late answer from {kind} {target}, hanging up",
                     call_id=call.id, kind=leg.kind, target=leg.target)
            self._send_bye(leg.dialog)
            return
        try:
            answer = parse_sdp(response.body)
            agreed = negotiate(answer, supported=g711.CODECS,
                               prefer=call.caller.negotiated.codec.encoding)
        except SdpError as e:
            self._send_bye(leg.dialog)
            self._leg_failed(call, leg, 488, f"answered with unusable SDP: {e.reason}")
            return
        # An answer listing both laws lets its sender use either (RFC 3264 6.1).
        listed = {f.payload_type: f.encoding.upper() for f in answer.formats
                  if f.clock_rate == 8000 and f.encoding.upper() in g711.CODECS}
        leg.media.configure(remote=(answer.address, answer.port),
                            codec=agreed.codec.encoding, payload_type=agreed.codec.payload_type,
                            dtmf_payload_type=_pt(agreed.telephone_event), also_receive=listed)
        leg.state = "answered"
        leg.answered_at = self._clock.seconds()
        self._feed(_leg_event(call, leg, "answered"))

    def _authenticate(self, call: Call, leg: OutLeg, response: Response) -> bool:
        """Resend a vendor INVITE once with digest credentials; False if we cannot."""
        vendor = self._config.dialplan.vendors.get(leg.target) if leg.kind == VENDOR else None
        if (vendor is None or vendor.username is None or vendor.password is None
                or leg.authenticated):
            return False
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        try:
            challenge = choose_challenge(response.headers.get_all(header))
        except DigestError as e:
            log.warn("call {call_id}: vendor {vendor} sent an unusable challenge: {reason}",
                     call_id=call.id, vendor=leg.target, reason=e.reason)
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
        if call.legs.get(leg.key) is not leg:
            return
        leg.state = "ended"
        del call.legs[leg.key]
        leg.media.close()
        self._offer_failed(call, leg.kind, leg.target, status, reason)

    def _offer_failed(self, call: Call, kind: str, target: str, status: int,
                      reason: str) -> None:
        """An offer that ended unanswered (not cancelled by us): logged with the status
        and reason (the ``agent`` or ``vendor`` field names the target), counted, and
        told to the engine."""
        log.warn("call {call_id}: offer to {kind} {target} failed: {status} {reason}",
                 call_id=call.id, kind=kind, target=target, status=status, reason=reason,
                 **{kind: target})
        self._metrics.offer_failures.labels(queue=call.queue.name, kind=kind,
                                            status=str(status)).inc()
        self._feed(_failed_event(call.id, kind, target, status))

    def _probe(self, vendor: str, uris: tuple[str, ...]) -> None:
        """OPTIONS to each trunk; the vendor is alive if any trunk answers something other
        than 5xx (408 included: no answer at all)."""
        assert self._layer is not None
        results: list[bool] = []

        def done(ok: bool) -> None:
            results.append(ok)
            if len(results) == len(uris):
                self._feed(ev.VendorProbed(vendor=vendor, ok=any(results)))

        for uri_text in uris:
            uri = SipURI.parse(uri_text)
            headers = self._new_request_headers("OPTIONS", uri, "ccswitch")
            headers.add("User-Agent", self._user_agent)
            options = Request(method="OPTIONS", uri=uri, headers=headers, body=b"")
            self._layer.request(
                options, uri.host_port(),
                on_response=lambda r: None if r.status < 200 else done(r.status < 500),
                on_timeout=lambda: done(False))

    def _probe_agent(self, agent_id: str, uri_text: str) -> None:
        """OPTIONS to an unreachable agent's phone: any response at all (405, 404 ...)
        says it is alive; silence just waits for the engine's next probe."""
        assert self._layer is not None
        try:
            uri = SipURI.parse(uri_text)
        except SipParseError as e:
            log.warn("agent {agent}: cannot probe {uri}: {reason}", agent=agent_id,
                     uri=uri_text, reason=e.reason)
            return
        headers = self._new_request_headers("OPTIONS", uri, "ccswitch")
        headers.add("User-Agent", self._user_agent)
        options = Request(method="OPTIONS", uri=uri, headers=headers, body=b"")
        self._layer.request(
            options, uri.host_port(),
            on_response=lambda r: self._feed(ev.AgentResponded(agent_id=agent_id)),
            on_timeout=lambda: log.debug("agent {agent}: no answer to OPTIONS",
                                         agent=agent_id))

    # -- helpers ----------------------------------------------------------

    def _new_request_headers(self, method: str, uri: SipURI, user: str | None,
                             display: str | None = None) -> Headers:
        """Max-Forwards, From (``user`` at our address, a new tag), To, a new Call-ID and
        CSeq 1: the head of a request outside any dialog."""
        headers = Headers()
        headers.add("Max-Forwards", "70")
        headers.add("From", str(NameAddr(display=display, uri=SipURI(
            user=user, host=_host(self._config.sip.advertised_host)),
            params=(("tag", new_tag()),))))
        headers.add("To", str(NameAddr(uri=uri)))
        headers.add("Call-ID", new_call_id(self._config.sip.advertised_host))
        headers.add("CSeq", f"1 {method}")
        return headers

    def _answer_headers(self) -> list[tuple[str, str]]:
        return [("Contact", self._contact), ("Allow", ALLOW),
                ("User-Agent", self._user_agent)]

    def _caller_no_ack(self, call: Call) -> None:
        log.warn("call {call_id}: no ACK for our 200 OK, ending the call", call_id=call.id)
        if not call.caller.ended:
            call.caller.ended = True
            self._send_bye(call.caller.dialog)
            self._feed(ev.CallerHungUp(call_id=call.id))

    def _send_bye(self, dialog: Dialog) -> None:
        """BYE the dialog's far end; a dialog whose route cannot be used is logged (the
        call ends on our side all the same)."""
        assert self._layer is not None
        try:
            bye = dialog.request("BYE", user_agent=self._user_agent)
            destination = dialog.destination()
        except SipParseError as e:
            log.warn("no BYE for {sip_call_id}: unusable route ({reason})",
                     sip_call_id=dialog.call_id, reason=e.reason)
            return
        self._layer.request(bye, destination, on_response=lambda r: None,
                            on_timeout=lambda: log.warn("BYE for {sip_call_id} timed out",
                                                        sip_call_id=dialog.call_id))

    def _send_ack(self, dialog: Dialog, cseq: int) -> None:
        assert self._layer is not None
        self._layer.send_ack(dialog.ack(cseq, user_agent=self._user_agent),
                             dialog.destination())

    def _reject(self, tx: ServerTransaction, status: int, reason: str | None,
                headers: Iterable[tuple[str, str]] = ()) -> None:
        self._metrics.sip_rejected.labels(status=str(status)).inc()
        tx.respond(status, reason, headers=list(headers))  # a To tag if the request had none

    def _is_trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    # -- recording and the end of a call ------------------------------------

    def _announced(self, call: Call) -> None:
        """The caller heard the whole announcement: the engine is told, and with
        ``recordings.start: after_notice`` the recording starts now (once)."""
        self._feed(ev.AnnouncementFinished(call_id=call.id))
        if (self._config.recordings.start is RecordingStart.AFTER_NOTICE
                and call.recording_started is None
                and not call.caller.ended and self._calls.get(call.id) is call):
            self._start_recording(call)

    def _announced_at(self, call: Call) -> float | None:
        info = self._engine.view.calls.get(call.id)
        return None if info is None else info.record.announced_at

    def _start_recording(self, call: Call) -> None:
        call.recording_started = self._clock.seconds()
        invite = call.caller.invite
        try:
            call.recorder = CallRecorder(
                self._config.recordings.directory, call.id, call.recording_started,
                {"call_id": call.id, "sip_call_id": invite.call_id,
                 "caller": _caller_id(invite.from_), "dialed": invite.uri.user or "",
                 "queue": call.queue.name, "group": call.queue.group,
                 "arrived_at": call.started, "announced_at": self._announced_at(call)},
                seal=self._config.recordings.public_key,
                sealed_copy=(self._config.recordings.compressed_format
                             if self._config.recordings.public_key is not None else None))
        except RecordingError as e:
            self._recording_failed(call, e)
            return
        if call.note is not None:
            call.note.add("recording", call.recording_started, wav=call.recorder.temp_path.name)
        self._media.record(call.caller.media, call.recorder,
                           on_error=lambda error: self._recording_failed(call, error))

    def _recording_failed(self, call: Call, error: Exception) -> None:
        call.recording_error = str(error)
        self._count_recording_error(call.id, error)

    def _count_recording_error(self, call_id: str, error: Exception) -> None:
        """Metric and log line for a recording that failed (safe on any thread)."""
        self._metrics.recording_errors.inc()
        log.error("call {call_id}: recording failed: {error}", call_id=call_id, error=str(error))

    def _finish(self, record: CallRecord) -> None:
        call = self._calls.pop(record.call_id, None)
        self._observe(record)
        if call is None:
            return
        for sip_call_id in [call.caller.invite.call_id, *(
                leg.invite.call_id for leg in call.legs.values())]:
            self._dialogs.pop(sip_call_id, None)
        self._media.stop_recording(call.caller.media)
        call.caller.media.close()
        for leg in call.legs.values():
            leg.media.close()
        log.info("call {call_id} ended: {outcome}", call_id=call.id, outcome=str(record.outcome))
        metadata = record.to_dict()
        metadata["sip_call_id"] = call.caller.invite.call_id
        metadata["recording_started_at"] = epoch(call.recording_started)
        metadata["recording_started_at_iso"] = iso_utc(call.recording_started)
        if call.recording_pauses:
            metadata["recording_pauses"] = [
                {"from": start, "to": end if end is not None else record.ended_at}
                for start, end in call.recording_pauses]
        if call.recording_error is not None:
            metadata["recording_error"] = call.recording_error
        # Finishing the WAV (header, fsync, rename, sidecar) and storing the record touch
        # the disk: off the reactor when there is a worker pool. Nothing here is used by
        # the reactor afterwards, and the pool finishes queued jobs before the process exits.
        self._run_job(call.id, functools.partial(self._close_call_files, call.id, call.recorder,
                                                 metadata, call.note))

    def _run_job(self, call_id: str, job: Callable[[], None]) -> None:
        """Run disk work for a call on the worker pool (if any)."""
        if self._defer_to_thread is None:
            job()
        else:
            d = self._defer_to_thread(job)
            d.addErrback(lambda f: log.failure("call {call_id}: closing files failed", f,
                                               call_id=call_id))

    def _close_call_files(self, call_id: str, recorder: CallRecorder | None,
                          metadata: dict[str, Any], note: CallNote | None = None) -> None:
        """Finalise the recording, hand the record to the CDR sink, remove the call note
        (only now: a crash before this still leaves a record), then make the optional
        compressed copy (any thread)."""
        wav: Path | None = None
        if recorder is not None:
            try:
                result = recorder.finish(metadata)
            except RecordingError as e:
                self._count_recording_error(call_id, e)
                metadata["recording_error"] = str(e)
            else:
                wav = result.path
                metadata["recording_path"] = str(wav)
                if result.error is not None:
                    metadata.setdefault("recording_error", result.error)
        if self._on_record is not None:
            try:
                self._on_record(metadata)
            except Exception:
                log.failure("call {call_id}: storing the call record failed", call_id=call_id)
        if note is not None:
            note.discard()
        fmt = self._config.recordings.compressed_format
        if wav is not None and fmt is not None and recorder is not None and not recorder.sealed:
            try:
                export_compressed(wav, fmt)
            except RecordingError as e:
                log.error("call {call_id}: compressed copy failed: {error}", call_id=call_id,
                          error=str(e))

    def _record_rejected(self, request: Request, queue: Queue, call_id: str | None = None
                         ) -> None:
        """A call routed to ``queue`` but refused before it got there still gets a record
        (outcome ``rejected``) and counts in the metrics."""
        now = self._clock.seconds()
        record = CallRecord(
            call_id=call_id or _routing_call_id(now), caller=_caller_id(request.from_),
            dialed=request.uri.user or "", queue=queue.name, group=queue.group,
            arrived_at=now, short_abandon_threshold=queue.short_abandon,
            outcome=Outcome.REJECTED, ended_at=now)
        self._observe(record)
        metadata = record.to_dict()
        metadata["sip_call_id"] = request.call_id
        self._run_job(record.call_id, functools.partial(
            self._close_call_files, record.call_id, None, metadata))

    def _observe(self, record: CallRecord) -> None:
        m = self._metrics
        outcome = str(record.outcome)
        route = str(record.route)
        vendor = record.vendor or ""
        m.calls.labels(queue=record.queue, outcome=outcome, route=route, vendor=vendor).inc()
        if record.wait is not None:
            m.queue_wait.labels(queue=record.queue, outcome=outcome, route=route,
                                vendor=vendor).observe(record.wait)
        if record.vendor_wait is not None:
            m.vendor_wait.labels(queue=record.queue, vendor=vendor, outcome=outcome).observe(
                record.vendor_wait)
        for offer in record.offers:
            if offer.agent_id is not None:
                m.agent_ring.labels(queue=record.queue, group=record.group).observe(offer.ring)
        if record.talk is not None:
            m.call_talk.labels(queue=record.queue, group=record.group, route=route,
                               vendor=vendor).observe(record.talk)

    def shutdown(self) -> None:
        """Stopping the node: hang up every call so each one gets its record."""
        if self._media_watch is not None and self._media_watch.active():
            self._media_watch.cancel()
        if self._shared is not None:
            self._shared.changed()
        for call in list(self._calls.values()):
            if not call.caller.ended:
                call.caller.ended = True
                self._send_bye(call.caller.dialog)
                self._feed(ev.CallerHungUp(call_id=call.id))


def _out_leg_for(call: Call | None, sip_call_id: str) -> OutLeg | None:
    if call is None:
        return None
    for leg in call.legs.values():
        if leg.invite.call_id == sip_call_id:
            return leg
    return None


def _action_key(action: act.LegAction) -> str:
    return leg_key(action.target.kind, action.target.id)


def _leg_event(call: Call, leg: OutLeg, what: str) -> ev.Event:
    """The engine event for ``what`` (ringing, answered, hung_up) happening on a leg."""
    events: dict[str, type[ev.LegRinging | ev.LegAnswered | ev.LegHungUp]] = {
        "ringing": ev.LegRinging, "answered": ev.LegAnswered, "hung_up": ev.LegHungUp}
    return events[what](call_id=call.id, target=Target(TargetKind(leg.kind), leg.target))


def _failed_event(call_id: str, kind: str, target: str, status: int) -> ev.Event:
    return ev.LegFailed(call_id=call_id, target=Target(TargetKind(kind), target), status=status)


def _routing_call_id(now: float) -> str:
    return f"{int(now * 1000):x}-{secrets.token_hex(4)}"


def _caller_id(name_addr: NameAddr) -> str:
    uri = name_addr.uri
    if isinstance(uri, SipURI):
        return uri.user or uri.host
    return uri.user or str(uri)  # a tel: From gives its number, another scheme the URI


def _pt(fmt: MediaFormat | None) -> int | None:
    return None if fmt is None else fmt.payload_type


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
