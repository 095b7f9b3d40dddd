"""The media anchor: RTP legs on UDP, prompt playback, the leg-to-leg relay and the recording tap.

Twisted adapter around the pure pieces (``g711``, ``rtp``, ``prompt``) and the
synchronous ``CallRecorder``. Everything runs on the reactor thread.

Timing: ONE shared ``LoopingCall`` (``withCount``) ticks every ``ptime``; a
tick produces ``count`` frames so a late reactor catches up and playback
position and recording length follow wall time (only the last
``MAX_BURST`` frames of a catch-up are actually sent, stale audio is useless
to the far end). Each frame advances the *media clock* (in samples) that all
outgoing RTP timestamps are derived from. A tick only visits legs that are
playing and active recordings, so its cost is O(active media), not O(legs).

Relaying is done directly in ``datagramReceived`` (no tick latency): each
packet is parsed, its payload type mapped (G.711 law translated with
``bytes.translate`` if the legs disagree) and rewritten by the outgoing leg's
``RtpSender`` so the far end sees one continuous stream across announcement,
music on hold and agent audio.

Only RTP is bound, on even ports: no RTCP socket is opened on port+1, so RTCP
sent to us is dropped by the kernel (an ICMP port-unreachable at most) and we
send no RTCP reports. Media timeouts can use ``MediaLeg.last_packet_at``.

Symmetric RTP: until the first valid packet arrives we send to the address
from SDP; the first valid RTP packet from the SDP's IP address latches the
actual source (IP, port) and from then on we send there and accept only
packets from there (NAT-friendly, and no hijack by third parties). A new
``configure`` with a different remote unlatches.

Recording tap (``MediaEngine.record``): left channel = audio received from the
caller leg plus prompts played to the caller (saturating add); right channel =
audio received from the agent leg. Inbound audio is decoded into a small
per-leg FIFO (``FIFO_FRAMES`` frames, oldest dropped on overflow, silence on
underflow), each packet with the law of its payload type; telephone-event and other
payload types are not recorded. Packet reordering and loss are not concealed in the
recording.
"""

from __future__ import annotations

from typing import Any, Callable, Final, Mapping, Protocol, cast

import numpy as np
import numpy.typing as npt
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from ccswitch.clock import Clock
from ccswitch.errors import MediaError, RecordingError
from ccswitch.media import g711
from ccswitch.media.prompt import SAMPLE_RATE, Prompt
from ccswitch.media.rtp import RtpSender, parse_rtp
from ccswitch.recording.recorder import CallRecorder

__all__ = ["FIFO_FRAMES", "MAX_BURST", "MediaEngine", "MediaLeg", "RecordingTap"]

log = Logger()

FIFO_FRAMES: Final = 10
MAX_BURST: Final = 5

Int16Array = npt.NDArray[np.int16]


class _Unbindable(Protocol):
    def stopListening(self) -> Deferred[None] | None: ...


class _JitterFifo:
    """A ring of decoded samples fed per packet and drained one frame per tick."""

    __slots__ = ("_ring", "_read", "_count", "dropped", "underruns")

    def __init__(self, capacity: int) -> None:
        self._ring: Int16Array = np.zeros(capacity, dtype=np.int16)
        self._read = 0
        self._count = 0
        self.dropped = 0
        self.underruns = 0

    def __len__(self) -> int:
        return self._count

    def push(self, payload: memoryview, table: Int16Array) -> None:
        codes = np.frombuffer(payload, dtype=np.uint8)
        ring = self._ring
        capacity = ring.shape[0]
        n = codes.shape[0]
        if n > capacity:
            self.dropped += n - capacity
            codes = codes[n - capacity:]
            n = capacity
        write = (self._read + self._count) % capacity
        first = min(n, capacity - write)
        table.take(codes[:first], out=ring[write:write + first])
        if first < n:
            table.take(codes[first:], out=ring[:n - first])
        self._count += n
        if self._count > capacity:
            overflow = self._count - capacity
            self.dropped += overflow
            self._read = (self._read + overflow) % capacity
            self._count = capacity

    def pop_into(self, out: Int16Array) -> None:
        ring = self._ring
        capacity = ring.shape[0]
        want = out.shape[0]
        n = min(want, self._count)
        read = self._read
        first = min(n, capacity - read)
        out[:first] = ring[read:read + first]
        if first < n:
            out[first:n] = ring[:n - first]
        if n < want:
            out[n:] = 0
            if n == 0:
                self.underruns += 1
        self._read = (read + n) % capacity
        self._count -= n


