"""The call runtime: feeds the routing engine and carries out what it decides.

Each customer call is a set of legs (``legs``): the caller's (we are the UAS, see
``inbound``) and one per target it is offered to (we are the UAC, see ``outbound``). The engine decides; :class:`CallController` turns what happens on
the legs into engine events, one at a time (events raised while actions run are
queued behind), and the engine's actions into SIP, media, timers, recording,
records and metrics. Nothing here blocks: every call runs on the reactor, and disk
work goes to the worker pool.
"""

from __future__ import annotations

import functools
from collections import deque
from pathlib import Path
from typing import Any, Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel

from ccswitch.calls.inbound import InboundLegs
from ccswitch.calls.legs import Call, CallTable, LegState, OutLeg, caller_id, routing_call_id
from ccswitch.calls.outbound import OutboundLegs
from ccswitch.calls.signalling import Signalling
from ccswitch.calls.timers import TimerRunner
from ccswitch.errors import CCSwitchError
from ccswitch.media.engine import MediaEngine
from ccswitch.media.prompt import load_prompt, silence
from ccswitch.metrics.calls import CallMetrics
from ccswitch.metrics.registry import Metrics
from ccswitch.model import Config, Dialplan, HoldAudio, Queue
from ccswitch.recording.finished import FinishedCall
from ccswitch.recording.note import CallNote, accepted, fact_for
from ccswitch.recording.recorder import CallRecorder
from ccswitch.recording.session import RecordingState, close_files
from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing.engine import RoutingEngine
from ccswitch.routing.record import CallRecord
from ccswitch.routing.target import CALLER, Caller, Target
from ccswitch.sip.message import Request, Response
from ccswitch.sip.transaction import ServerTransaction, TransactionLayer
from ccswitch.state.presence import PresenceFile, PresenceKeeper
from ccswitch.state.sync import SharedState

log = Logger()
# The routing engine's own log lines (Note actions) keep the engine's namespace.
routing_log = Logger(namespace="ccswitch.routing.engine")


