"""RTP (RFC 3550) header parsing and the per-leg outgoing stream state.

Pure: no I/O, no Twisted. The hot path is one ``parse_rtp`` and one
``RtpSender.relay`` per relayed packet; both avoid per-packet dicts and write
into a preallocated buffer with ``struct.pack_into``.

One ``RtpSender`` exists per leg and owns what the far end of that leg sees:
one SSRC, one sequence-number space and one timestamp line, whether the
packets are frames we originate (announcement, music on hold) or packets
relayed from the other leg (the agent). Whenever the source changes (from
originating to relaying, or the relayed SSRC changes because a different phone
answered) the sequence and timestamp offsets are recomputed so the stream stays
continuous and monotonic.

Outgoing timestamps follow a *media clock* in samples that the caller passes
in (the engine advances it by one frame per tick), so gaps in what we send are
reflected in the timestamps, as RFC 3550 expects.
"""

from __future__ import annotations

import random
import struct
from typing import Final, NamedTuple

__all__ = ["MAX_PACKET", "RTP_HEADER", "RtpHeader", "RtpSender", "parse_rtp"]

RTP_HEADER: Final = 12
MAX_PACKET: Final = 1500
_SEQ_TS_SSRC: Final = struct.Struct("!HII")
_HEADER: Final = struct.Struct("!BBHII")
_U32: Final = 0xFFFFFFFF
_U16: Final = 0xFFFF


class RtpHeader(NamedTuple):
    """The fields of one RTP packet we care about; payload is data[payload_start:payload_end]."""

    payload_type: int
    marker: bool
    seq: int
    timestamp: int
    ssrc: int
    payload_start: int
    payload_end: int


def parse_rtp(data: bytes) -> RtpHeader | None:
    """Parse an RTP header; None for anything that is not a well-formed RTP v2 packet.

    CSRCs, a header extension and padding are skipped, so the payload bounds
    point at the media only. RTCP multiplexed on the port (packet types
    200-204, which read as payload types 72-76 with the marker bit) is refused.
    """
    size = len(data)
    if size < RTP_HEADER:
        return None
    first = data[0]
    if first >> 6 != 2:
        return None
    start = RTP_HEADER + ((first & 0x0F) << 2)
    if first & 0x10:
        if size < start + 4:
            return None
        start += 4 + ((data[start + 2] << 8 | data[start + 3]) << 2)
    end = size
    if first & 0x20:
        padding = data[size - 1]
        if padding == 0:
            return None
        end -= padding
    if end < start:
        return None
    second = data[1]
    payload_type = second & 0x7F
    if 72 <= payload_type <= 76:
        return None
    seq, timestamp, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
    return RtpHeader(payload_type, bool(second & 0x80), seq, timestamp, ssrc, start, end)


def _ahead(a: int, b: int) -> int:
    """How far ``a`` is ahead of ``b`` on the 32-bit wrapping timestamp line (signed)."""
    diff = (a - b) & _U32
    return diff - (1 << 32) if diff & 0x80000000 else diff


