"""RTP header parsing and the per-leg outgoing stream (originate and relay rewrite)."""

from __future__ import annotations

import random
import struct

import pytest

from ccswitch.media.rtp import RtpHeader, RtpSender, parse_rtp


def packet(*, pt: int = 0, seq: int = 1, ts: int = 160, ssrc: int = 0x1234, marker: bool = False,
           payload: bytes = b"\xff" * 160, csrcs: int = 0, ext_words: int | None = None,
           padding: int = 0) -> bytes:
    first = 0x80 | csrcs | (0x10 if ext_words is not None else 0) | (0x20 if padding else 0)
    data = struct.pack("!BBHII", first, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    data += b"\x00\x00\x00\x01" * csrcs
    if ext_words is not None:
        data += struct.pack("!HH", 0xBEDE, ext_words) + b"\x00" * (4 * ext_words)
    data += payload
    if padding:
        data += b"\x00" * (padding - 1) + bytes([padding])
    return data


def payload_of(data: bytes, header: RtpHeader) -> bytes:
    return data[header.payload_start:header.payload_end]


def sender() -> RtpSender:
    return RtpSender(ssrc=0xAAAA0001, initial_seq=100, initial_timestamp=5000,
                     rng=random.Random(1))


def test_parse_plain_packet() -> None:
    """A minimal RTP packet yields its fields and payload bounds."""
    data = packet(pt=8, seq=7, ts=999, ssrc=42, marker=True, payload=b"abc")
    h = parse_rtp(data)
    assert h is not None
    assert (h.payload_type, h.marker, h.seq, h.timestamp, h.ssrc) == (8, True, 7, 999, 42)
    assert payload_of(data, h) == b"abc"


def test_parse_skips_csrc_extension_and_padding() -> None:
    """CSRCs, a header extension and padding are excluded from the payload."""
    data = packet(payload=b"media", csrcs=2, ext_words=3, padding=4)
    h = parse_rtp(data)
    assert h is not None and payload_of(data, h) == b"media"


@pytest.mark.parametrize("junk", [
    b"",
    b"\x80\x00",                                         # shorter than a header
    b"\x40" + b"\x00" * 20,                              # version 1
    packet(csrcs=15, payload=b"")[:20],                 # CSRC list runs past the end
    packet(ext_words=100, payload=b"")[:40],            # extension runs past the end
    b"\xa0" + packet(payload=b"")[1:] + b"\x00",         # padding flag with a zero pad count
])
def test_parse_rejects_junk(junk: bytes) -> None:
    """Truncated, wrong-version or badly padded datagrams parse to None."""
    assert parse_rtp(junk) is None


def test_parse_rejects_muxed_rtcp() -> None:
    """An RTCP receiver report (PT 201) multiplexed on the port is not RTP."""
    rtcp = struct.pack("!BBHI", 0x81, 201, 7, 0x1234) + b"\x00" * 24
    assert parse_rtp(rtcp) is None


def test_parse_rejects_padding_longer_than_packet() -> None:
    """A pad count larger than the payload is junk."""
    data = bytearray(packet(payload=b"ab"))
    data[0] |= 0x20
    data[-1] = 200
    assert parse_rtp(bytes(data)) is None


def test_originate_writes_header_and_payload() -> None:
    """An originated frame carries our SSRC, PT, first seq and clock-based timestamp."""
    s = sender()
    out = s.originate(b"\x01" * 160, 0, payload_type=0)
    h = parse_rtp(out)
    assert h is not None
    assert (h.ssrc, h.payload_type, h.seq, h.timestamp) == (0xAAAA0001, 0, 100, 5000)
    assert h.marker and payload_of(out, h) == b"\x01" * 160


def test_originate_follows_media_clock() -> None:
    """Consecutive frames advance seq by 1 and timestamp with the media clock."""
    s = sender()
    heads = [parse_rtp(s.originate(b"\xff" * 160, clock, payload_type=0))
             for clock in (0, 160, 320, 1600)]
    assert [h.seq for h in heads if h] == [100, 101, 102, 103]
    assert [h.timestamp for h in heads if h] == [5000, 5160, 5320, 6600]


def test_sequence_wraps_at_16_bits() -> None:
    """The sequence number wraps from 65535 to 0."""
    s = RtpSender(initial_seq=65535, initial_timestamp=0)
    a = parse_rtp(s.originate(b"x", 0, payload_type=0))
    b = parse_rtp(s.originate(b"x", 160, payload_type=0))
    assert a is not None and b is not None and (a.seq, b.seq) == (65535, 0)


def test_relay_replaces_ssrc_and_keeps_payload_and_marker() -> None:
    """A relayed packet gets our SSRC; payload and marker are preserved."""
    s = sender()
    data = packet(ssrc=0x5555, seq=9000, ts=777, marker=True, payload=b"voice")
    h = parse_rtp(data)
    assert h is not None
    out = parse_rtp(r := s.relay(data, h, 0, payload_type=0))
    assert out is not None and out.ssrc == 0xAAAA0001 and out.marker
    assert payload_of(r, out) == b"voice"


def test_relay_continues_sequence_after_originating() -> None:
    """The first relayed packet follows the last originated sequence number."""
    s = sender()
    for i in range(3):
        s.originate(b"\xff" * 160, i * 160, payload_type=0)
    data = packet(ssrc=0x5555, seq=40000, ts=123456)
    h = parse_rtp(data)
    assert h is not None
    out = parse_rtp(s.relay(data, h, 3 * 160, payload_type=0))
    assert out is not None and out.seq == 103


def test_relay_maps_timestamp_with_offset_within_a_source() -> None:
    """Within one source, timestamps keep their spacing (offset mapping)."""
    s = sender()
    outs = []
    for i in range(4):
        data = packet(ssrc=0x5555, seq=10 + i, ts=90000 + 160 * i)
        h = parse_rtp(data)
        assert h is not None
        outs.append(parse_rtp(s.relay(data, h, 0, payload_type=0)))
    ts = [o.timestamp for o in outs if o]
    assert [b - a for a, b in zip(ts, ts[1:])] == [160, 160, 160]
    assert ts[0] == 5000


def test_relay_source_switch_keeps_stream_continuous() -> None:
    """A new source SSRC continues seq by one and timestamp monotonically (no reset)."""
    s = sender()
    last = None
    for i in range(5):
        data = packet(ssrc=0x1111, seq=500 + i, ts=1000 + 160 * i)
        h = parse_rtp(data)
        assert h is not None
        last = parse_rtp(s.relay(data, h, 160 * i, payload_type=0))
    data = packet(ssrc=0x2222, seq=3, ts=4_000_000_000)
    h = parse_rtp(data)
    assert h is not None and last is not None
    switched = parse_rtp(s.relay(data, h, 160 * 5, payload_type=0))
    assert switched is not None
    assert switched.seq == (last.seq + 1) & 0xFFFF
    assert 0 < (switched.timestamp - last.timestamp) % 2**32 <= 320
    assert switched.ssrc == last.ssrc == 0xAAAA0001


def test_relay_timestamp_never_goes_back_when_media_clock_lags() -> None:
    """If the media clock is behind the relayed line, the next source still moves forward."""
    s = sender()
    for i in range(50):  # the relayed source runs 50 frames while our clock stays at 0
        data = packet(ssrc=0x1111, seq=i, ts=160 * i)
        h = parse_rtp(data)
        assert h is not None
        last = parse_rtp(s.relay(data, h, 0, payload_type=0))
    out = parse_rtp(s.originate(b"\xff" * 160, 160, payload_type=0))
    assert out is not None and last is not None
    assert (out.timestamp - last.timestamp) % 2**32 == 160


def test_relay_maps_payload_type() -> None:
    """telephone-event PT 101 on one leg goes out as PT 96 on the other."""
    s = sender()
    data = packet(pt=101, payload=b"\x05\x0a\x00\xa0")
    h = parse_rtp(data)
    assert h is not None
    out = parse_rtp(r := s.relay(data, h, 0, payload_type=96))
    assert out is not None and out.payload_type == 96 and payload_of(r, out) == b"\x05\x0a\x00\xa0"


def test_relay_strips_csrc_extension_and_padding() -> None:
    """The rewritten packet has a bare 12-byte header and the payload only."""
    s = sender()
    data = packet(payload=b"media", csrcs=1, ext_words=2, padding=3)
    h = parse_rtp(data)
    assert h is not None
    assert s.relay(data, h, 0, payload_type=0)[12:] == b"media"


def test_relay_translates_payload() -> None:
    """A translate table is applied to the relayed payload."""
    s = sender()
    table = bytes(255 - i for i in range(256))
    data = packet(payload=b"\x00\x01")
    h = parse_rtp(data)
    assert h is not None
    assert s.relay(data, h, 0, payload_type=8, translate=table)[12:] == b"\xff\xfe"


def test_random_ssrc_differs_between_senders() -> None:
    """Senders pick independent random SSRCs."""
    assert len({RtpSender().ssrc for _ in range(8)}) > 1