class MediaLeg(DatagramProtocol):
    """One RTP endpoint of a call, bound on ``local_port``; created by ``MediaEngine.open_leg``."""

    noisy = False  # no "Starting/Stopping protocol" lines (without call_id) per leg

    def __init__(self, engine: MediaEngine, call_id: str, role: str) -> None:
        self.call_id = call_id
        self.role = role
        self.local_port = 0
        self._engine = engine
        self._port: _Unbindable | None = None
        self._write: Callable[[bytes, tuple[str, int]], object] | None = None
        self.sender = RtpSender(frame_samples=engine.frame_samples)
        self.remote: tuple[str, int] | None = None
        self._send_addr: tuple[str, int] | None = None
        self.latched = False
        self.codec: str | None = None
        self.payload_type: int | None = None
        self.dtmf_payload_type: int | None = None
        #: Every G.711 payload type the far end may send, with its decode table.
        self._decode_tables: dict[int, Int16Array] = {}
        self._receive: dict[int, str] = {}
        self.peer: MediaLeg | None = None
        self._relay_map: dict[int, tuple[int, bytes | None]] = {}
        self._prompt: Prompt | None = None
        self._prompt_translate: bytes | None = None
        self._position = 0
        self._loop = False
        self._on_done: Callable[[], None] | None = None
        self._started = False
        self._played: Int16Array | None = None
        self._played_frame = -1
        self.fifo: _JitterFifo | None = None
        self.closed = False
        self.packets_in = 0
        self.packets_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.packets_invalid = 0
        self.packets_rejected = 0
        self.send_errors = 0
        self.last_packet_at: float | None = None

    def __repr__(self) -> str:
        return f"<MediaLeg {self.call_id} {self.role} port={self.local_port}>"

    @property
    def send_address(self) -> tuple[str, int] | None:
        """Where we send: the latched source if any, else the SDP address."""
        return self._send_addr

    @property
    def playing(self) -> Prompt | None:
        return self._prompt

    # -- control --------------------------------------------------------

    def configure(self, *, remote: tuple[str, int], codec: str, payload_type: int,
                  dtmf_payload_type: int | None,
                  also_receive: Mapping[int, str] | None = None) -> None:
        """Set the far end (from SDP) and the negotiated codec and payload types.

        ``also_receive`` (payload type -> codec) lists the other G.711 formats of the
        far end's SDP: an answer may list several, and its sender may use any of them,
        so those packets are recorded and relayed (translated) too.
        """
        receive = {**(also_receive or {}), payload_type: codec}
        if any(c not in g711.CODECS for c in receive.values()):
            raise MediaError(f"unsupported codec in {sorted(set(receive.values()))} on {self!r}")
        if any(not 0 <= pt <= 127 for pt in receive) or (
                dtmf_payload_type is not None and not 0 <= dtmf_payload_type <= 127):
            raise MediaError(f"payload type out of range on {self!r}")
        remote = (str(remote[0]), int(remote[1]))
        if remote != self.remote:
            self.remote = remote
            self._send_addr = remote
            self.latched = False
        self.codec = codec
        self.payload_type = payload_type
        self.dtmf_payload_type = dtmf_payload_type
        self._receive = receive
        self._decode_tables = {pt: g711.decode_table(c) for pt, c in receive.items()}
        if self._prompt is not None:
            self._prompt_translate = g711.translate_table(self._prompt.codec, codec)
        if self.peer is not None:
            _map_relay(self, self.peer)
            _map_relay(self.peer, self)

    def play(self, prompt: Prompt, *, loop: bool = False,
             on_done: Callable[[], None] | None = None) -> None:
        """Send ``prompt`` one frame per tick, replacing whatever this leg was sending.

        While a prompt plays, audio relayed from a bridged peer is not sent to
        this leg. ``on_done`` is called once, from the tick, when a non-looping
        prompt plays out; not when it is replaced or stopped.
        """
        if self.closed:
            raise MediaError(f"play on closed {self!r}")
        self._prompt = prompt
        self._prompt_translate = (g711.translate_table(prompt.codec, self.codec)
                                  if self.codec is not None else None)
        self._position = 0
        self._loop = loop
        self._on_done = on_done
        self._started = False
        self._engine._playing[self] = None

    def stop_playing(self) -> None:
        """Stop the current prompt (no on_done); no-op when idle."""
        self._prompt = None
        self._on_done = None
        self._engine._playing.pop(self, None)

    def close(self) -> Deferred[None]:
        """Unbind the socket and detach from bridge, playback and taps; idempotent."""
        if self.closed:
            return succeed(None)
        self.closed = True
        self.stop_playing()
        if self.peer is not None:
            self._engine.unbridge(self)
        self.fifo = None
        port, self._port = self._port, None
        self._engine._leg_closed(self)
        if port is None:
            return succeed(None)
        d = port.stopListening()
        return d if isinstance(d, Deferred) else succeed(None)

    # -- I/O ------------------------------------------------------------

    def startProtocol(self) -> None:
        # Send with the bound socket's sendto directly: Port.write re-validates
        # the address on every packet, which is a third of the per-packet cost.
        # Errors (EAGAIN, ECONNREFUSED from an earlier ICMP) are counted and dropped.
        transport: Any = self.transport
        sock = getattr(transport, "socket", None)
        self._write = sock.sendto if sock is not None else transport.write

    def stopProtocol(self) -> None:
        self._write = None

    def _send(self, packet: bytes) -> None:
        write = self._write
        addr = self._send_addr
        if write is None or addr is None:
            return
        try:
            write(packet, addr)
        except OSError:
            self.send_errors += 1
            return
        self.packets_out += 1
        self.bytes_out += len(packet)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """One RTP packet in: latch, count, feed the recording FIFO, relay to the peer."""
        header = parse_rtp(datagram)
        if header is None:
            self.packets_invalid += 1
            return
        if not self.latched:
            remote = self.remote
            if remote is None or addr[0] != remote[0]:
                self.packets_rejected += 1
                return
            self._send_addr = (addr[0], addr[1])
            self.latched = True
            log.debug("{call_id} {role}: RTP latched to {host}:{port}", call_id=self.call_id,
                      role=self.role, host=addr[0], port=addr[1])
        elif addr != self._send_addr:
            self.packets_rejected += 1
            return
        engine = self._engine
        self.packets_in += 1
        self.bytes_in += len(datagram)
        self.last_packet_at = engine._clock.seconds()
        pt = header.payload_type
        fifo = self.fifo
        if fifo is not None:
            table = self._decode_tables.get(pt)
            if table is not None:
                fifo.push(memoryview(datagram)[header.payload_start:header.payload_end], table)
        peer = self.peer
        if peer is not None and peer._prompt is None:
            mapped = self._relay_map.get(pt)
            if mapped is not None:
                try:
                    packet = peer.sender.relay(datagram, header, engine.clock,
                                               payload_type=mapped[0], translate=mapped[1])
                except ValueError:
                    self.packets_invalid += 1
                    return
                peer._send(packet)

    # -- tick -----------------------------------------------------------

    def _play_frame(self, frame_no: int, send: bool) -> Callable[[], None] | None:
        """Play the next frame; returns on_done when the prompt just ended."""
        prompt = self._prompt
        assert prompt is not None
        count = len(prompt.frames)
        if count == 0:
            return self._end_prompt()
        i = self._position
        if send and self.payload_type is not None:
            payload = prompt.frames[i]
            if self._prompt_translate is not None:
                payload = payload.translate(self._prompt_translate)
            self._send(self.sender.originate(payload, self._engine.clock,
                                             payload_type=self.payload_type,
                                             marker=not self._started))
            self._started = True
        self._played = prompt.linear[i]
        self._played_frame = frame_no
        i += 1
        if i >= count:
            if not self._loop:
                return self._end_prompt()
            i = 0
        self._position = i
        return None

    def _end_prompt(self) -> Callable[[], None] | None:
        on_done = self._on_done
        self._prompt = None
        self._on_done = None
        self._engine._playing.pop(self, None)
        return on_done if on_done is not None else _noop

    def played_samples(self, frame_no: int) -> Int16Array | None:
        """The prompt samples sent in frame ``frame_no``, or None."""
        return self._played if self._played_frame == frame_no else None


