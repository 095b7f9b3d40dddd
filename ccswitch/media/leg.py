"""One RTP endpoint of a call: symmetric RTP, the leg-to-leg relay and prompt playback.

Relaying is done directly in ``datagramReceived`` (no tick latency): each
packet is parsed, its payload type mapped (G.711 law translated with
``bytes.translate`` if the legs disagree) and rewritten by the outgoing leg's
``RtpSender`` so the far end sees one continuous stream across announcement,
music on hold and agent audio. A playing prompt is sent one frame per media tick
(:class:`~ccswitch.media.engine.MediaEngine` runs the tick).

Symmetric RTP: until the first valid packet arrives we send to the address
from SDP; the first valid RTP packet from the SDP's IP address latches the
actual source (IP, port) and from then on we send there and accept only
packets from there (NAT-friendly, and no hijack by third parties). A new
``configure`` with a different remote unlatches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from ccswitch.errors import MediaError
from ccswitch.media import g711
from ccswitch.media.prompt import Prompt
from ccswitch.media.rtp import RtpSender, parse_rtp
from ccswitch.media.tap import Int16Array, JitterFifo

if TYPE_CHECKING:
    from ccswitch.media.engine import MediaEngine

log = Logger()


class _Unbindable(Protocol):
    def stopListening(self) -> Deferred[None] | None: ...


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
        self._recorded = True  # whether the prompt playing goes to the recording tap
        self._played_frame = -1
        self.fifo: JitterFifo | None = None
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
            map_relay(self, self.peer)
            map_relay(self.peer, self)

    def play(self, prompt: Prompt, *, loop: bool = False,
             on_done: Callable[[], None] | None = None, recorded: bool = True) -> None:
        """Send ``prompt`` one frame per tick, replacing whatever this leg was sending.

        ``recorded`` False keeps the prompt out of the recording tap (``played_samples``).

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
        self._recorded = recorded
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
        self._played = prompt.linear[i] if self._recorded else None
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


def map_relay(source: MediaLeg, target: MediaLeg) -> None:
    """Payload-type map for packets from ``source`` sent out of ``target``."""
    mapping: dict[int, tuple[int, bytes | None]] = {}
    if target.payload_type is not None and target.codec is not None:
        for pt, codec in source._receive.items():
            mapping[pt] = (target.payload_type, g711.translate_table(codec, target.codec))
    if source.dtmf_payload_type is not None and target.dtmf_payload_type is not None:
        mapping[source.dtmf_payload_type] = (target.dtmf_payload_type, None)
    source._relay_map = mapping