class RtpSender:
    """The outgoing RTP stream of one leg: SSRC, sequence numbers and timestamps.

    ``originate`` writes our own header for a frame we produce; ``relay``
    rewrites a received packet (new SSRC, mapped sequence and timestamp,
    mapped payload type, payload and marker kept; CSRCs, extensions and
    padding dropped). Both return a fresh ``bytes`` ready for the socket.
    """

    __slots__ = (
        "ssrc", "frame_samples", "_buf", "_view", "_seq", "_last_ts", "_sent",
        "_relaying", "_source_ssrc", "_seq_offset", "_ts_offset", "_clock_offset",
    )

    def __init__(self, *, ssrc: int | None = None, initial_seq: int | None = None,
                 initial_timestamp: int | None = None, frame_samples: int = 160,
                 rng: random.Random | None = None) -> None:
        r = rng if rng is not None else random.SystemRandom()
        self.ssrc: int = ssrc if ssrc is not None else r.getrandbits(32)
        self.frame_samples = frame_samples
        self._buf = bytearray(MAX_PACKET)
        self._view = memoryview(self._buf)
        # ``_seq`` is the last sequence number sent; the first packet uses _seq + 1.
        self._seq: int = ((initial_seq if initial_seq is not None else r.getrandbits(16)) - 1) & _U16
        # Offset from the media clock to our timestamp line, for originated frames.
        self._clock_offset: int = (initial_timestamp if initial_timestamp is not None
                                   else r.getrandbits(32))
        self._last_ts = 0
        self._sent = False
        self._relaying = False
        self._source_ssrc = -1
        self._seq_offset = 0
        self._ts_offset = 0

    @property
    def last_seq(self) -> int:
        """The sequence number of the last packet sent."""
        return self._seq

    @property
    def last_timestamp(self) -> int:
        """The timestamp of the last packet sent (0 before any)."""
        return self._last_ts

    def _continue_ts(self, candidate: int) -> int:
        """``candidate`` unless it would not move our line forward by at least a frame."""
        if self._sent and _ahead(candidate, self._last_ts) < self.frame_samples:
            return (self._last_ts + self.frame_samples) & _U32
        return candidate & _U32

    def originate(self, payload: bytes, clock: int, *, payload_type: int,
                  marker: bool = False) -> bytes:
        """Build a packet for a frame we produce at media-clock sample ``clock``."""
        if self._relaying or not self._sent:
            # Switching from relaying back to our own frames: re-anchor the clock
            # offset so the timestamp line keeps moving forward.
            wanted = (clock + self._clock_offset) & _U32
            self._clock_offset = (self._continue_ts(wanted) - clock) & _U32
            self._relaying = False
            self._source_ssrc = -1
            marker = True
        ts = (clock + self._clock_offset) & _U32
        seq = (self._seq + 1) & _U16
        size = RTP_HEADER + len(payload)
        _HEADER.pack_into(self._buf, 0, 0x80, (0x80 if marker else 0) | payload_type,
                          seq, ts, self.ssrc)
        self._buf[RTP_HEADER:size] = payload
        self._seq = seq
        self._last_ts = ts
        self._sent = True
        return bytes(self._view[:size])

    def relay(self, data: bytes, header: RtpHeader, clock: int, *, payload_type: int,
              translate: bytes | None = None) -> bytes:
        """Rewrite a received packet for this leg's stream.

        When ``header.ssrc`` differs from the previous relayed source (or we
        were originating), the sequence offset is chosen so the next number
        follows the last one sent, and the timestamp offset so the new source's
        timestamp lands on the media clock (never behind our last timestamp).
        Within one source, loss and reordering stay visible to the far end.
        ``translate`` converts the payload between G.711 laws.
        """
        if header.ssrc != self._source_ssrc or not self._relaying:
            self._source_ssrc = header.ssrc
            self._relaying = True
            self._seq_offset = (self._seq + 1 - header.seq) & _U16
            wanted = (clock + self._clock_offset) & _U32
            self._ts_offset = (self._continue_ts(wanted) - header.timestamp) & _U32
        seq = (header.seq + self._seq_offset) & _U16
        ts = (header.timestamp + self._ts_offset) & _U32
        start = header.payload_start
        end = header.payload_end
        size = RTP_HEADER + end - start
        if size > MAX_PACKET:
            raise ValueError("RTP packet too large to relay")
        _HEADER.pack_into(self._buf, 0, 0x80, (0x80 if header.marker else 0) | payload_type,
                          seq, ts, self.ssrc)
        if translate is None:
            self._buf[RTP_HEADER:size] = memoryview(data)[start:end]
        else:
            self._buf[RTP_HEADER:size] = data[start:end].translate(translate)
        if 0 < ((seq - self._seq) & _U16) < 0x8000:
            self._seq = seq
        if _ahead(ts, self._last_ts) > 0 or not self._sent:
            self._last_ts = ts
        self._sent = True
        return bytes(self._view[:size])
