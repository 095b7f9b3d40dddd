"""The media anchor: owns the RTP port range, the legs, the shared media tick and the
recording taps.

Twisted adapter around the pure pieces (``g711``, ``rtp``, ``prompt``) and the
synchronous ``CallRecorder``. Everything runs on the reactor thread. The legs
(:mod:`ccswitch.media.leg`: relay, playback) and the recording taps
(:mod:`ccswitch.media.tap`) are made here.

Timing: ONE shared ``LoopingCall`` (``withCount``) ticks every ``ptime``; a
tick produces ``count`` frames so a late reactor catches up and playback
position and recording length follow wall time (only the last
``MAX_BURST`` frames of a catch-up are actually sent, stale audio is useless
to the far end). Each frame advances the *media clock* (in samples) that all
outgoing RTP timestamps are derived from. A tick only visits legs that are
playing and active recordings, so its cost is O(active media), not O(legs).

Only RTP is bound, on even ports: no RTCP socket is opened on port+1, so RTCP
sent to us is dropped by the kernel (an ICMP port-unreachable at most) and we
send no RTCP reports. Media timeouts can use ``MediaLeg.last_packet_at``.
"""

from __future__ import annotations

from typing import Any, Callable, Final, cast

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ccswitch.clock import Clock
from ccswitch.errors import MediaError, RecordingError
from ccswitch.media.leg import MediaLeg, map_relay
from ccswitch.media.prompt import SAMPLE_RATE
from ccswitch.media.tap import RecordingTap
from ccswitch.recording.recorder import CallRecorder

# MediaLeg is the handle open_leg returns: callers import it from here with the engine.
__all__ = ["MAX_BURST", "MediaEngine", "MediaLeg"]

log = Logger()

MAX_BURST: Final = 5