def _noop() -> None:
    pass


def _map_relay(source: MediaLeg, target: MediaLeg) -> None:
    """Payload-type map for packets from ``source`` sent out of ``target``."""
    mapping: dict[int, tuple[int, bytes | None]] = {}
    if target.payload_type is not None and target.codec is not None:
        for pt, codec in source._receive.items():
            mapping[pt] = (target.payload_type, g711.translate_table(codec, target.codec))
    if source.dtmf_payload_type is not None and target.dtmf_payload_type is not None:
        mapping[source.dtmf_payload_type] = (target.dtmf_payload_type, None)
    source._relay_map = mapping


class RecordingTap:
    """Feeds one ``CallRecorder`` a frame per tick: left = caller (+ prompts), right = agent."""

    def __init__(self, engine: MediaEngine, caller: MediaLeg, recorder: CallRecorder,
                 on_error: Callable[[RecordingError], None] | None) -> None:
        self._engine = engine
        self.caller = caller
        self.agent: MediaLeg | None = None
        self.recorder = recorder
        self._on_error = on_error
        self.active = True
        self.paused = False  # PCI: write silence on both channels while set
        self.error: RecordingError | None = None
        n = engine.frame_samples
        self._left: Int16Array = np.zeros(n, dtype=np.int16)
        self._right: Int16Array = np.zeros(n, dtype=np.int16)
        self._mix: npt.NDArray[np.int32] = np.zeros(n, dtype=np.int32)
        caller.fifo = _JitterFifo(FIFO_FRAMES * n)

    def attach_agent(self, leg: MediaLeg) -> None:
        """Record ``leg``'s inbound audio on the right channel (replacing any previous agent)."""
        if self.agent is not None and self.agent is not leg:
            self.detach_agent()
        self.agent = leg
        if leg.fifo is None:
            leg.fifo = _JitterFifo(FIFO_FRAMES * self._engine.frame_samples)

    def detach_agent(self) -> None:
        """Right channel back to silence."""
        if self.agent is not None:
            self.agent.fifo = None
            self.agent = None

    def stop(self) -> None:
        """Stop feeding the recorder (it is not finished here); idempotent."""
        if not self.active:
            return
        self.active = False
        self.detach_agent()
        self.caller.fifo = None
        self._engine._taps.pop(self, None)

    def _frame(self, frame_no: int) -> None:
        left, right = self._left, self._right
        caller = self.caller
        if caller.fifo is not None:
            caller.fifo.pop_into(left)
        else:
            left[:] = 0
        played = caller.played_samples(frame_no)
        if played is not None:
            mix = self._mix
            np.add(left, played, out=mix, dtype=np.int32)
            np.maximum(mix, -32768, out=mix)
            np.minimum(mix, 32767, out=mix)
            left[:] = mix
        agent = self.agent
        if agent is not None and agent.fifo is not None:
            agent.fifo.pop_into(right)
        else:
            right[:] = 0
        if self.paused:
            left[:] = 0
            right[:] = 0
        try:
            self.recorder.write(left, right)
        except RecordingError as e:
            self.error = e
            self.stop()
            log.error("call {call_id}: recording stopped: {error}", call_id=caller.call_id,
                      error=str(e))
            if self._on_error is not None:
                self._on_error(e)


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
        _map_relay(a, b)
        _map_relay(b, a)

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