class CallController:
    """The node's calls: the transaction layer's TransactionUser (handed on to the
    inbound legs) and the loop between the engine and the legs."""

    def __init__(self, *, clock: IReactorTime, config: Config, engine: RoutingEngine,
                 media: MediaEngine, metrics: Metrics,
                 defer_to_thread: Callable[..., Any] | None = None,
                 on_record: Callable[[FinishedCall], None] | None = None,
                 presence: PresenceFile | None = None) -> None:
        self._clock = clock
        self._config = config
        self._engine = engine
        self._media = media
        self._metrics = CallMetrics(metrics)
        self._defer_to_thread = defer_to_thread
        self._on_record = on_record  # gets every finished call's record (the CDR sink)
        self._calls = CallTable()
        self._timers = TimerRunner(clock, self._feed)
        self._pending: deque[ev.Event | Dialplan] = deque()
        self._feeding = False
        self._sig = Signalling(config, metrics)
        self._inbound = InboundLegs(clock=clock, config=config, media=media,
                                    metrics=self._metrics,
                                    calls=self._calls, signalling=self._sig, feed=self._feed,
                                    rejected=self._record_rejected)
        self._outbound = OutboundLegs(clock=clock, config=config, media=media,
                                      metrics=self._metrics, calls=self._calls,
                                      signalling=self._sig, feed=self._feed)
        self._media_watch: IDelayedCall | None = None
        self._keepalive_at: dict[OutLeg, float] = {}  # answered vendor leg -> last OPTIONS
        self._presence = presence  # where agent presence is kept across restarts
        self._presence_keeper = PresenceKeeper(
            clock=clock, current=lambda: engine.view.presence(), store=presence,
            defer_to_thread=defer_to_thread)
        self._shared: SharedState | None = None
        self._rejected: dict[str, str] = {}  # call id -> SIP Call-ID, until its record comes

    def submit(self, event: ev.Event) -> None:
        """Hand an event from another part of the node (the shared state) to the engine."""
        self._feed(event)

    def share(self, shared: SharedState) -> None:
        """Coordinate with other nodes through a shared state store (before attach)."""
        self._shared = shared
        self._presence_keeper.share(shared.presence_changed)

    # -- wiring -----------------------------------------------------------

    def attach(self, layer: TransactionLayer, listen_port: int) -> None:
        """Bind to the transaction layer once the SIP port is listening."""
        self._sig.attach(layer, listen_port)
        if self._presence is not None:
            saved = self._presence.load()
            for action in self._engine.restore(saved):
                self._execute(action)
            log.info("agent presence restored from {path} ({count} agent(s))",
                     path=str(self._presence.path), count=len(saved))
        self._feed(ev.NodeStarted())
        if self._shared is not None:
            self._shared.start()
        self._watch_media()

    def _watch_media(self) -> None:
        """Every second: a caller or an answered agent/vendor (not holding the call) that
        has sent no RTP for ``rtp.timeout`` seconds (0: no such check) ends its call.
        Sooner, an answered vendor leg that was sending RTP and stopped for its vendor's
        ``dead_media_timeout`` is reported lost: its trunk most likely died, and the engine
        takes the vendor out of rotation. A leg that never sent is left to rtp.timeout
        (one-way audio is not a dead trunk), and a hold by either side suspends the check,
        as the vendor may then fall silent on purpose. Answered vendor legs also get an
        in-dialog OPTIONS every ``keepalive_interval`` of their vendor."""
        timeout = self._config.rtp.timeout
        now = self._clock.seconds()
        self._keepalives(now)
        for call in list(self._calls.calls.values()):
            caller = call.caller
            if caller.ended:
                continue
            lost = self._dead_vendor_leg(call, now)
            if lost is not None:
                self._feed(ev.VendorLegLost(call_id=call.id, vendor=lost, cause="dead_media"))
                continue
            if timeout <= 0:
                continue
            silent: Target | Caller | None = None
            if not caller.on_hold and now - caller.silent_since(call.started) > timeout:
                silent = CALLER
            for leg in call.legs.values():
                if leg.state is LegState.ANSWERED and not leg.on_hold and now - (
                        leg.silent_since(leg.answered_at)) > timeout:
                    silent = silent or leg.target
            if silent is not None:
                self._feed(ev.MediaTimedOut(call_id=call.id, leg=silent))
        self._media_watch = self._clock.callLater(1.0, self._watch_media)

    def _keepalives(self, now: float) -> None:
        """Send the in-dialog OPTIONS that are due; forget legs no longer answered."""
        due: dict[OutLeg, float] = {}
        for call in list(self._calls.calls.values()):
            for leg in call.legs.values():
                if leg.target.is_agent or leg.state is not LegState.ANSWERED:
                    continue
                vendor = self._config.dialplan.vendors.get(leg.target.id)
                if vendor is None or vendor.keepalive_interval <= 0:
                    continue
                last = self._keepalive_at.get(leg, leg.answered_at)
                if now - last >= vendor.keepalive_interval:
                    last = now
                    self._outbound.keepalive(call, leg, vendor.probe_timeout)
                due[leg] = last
        self._keepalive_at = due

    def _dead_vendor_leg(self, call: Call, now: float) -> str | None:
        """The vendor whose answered leg of ``call`` went silent after sending, if any."""
        if call.caller.on_hold:
            return None
        for leg in call.legs.values():
            if (leg.target.is_agent or leg.state is not LegState.ANSWERED or leg.on_hold
                    or leg.media.last_packet_at is None):
                continue
            vendor = self._config.dialplan.vendors.get(leg.target.id)
            limit = vendor.dead_media_timeout if vendor is not None else 0.0
            silent_since = max(leg.silent_since(leg.answered_at),
                               call.caller.hold_changed_at or 0.0)
            if limit > 0 and now - silent_since > limit:
                return leg.target.id
        return None

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    # -- TransactionUser: the caller's leg ----------------------------------

    def request_received(self, request: Request, source: tuple[str, int],
                         tx: ServerTransaction) -> None:
        self._inbound.request_received(request, source, tx)

    def ack_received(self, request: Request, source: tuple[str, int]) -> None:
        self._inbound.ack_received(request, source)

    def cancel_received(self, invite_tx: ServerTransaction) -> None:
        self._inbound.cancel_received(invite_tx)

    def stray_response(self, response: Response, source: tuple[str, int]) -> None:
        self._inbound.stray_response(response, source)

    # -- engine -----------------------------------------------------------

    def reload(self, config: Config) -> None:
        """Put a reloaded config in force (dialplan, trusted networks, compressed copies).

        Calls in progress keep going; see RoutingEngine.reload for what changes when.
        """
        self._config = config
        self._sig.config = config
        self._outbound.config = config
        self._inbound.reload(config)
        self._presence_keeper.changed()
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

    def recording_states(self) -> dict[str, RecordingState]:
        """The recording state of each call in progress, oldest call first."""
        return {call_id: call.recording.state for call_id, call in self._calls.calls.items()}

    def pause_recording(self, call_id: str, paused: bool) -> RecordingState:
        """PCI pause/resume: silence on both channels while paused; the pauses go into the
        sidecar. Returns the new recording state; KeyError for an unknown call,
        CCSwitchError when the call has no working recording."""
        call = self._calls.calls[call_id]
        return call.recording.pause(paused, self._clock.seconds(), call.note)

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
        if isinstance(action, (act.StartTimer, act.CancelTimer)):
            self._timers.carry_out(action)
        elif isinstance(action, act.AgentStateChanged):
            log.info("agent {agent} in {group}: {old} -> {new}", agent=action.agent_id,
                     group=action.group, old=str(action.old), new=str(action.new))
            self._presence_keeper.changed()
        elif isinstance(action, act.CallFinished):
            self._finish(action.record)
        elif isinstance(action, act.OverflowFired):
            self._metrics.overflowed(action)
        elif isinstance(action, act.OverflowUnavailable):
            self._metrics.overflow_failed(action)
            log.info("call {call_id}: vendor {vendor} cannot take it ({cause})",
                     call_id=action.call_id, vendor=action.vendor, cause=action.cause)
        elif isinstance(action, act.VendorHealthChanged):
            log.info("vendor {vendor}: {old} -> {new}", vendor=action.vendor,
                     old=str(action.old), new=str(action.new))
        elif isinstance(action, act.ProbeVendor):
            self._outbound.probe_vendor(action.vendor, action.uris, action.timeout)
        elif isinstance(action, act.ProbeAgent):
            self._outbound.probe_agent(action.agent_id, action.uri)
        elif isinstance(action, act.Note):
            routing_log.emit(LogLevel.lookupByName(action.level.value), action.format,
                             **dict(action.fields))
        else:
            call = self._calls.calls.get(action.call_id)
            if call is None:
                log.warn("action {action} for unknown call", action=action)
                return
            self._execute_call_action(call, action)

    def _execute_call_action(self, call: Call, action: act.Action) -> None:
        self._note_action(call, action)
        caller = call.caller
        if isinstance(action, act.AnswerCaller):
            self._inbound.answer(call)
        elif isinstance(action, act.StartRecording):
            self._start_recording(call)
        elif isinstance(action, act.PlayAnnouncement):
            prompt = load_prompt(Path(action.path), caller.negotiated.codec.encoding)
            caller.media.play(prompt, on_done=lambda: self._feed(
                ev.AnnouncementFinished(call_id=call.id)))
        elif isinstance(action, act.StartMusicOnHold):
            if action.path is not None:
                caller.media.play(load_prompt(Path(action.path),
                                              caller.negotiated.codec.encoding), loop=True)
        elif isinstance(action, act.StopMusicOnHold):
            caller.media.stop_playing()
        elif isinstance(action, act.StartHoldMusic):
            self._hold_music(call, action)
        elif isinstance(action, act.StopHoldMusic):
            media = call.party_media(action.party)
            if media is not None:
                media.stop_playing()
        elif isinstance(action, act.Ring):
            self._outbound.ring(call, action.target, action.uri)
        elif isinstance(action, act.Reserve):
            self._reserve(call, action.target)
        elif isinstance(action, act.Cancel):
            self._outbound.cancel(call, action.target)
        elif isinstance(action, act.Bridge):
            leg = call.legs[action.target]
            self._media.bridge(caller.media, leg.media)
            call.recording.add_party(leg.media)
        elif isinstance(action, act.HangupCaller):
            self._inbound.hang_up(call)
        elif isinstance(action, act.Hangup):
            self._outbound.hang_up(call, action.target)
        else:
            log.warn("unhandled action {action}", action=action)

    def _hold_music(self, call: Call, action: act.StartHoldMusic) -> None:
        """The held party hears the music on hold, or a second of silence looped; while
        a prompt plays to a leg the relay sends it nothing from its peer. The music goes
        to the recording only with ``recordings.hold_audio: moh``."""
        media = call.party_media(action.party)
        if media is None or media.codec is None:
            return  # the held leg is already gone: its hang-up is on its way
        prompt = (silence(media.codec) if action.path is None
                  else load_prompt(Path(action.path), media.codec))
        media.play(prompt, loop=True,
                   recorded=self._config.recordings.hold_audio is HoldAudio.MOH)

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

    # -- shared state: reserve before ringing ------------------------------------

    def _reserve(self, call: Call, target: Target) -> None:
        """Ask the shared store for the agent, or for one of the vendor's channels; the
        engine hears the answer and decides what follows."""
        assert self._shared is not None, "the engine reserves only with shared state"
        if target.is_agent:
            d = self._shared.reserve(call.id, target.id, call.queue.name)
        else:
            spec = self._config.dialplan.vendors.get(target.id)
            d = self._shared.acquire_channel(call.id, target.id,
                                             spec.max_channels if spec is not None else 0)
        d.addCallback(lambda granted: self._feed(ev.ReservationDecided(
            call_id=call.id, target=target, granted=bool(granted))))
        d.addErrback(lambda f: log.failure("call {call_id}: reserving {target} failed", f,
                                           call_id=call.id, target=str(target)))

    def _shared_changed(self) -> None:
        if self._shared is not None:
            self._shared.changed()

    # -- recording and the end of a call ------------------------------------

    def _announced_at(self, call: Call) -> float | None:
        info = self._engine.view.calls.get(call.id)
        return None if info is None else info.record.announced_at

    def _start_recording(self, call: Call) -> None:
        """The engine says when (``recordings.start``); the sidecar starts with what is
        known now."""
        invite = call.caller.invite
        call.recording.start(
            directory=self._config.recordings.directory, now=self._clock.seconds(),
            metadata={"call_id": call.id, "sip_call_id": invite.call_id,
                      "caller": caller_id(invite.from_), "dialed": invite.uri.user or "",
                      "queue": call.queue.name, "group": call.queue.group,
                      "arrived_at": call.started, "announced_at": self._announced_at(call)},
            media=self._media, caller=call.caller.media, note=call.note,
            on_failure=self._recording_failed, seal=self._config.recordings.public_key,
            compressed_format=self._config.recordings.compressed_format)

    def _recording_failed(self, call_id: str, error: Exception) -> None:
        """Metric and log line for a recording that failed (safe on any thread)."""
        self._metrics.recording_failed()
        log.error("call {call_id}: recording failed: {error}", call_id=call_id, error=str(error))

    def _finish(self, record: CallRecord) -> None:
        call = self._calls.remove(record.call_id)
        self._metrics.finished(record)
        if call is None:
            sip_call_id = self._rejected.pop(record.call_id, None)
            if sip_call_id is not None:
                self._run_job(record.call_id, functools.partial(
                    self._close_files, FinishedCall(record=record, sip_call_id=sip_call_id),
                    None, None))
            return
        call.recording.stop()
        call.caller.media.close()
        for leg in call.legs.values():
            leg.media.close()
        log.info("call {call_id} ended: {outcome}", call_id=call.id, outcome=str(record.outcome))
        finished = FinishedCall(record=record, sip_call_id=call.caller.invite.call_id,
                                recording=call.recording.facts(record.ended_at))
        # Finishing the WAV (header, fsync, rename, sidecar) and storing the record touch
        # the disk: off the reactor when there is a worker pool. Nothing here is used by
        # the reactor afterwards, and the pool finishes queued jobs before the process exits.
        self._run_job(call.id, functools.partial(self._close_files, finished,
                                                 call.recording.recorder, call.note))

    def _run_job(self, call_id: str, job: Callable[[], None]) -> None:
        """Run disk work for a call on the worker pool (if any)."""
        if self._defer_to_thread is None:
            job()
        else:
            d = self._defer_to_thread(job)
            d.addErrback(lambda f: log.failure("call {call_id}: closing files failed", f,
                                               call_id=call_id))

    def _close_files(self, finished: FinishedCall, recorder: CallRecorder | None,
                     note: CallNote | None) -> None:
        close_files(finished=finished, recorder=recorder, hand_off=self._on_record, note=note,
                    compressed_format=self._config.recordings.compressed_format,
                    on_failure=self._recording_failed)

    def _record_rejected(self, request: Request, queue: Queue, call_id: str | None,
                         reason: str) -> None:
        """A call routed to ``queue`` but refused before it got there: the engine makes
        its record (outcome ``rejected``), which is counted and stored like any other."""
        call_id = call_id or routing_call_id(self._clock.seconds())
        self._rejected[call_id] = request.call_id
        self._feed(ev.CallRejected(call_id=call_id, caller=caller_id(request.from_),
                                   dialed=request.uri.user or "", queue=queue.name,
                                   reason=reason))

    def shutdown(self) -> None:
        """Stopping the node: hang up every call so each one gets its record."""
        if self._media_watch is not None and self._media_watch.active():
            self._media_watch.cancel()
        if self._shared is not None:
            self._shared.changed()
        for call in list(self._calls.calls.values()):
            self._inbound.hang_up_and_tell(call)