class MediaEngine:
    """Owns the RTP port range, the legs, the 20 ms media clock and the recording taps."""

    def __init__(self, reactor: Any, *, address: str, port_min: int, port_max: int,
                 ptime: float = 0.02, clock: Clock | None = None) -> None:
        if not 0 < port_min <= port_max <= 65535:
            raise MediaError(f"bad RTP port range {port_min}-{port_max}")
        first = port_min + (port_min & 1)
        if first > port_max:
            raise MediaError(f"RTP port range {port_min}-{port_max} has no even port")
        if not 0.005 <= ptime <= 0.2:
            raise MediaError(f"bad ptime {ptime}")
        self._reactor = reactor
        self._clock: Clock = clock if clock is not None else reactor
        self.address = address
        self.port_min = port_min
        self.port_max = port_max
        self.ptime = ptime
        self.frame_samples = int(round(SAMPLE_RATE * ptime))
        self._first_port = first
        self._port_count = (port_max - first) // 2 + 1
        self._next_index = 0
        self._legs: dict[int, MediaLeg] = {}
        self._playing: dict[MediaLeg, None] = {}
        self._taps: dict[RecordingTap, None] = {}
        self._loop: LoopingCall | None = None
        #: Media clock in samples: advanced by one frame per produced frame.
        self.clock = 0
        self.frame_no = 0
        self.ticks = 0
        self.late_frames = 0

    # -- lifecycle --------------------------------------------------------

    def start(self) -> None:
        """Start the shared media tick."""
        if self._loop is not None:
            return
        loop = LoopingCall.withCount(self._tick)
        loop.clock = cast(IReactorTime, self._clock)
        self._loop = loop
        d = loop.start(self.ptime, now=False)
        d.addErrback(self._loop_died)

    def _loop_died(self, failure: Failure) -> None:
        log.failure("media tick stopped", failure)

    def stop(self) -> Deferred[None]:
        """Stop the tick and close every leg; the Deferred fires when all ports are unbound."""
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        closing = [leg.close() for leg in list(self._legs.values())]
        done: Deferred[None] = gatherResults(closing).addCallback(lambda _: None)
        return done

    @property
    def legs(self) -> int:
        """Number of open legs."""
        return len(self._legs)

    # -- legs -------------------------------------------------------------

    def open_leg(self, call_id: str, role: str) -> MediaLeg:
        """Bind a new leg on the next free even port (wrapping); MediaError when none is free."""
        leg = MediaLeg(self, call_id, role)
        count = self._port_count
        for attempt in range(count):
            index = (self._next_index + attempt) % count
            port = self._first_port + 2 * index
            if port in self._legs:
                continue
            try:
                listening = self._reactor.listenUDP(port, leg, interface=self.address)
            except CannotListenError:
                continue
            self._next_index = (index + 1) % count
            # One datagram per readiness event: a leg gets one packet per 20 ms, so
            # reading on until EAGAIN would cost an extra failing recvfrom (and its
            # exception) per packet. The poller is level-triggered, so a second
            # queued datagram is read on the next pass.
            listening.maxThroughput = 1
            leg._port = listening
            leg.local_port = port
            self._legs[port] = leg
            return leg
        raise MediaError(f"no free RTP port in {self.port_min}-{self.port_max} "
                         f"on {self.address} for call {call_id}")

    def _leg_closed(self, leg: MediaLeg) -> None:
        if self._legs.get(leg.local_port) is leg:
            del self._legs[leg.local_port]
        for tap in list(self._taps):
            if tap.agent is leg:
                tap.agent = None

    def bridge(self, a: MediaLeg, b: MediaLeg) -> None:
        """Relay every RTP packet from a out of b and vice versa; stops playback on both."""
        if a is b or a.closed or b.closed:
            raise MediaError(f"cannot bridge {a!r} and {b!r}")
        for leg in (a, b):
            if leg.peer is not None and leg.peer is not (b if leg is a else a):
                self.unbridge(leg)
        a.stop_playing()
        b.stop_playing()
        a.peer = b
        b.peer = a
        map_relay(a, b)
        map_relay(b, a)

    def unbridge(self, a: MediaLeg, b: MediaLeg | None = None) -> None:
        """Stop relaying between ``a`` and its peer (``b``, if given, must be that peer)."""
        peer = a.peer
        if peer is None or (b is not None and b is not peer):
            return
        a.peer = None
        peer.peer = None
        a._relay_map = {}
        peer._relay_map = {}

    # -- recording --------------------------------------------------------

    def record(self, caller: MediaLeg, recorder: CallRecorder, *,
               on_error: Callable[[RecordingError], None] | None = None) -> RecordingTap:
        """Start feeding ``recorder`` from ``caller`` (left); add the agent with attach_agent."""
        if caller.closed:
            raise MediaError(f"cannot record closed {caller!r}")
        for tap in self._taps:
            if tap.caller is caller:
                tap.stop()
                break
        tap = RecordingTap(self, caller, recorder, on_error)
        self._taps[tap] = None
        return tap

    def record_agent(self, agent: MediaLeg, recorder: CallRecorder) -> bool:
        """Put ``agent``'s audio on the right channel of the tap feeding ``recorder``.

        False (and nothing happens) when that recording is no longer active,
        e.g. it was stopped after a write error: the call itself goes on.
        """
        for tap in self._taps:
            if tap.recorder is recorder:
                tap.attach_agent(agent)
                return True
        log.info("call {call_id}: no active recording to add {role} to",
                 call_id=agent.call_id, role=agent.role)
        return False

    def stop_recording(self, caller: MediaLeg) -> None:
        """Stop the tap recording ``caller``; no-op if none."""
        for tap in list(self._taps):
            if tap.caller is caller:
                tap.stop()

    def tap_for(self, caller: MediaLeg) -> RecordingTap | None:
        for tap in self._taps:
            if tap.caller is caller:
                return tap
        return None

    # -- the tick ---------------------------------------------------------

    def _tick(self, count: int) -> None:
        """Produce ``count`` frames (more than 1 when the reactor was late)."""
        self.ticks += 1
        if count > 1:
            self.late_frames += count - 1
        step = self.frame_samples
        for k in range(count):
            self.clock += step
            self.frame_no += 1
            self._frame(self.frame_no, send=k >= count - MAX_BURST)

    def _frame(self, frame_no: int, *, send: bool) -> None:
        done: list[Callable[[], None]] = []
        for leg in list(self._playing):
            try:
                callback = leg._play_frame(frame_no, send)
            except Exception:
                log.failure("playing to {leg}", leg=repr(leg))
                leg.stop_playing()
                continue
            if callback is not None:
                done.append(callback)
        for tap in list(self._taps):
            try:
                tap._frame(frame_no)
            except Exception:
                log.failure("recording tap for {leg}", leg=repr(tap.caller))
                tap.stop()
        for callback in done:
            try:
                callback()
            except Exception:
                log.failure("prompt on_done callback")
