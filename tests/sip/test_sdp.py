"""Unit tests for SDP parsing, building and offer/answer negotiation."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccswitch.errors import SdpError
from ccswitch.sip.message import parse_message
from ccswitch.sip.sdp import (
    MediaFormat, Negotiated, SessionDescription, answer_direction, answer_formats, build_sdp,
    is_hold, negotiate, offer_formats, parse_sdp,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "sip"

PCMU = MediaFormat(payload_type=0, encoding="PCMU")
PCMA = MediaFormat(payload_type=8, encoding="PCMA")
TE101 = MediaFormat(payload_type=101, encoding="telephone-event", fmtp="0-16")


def body_of(name: str) -> bytes:
    return parse_message((DATA / name).read_bytes()).body


def sdp(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


BASE = ("v=0", "o=- 1 2 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0")


def offer(*media: str, base: tuple[str, ...] = BASE) -> bytes:
    return sdp(*base, *media)


# -- parsing captured offers --------------------------------------------------

def test_parse_asterisk_offer() -> None:
    """Asterisk's offer: address, port, formats in order, ptime, direction, origin."""
    d = parse_sdp(body_of("asterisk_invite.sip"))
    assert (d.address, d.port) == ("192.0.2.20", 14562)
    assert d.formats == (PCMA, PCMU, TE101)
    assert d.ptime == 20
    assert d.direction == "sendrecv"
    assert (d.origin_username, d.session_id, d.session_version) == ("-", 1893612364, 1893612366)


def test_parse_pjsua_offer_media_level_connection() -> None:
    """pjsua puts c= at media level only; rtpmap clock rates and fmtp are kept."""
    d = parse_sdp(body_of("pjsua_invite.sip"))
    assert (d.address, d.port) == ("127.0.0.1", 4000)
    assert [f.payload_type for f in d.formats] == [96, 97, 98, 99, 3, 0, 8, 9, 120, 121, 122]
    assert d.formats[0] == MediaFormat(payload_type=96, encoding="speex", clock_rate=16000)
    assert d.formats[3].fmtp == "mode=30"
    assert d.formats[9] == MediaFormat(payload_type=121, encoding="telephone-event",
                                       fmtp="0-16")
    assert d.ptime is None


def test_parse_static_payload_types_without_rtpmap() -> None:
    """Static PTs 18, 0, 8 are known without rtpmap lines (LF-only body)."""
    d = parse_sdp(body_of("compact_invite.sip"))
    assert [(f.payload_type, f.encoding, f.clock_rate) for f in d.formats] == [
        (18, "G729", 8000), (0, "PCMU", 8000), (8, "PCMA", 8000)]
    assert d.ptime == 30
    assert d.origin_username == "CiscoSystemsSIP-GW-UserAgent"


@pytest.mark.parametrize("pt,name", [(0, "PCMU"), (8, "PCMA"), (18, "G729"), (3, "GSM"),
                                     (9, "G722")])
def test_static_payload_type_names(pt: int, name: str) -> None:
    """Each well-known static payload type gets its encoding name at 8000 Hz."""
    d = parse_sdp(offer(f"m=audio 5000 RTP/AVP {pt}"))
    assert d.formats == (MediaFormat(payload_type=pt, encoding=name, clock_rate=8000),)


def test_rtpmap_overrides_static_table() -> None:
    """An explicit rtpmap wins over the static table."""
    d = parse_sdp(offer("m=audio 5000 RTP/AVP 0", "a=rtpmap:0 pcmu/8000"))
    assert d.formats[0].encoding == "pcmu"


def test_dynamic_payload_without_rtpmap_is_skipped() -> None:
    """A dynamic PT with no rtpmap cannot be used and is left out."""
    d = parse_sdp(offer("m=audio 5000 RTP/AVP 96 0"))
    assert [f.payload_type for f in d.formats] == [0]


def test_rtpmap_with_channels() -> None:
    """An encoding with a channel count keeps name and rate."""
    d = parse_sdp(offer("m=audio 5000 RTP/AVP 111", "a=rtpmap:111 opus/48000/2"))
    assert d.formats[0] == MediaFormat(payload_type=111, encoding="opus", clock_rate=48000)


def test_media_level_connection_overrides_session_level() -> None:
    """A c= line in the audio section beats the session-level one."""
    d = parse_sdp(offer("m=audio 5000 RTP/AVP 0", "c=IN IP4 198.51.100.3"))
    assert d.address == "198.51.100.3"


def test_ipv6_connection() -> None:
    """IN IP6 connection addresses are accepted."""
    base = ("v=0", "o=- 1 1 IN IP6 2001:db8::1", "s=-", "c=IN IP6 2001:db8::1", "t=0 0")
    assert parse_sdp(offer("m=audio 5000 RTP/AVP 0", base=base)).address == "2001:db8::1"


def test_connection_ttl_suffix_is_dropped() -> None:
    """A multicast-style /ttl suffix is removed from the address."""
    base = BASE[:3] + ("c=IN IP4 233.252.0.1/127", "t=0 0")
    assert parse_sdp(offer("m=audio 5000 RTP/AVP 0", base=base)).address == "233.252.0.1"


@pytest.mark.parametrize("where", ["session", "media"])
def test_direction_attribute(where: str) -> None:
    """sendonly at session or media level sets the direction."""
    if where == "session":
        d = parse_sdp(sdp(*BASE, "a=sendonly", "m=audio 5000 RTP/AVP 0"))
    else:
        d = parse_sdp(offer("m=audio 5000 RTP/AVP 0", "a=sendonly"))
    assert d.direction == "sendonly"


def test_media_direction_overrides_session_direction() -> None:
    """A media-level direction wins over the session-level one."""
    d = parse_sdp(sdp(*BASE, "a=inactive", "m=audio 5000 RTP/AVP 0", "a=recvonly"))
    assert d.direction == "recvonly"


def test_first_audio_stream_wins_and_other_media_ignored() -> None:
    """Video before audio and a second audio stream do not disturb the first audio stream."""
    d = parse_sdp(offer("m=video 6000 RTP/AVP 96", "a=rtpmap:96 H264/90000", "a=ptime:99",
                        "c=IN IP4 203.0.113.99", "m=audio 5000 RTP/AVP 8", "a=ptime:40",
                        "m=audio 7000 RTP/AVP 0", "a=ptime:10"))
    assert (d.port, d.formats, d.ptime, d.address) == (5000, (PCMA,), 40, "192.0.2.1")
    assert d.media == ("video", "audio", "audio")


def test_unknown_lines_are_tolerated() -> None:
    """Unknown line types and attributes are ignored."""
    d = parse_sdp(sdp(*BASE, "b=AS:64", "z=0 0", "k=prompt", "a=group:BUNDLE 0",
                      "m=audio 5000 RTP/AVP 0", "a=rtcp:5001", "a=ice-ufrag:x", "a=weird",
                      "y=1234"))
    assert d.formats == (PCMU,)


def test_rtp_avpf_profile_is_accepted() -> None:
    """RTP/AVPF is close enough to RTP/AVP to answer."""
    assert parse_sdp(offer("m=audio 5000 RTP/AVPF 0")).protocol == "RTP/AVPF"


def test_port_with_count_is_accepted() -> None:
    """An m= port with a /count suffix uses the first port."""
    assert parse_sdp(offer("m=audio 5000/2 RTP/AVP 0")).port == 5000


# -- parse errors -------------------------------------------------------------

def _status(body: bytes) -> int:
    with pytest.raises(SdpError) as e:
        parse_sdp(body)
    return e.value.status


def test_no_audio_stream_is_488() -> None:
    """An offer without audio is refused with 488."""
    assert _status(offer("m=video 6000 RTP/AVP 96", "a=rtpmap:96 H264/90000")) == 488


def test_rejected_audio_port_zero_is_488() -> None:
    """An audio stream with port 0 is refused."""
    assert _status(offer("m=audio 0 RTP/AVP 0")) == 488


def test_missing_connection_is_488() -> None:
    """Without any c= line there is nowhere to send audio."""
    no_c = tuple(line for line in BASE if not line.startswith("c="))
    assert _status(offer("m=audio 5000 RTP/AVP 0", base=no_c)) == 488


def test_connection_in_other_media_section_does_not_count() -> None:
    """A c= line in a video section does not give the audio stream an address."""
    no_c = tuple(line for line in BASE if not line.startswith("c="))
    body = offer("m=video 6000 RTP/AVP 96", "c=IN IP4 192.0.2.7", "m=audio 5000 RTP/AVP 0",
                 base=no_c)
    assert _status(body) == 488


@pytest.mark.parametrize("line", ["c=ATM NSAP 47.0005", "c=IN IP4 2001:db8::1",
                                  "c=IN IP6 192.0.2.1", "c=IN IPX 1.2.3.4",
                                  "c=IN IP4 host.example.com", "c=IN IP4"])
def test_bad_connection_line_is_488(line: str) -> None:
    """Non-IN, non-IP4/IP6, mismatched or malformed connection data is refused."""
    base = BASE[:3] + (line, "t=0 0")
    assert _status(offer("m=audio 5000 RTP/AVP 0", base=base)) == 488


@pytest.mark.parametrize("media", [
    ("m=audio 5000 RTP/AVP x",), ("m=audio port RTP/AVP 0",), ("m=audio 70000 RTP/AVP 0",),
    ("m=audio 5000",), ("m=audio 5000 RTP/AVP 0", "a=rtpmap:0"),
    ("m=audio 5000 RTP/AVP 0", "a=rtpmap:x PCMU/8000"),
    ("m=audio 5000 RTP/AVP 0", "a=rtpmap:0 PCMU/fast"),
    ("m=audio 5000 RTP/AVP 0", "a=rtpmap:0 PCMU/0"), ("m=audio 5000 RTP/AVP 200",),
    ("m=audio 5000 RTP/AVP 0", "garbage"), ("m=audio 5000 RTP/AVP 0", "A=sendrecv"),
])
def test_malformed_lines_are_488(media: tuple[str, ...]) -> None:
    """Malformed m= and rtpmap lines, or non-SDP lines, are refused."""
    assert _status(offer(*media)) == 488


def test_srtp_profile_is_488() -> None:
    """An SRTP-only offer cannot be answered with plain RTP."""
    assert _status(offer("m=audio 5000 RTP/SAVP 0")) == 488


@pytest.mark.parametrize("body", [
    b"", b"\xff\xfe", sdp("v=1", *BASE[1:], "m=audio 5000 RTP/AVP 0"),
    sdp(*BASE[1:], "m=audio 5000 RTP/AVP 0"),
    sdp(BASE[0], *BASE[2:], "m=audio 5000 RTP/AVP 0"),
    sdp(BASE[0], "o=- x 1 IN IP4 1.2.3.4", *BASE[2:], "m=audio 5000 RTP/AVP 0"),
    sdp(BASE[0], "o=- 1 1 IN IP4", *BASE[2:], "m=audio 5000 RTP/AVP 0"),
])
def test_bad_session_section_is_488(body: bytes) -> None:
    """An empty or non-UTF-8 body, a bad v= or o= line, is refused."""
    assert _status(body) == 488


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_sdp_error(data: bytes) -> None:
    """parse_sdp on arbitrary bytes either parses or raises SdpError."""
    try:
        parse_sdp(data)
    except SdpError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([
    "v=0", "o=- 1 2 IN IP4 1.2.3.4", "s=-", "c=IN IP4 1.2.3.4", "c=IN IP6 ::1", "t=0 0",
    "m=audio 5000 RTP/AVP 0 8 101", "m=audio 0 RTP/AVP 0", "m=video 1 RTP/AVP 96",
    "a=rtpmap:101 telephone-event/8000", "a=rtpmap:96 x/0", "a=fmtp:101 0-15", "a=ptime:",
    "a=ptime:20", "a=sendonly", "a=rtpmap:", "a=fmtp:", "m=audio 1 RTP/AVP", "c=IN IP4",
    "x", "", "a=rtpmap:0 /8000", "a=rtpmap:0 PCMU/", "m=audio 5000 RTP/AVP 999",
]), max_size=12))
def test_shuffled_sdp_lines_raise_only_sdp_error(lines: list[str]) -> None:
    """Any arrangement of plausible lines parses or raises SdpError."""
    try:
        parse_sdp(("\r\n".join(lines)).encode())
    except SdpError:
        pass


# -- building ------------------------------------------------------------------

def test_build_sdp_exact_text() -> None:
    """build_sdp writes the expected lines with CRLF endings."""
    body = build_sdp(address="10.0.0.1", port=40000, formats=[PCMU, TE101],
                     session_id=42, session_version=43)
    assert body == (
        b"v=0\r\no=ccswitch 42 43 IN IP4 10.0.0.1\r\ns=ccswitch\r\nc=IN IP4 10.0.0.1\r\n"
        b"t=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
        b"a=sendrecv\r\n")


def test_build_sdp_defaults_telephone_event_fmtp() -> None:
    """telephone-event without fmtp gets 0-16; other formats get no fmtp line."""
    te = MediaFormat(payload_type=96, encoding="telephone-event")
    body = build_sdp(address="10.0.0.1", port=4000, formats=[PCMA, te], session_id=1,
                     session_version=1)
    assert b"a=fmtp:96 0-16\r\n" in body
    assert b"a=fmtp:8" not in body


def test_build_sdp_ipv6_options() -> None:
    """An IPv6 address uses IP6; direction, ptime and username are honoured."""
    body = build_sdp(address="2001:db8::1", port=4000, formats=[PCMU], session_id=1,
                     session_version=2, direction="sendonly", ptime=30, username="node1")
    text = body.decode()
    assert "o=node1 1 2 IN IP6 2001:db8::1\r\n" in text
    assert "c=IN IP6 2001:db8::1\r\n" in text
    assert text.endswith("a=ptime:30\r\na=sendonly\r\n")


@pytest.mark.parametrize("kwargs", [
    {"formats": []}, {"direction": "both"}, {"port": 0}, {"address": "not-an-ip"},
    {"username": "two words"},
])
def test_build_sdp_refuses_bad_arguments(kwargs: dict[str, object]) -> None:
    """build_sdp refuses values that would produce an invalid SDP."""
    args: dict[str, object] = {"address": "10.0.0.1", "port": 4000, "formats": [PCMU],
                               "session_id": 1, "session_version": 1}
    args.update(kwargs)
    with pytest.raises(ValueError):
        build_sdp(**args)  # type: ignore[arg-type]


def test_build_then_parse_round_trip() -> None:
    """parse_sdp(build_sdp(...)) gives back what was put in."""
    fmts = [PCMA, MediaFormat(payload_type=9, encoding="G722"), TE101]
    body = build_sdp(address="192.0.2.5", port=31000, formats=fmts, session_id=7,
                     session_version=9, direction="recvonly", ptime=40)
    d = parse_sdp(body)
    assert d == SessionDescription(address="192.0.2.5", port=31000, formats=tuple(fmts),
                                   direction="recvonly", ptime=40, origin_username="ccswitch",
                                   session_id=7, session_version=9)


@settings(max_examples=150, deadline=None)
@given(port=st.integers(min_value=1, max_value=65535),
       pts=st.lists(st.sampled_from([0, 8, 18, 3, 9]), min_size=1, max_size=5, unique=True),
       te=st.one_of(st.none(), st.integers(min_value=96, max_value=127)),
       sid=st.integers(min_value=0, max_value=2**62), ptime=st.integers(min_value=10, max_value=60),
       direction=st.sampled_from(["sendrecv", "sendonly", "recvonly", "inactive"]))
def test_build_parse_round_trip_property(port: int, pts: list[int], te: int | None, sid: int,
                                         ptime: int, direction: str) -> None:
    """Any sensible set of arguments survives build then parse."""
    fmts = [parse_sdp(offer(f"m=audio 1 RTP/AVP {pt}")).formats[0] for pt in pts]
    if te is not None:
        fmts.append(MediaFormat(payload_type=te, encoding="telephone-event", fmtp="0-16"))
    d = parse_sdp(build_sdp(address="10.1.2.3", port=port, formats=fmts, session_id=sid,
                            session_version=sid + 1, direction=direction, ptime=ptime))
    assert (d.port, d.formats, d.direction, d.ptime) == (port, tuple(fmts), direction, ptime)
    assert (d.session_id, d.session_version) == (sid, sid + 1)


# -- negotiation ---------------------------------------------------------------

def test_negotiate_follows_offer_order() -> None:
    """The first supported codec in the offer's order wins, not ours."""
    n = negotiate(parse_sdp(body_of("asterisk_invite.sip")))
    assert n == Negotiated(codec=PCMA, telephone_event=TE101)


def test_negotiate_skips_unsupported_and_wideband() -> None:
    """Speex, iLBC, GSM and non-8 kHz events are passed over; offerer's PTs are kept."""
    n = negotiate(parse_sdp(body_of("pjsua_invite.sip")))
    assert n.codec == PCMU
    assert n.telephone_event == MediaFormat(payload_type=121, encoding="telephone-event",
                                            fmtp="0-16")


def test_negotiate_is_case_insensitive() -> None:
    """Encoding names match regardless of case, in both offer and supported list."""
    d = parse_sdp(offer("m=audio 5000 RTP/AVP 0", "a=rtpmap:0 pcmu/8000"))
    assert negotiate(d, supported=("Pcmu",)).codec.payload_type == 0


def test_negotiate_upper_cases_the_codec_name() -> None:
    """A codec offered as ``pcma`` is negotiated as ``PCMA``, the media engine's name."""
    d = parse_sdp(offer("m=audio 5000 RTP/AVP 8", "a=rtpmap:8 pcma/8000"))
    assert negotiate(d).codec == PCMA


def test_negotiate_respects_supported_list() -> None:
    """Only codecs in `supported` are chosen."""
    d = parse_sdp(body_of("asterisk_invite.sip"))
    assert negotiate(d, supported=("PCMU",)).codec == PCMU


def test_negotiate_requires_8000_hz() -> None:
    """A supported name at another clock rate does not count."""
    d = parse_sdp(offer("m=audio 5000 RTP/AVP 96 8", "a=rtpmap:96 PCMU/16000"))
    assert negotiate(d).codec == PCMA


def test_negotiate_prefers_the_given_codec_wherever_it_is_listed() -> None:
    """An answer listing PCMA then PCMU, with PCMU preferred, negotiates PCMU."""
    d = parse_sdp(offer("m=audio 5000 RTP/AVP 8 0 101", "a=rtpmap:101 telephone-event/8000"))
    n = negotiate(d, prefer="pcmu")
    assert (n.codec, n.telephone_event) == (PCMU, MediaFormat(
        payload_type=101, encoding="telephone-event"))


def test_negotiate_falls_back_when_the_preferred_codec_is_absent() -> None:
    """Without the preferred codec, the first supported one in the offer is picked."""
    d = parse_sdp(offer("m=audio 5000 RTP/AVP 18 8"))
    assert negotiate(d, prefer="PCMU").codec == PCMA


def test_negotiate_ignores_a_preferred_codec_that_is_not_supported() -> None:
    """prefer only orders among supported codecs; it does not add one."""
    d = parse_sdp(offer("m=audio 5000 RTP/AVP 8 0"))
    assert negotiate(d, supported=("PCMA",), prefer="PCMU").codec == PCMA


def test_negotiate_without_telephone_event() -> None:
    """No telephone-event offered means none negotiated."""
    assert negotiate(parse_sdp(body_of("compact_invite.sip"))).telephone_event is None


def test_negotiate_no_common_codec_is_488() -> None:
    """Only G729 offered against PCMU/PCMA gives 'no common codec' (488)."""
    d = parse_sdp(offer("m=audio 5000 RTP/AVP 18 101", "a=rtpmap:101 telephone-event/8000"))
    with pytest.raises(SdpError) as e:
        negotiate(d)
    assert (e.value.status, e.value.reason) == (488, "no common codec")


def test_telephone_event_alone_is_not_a_codec() -> None:
    """telephone-event is never picked as the voice codec."""
    d = parse_sdp(offer("m=audio 5000 RTP/AVP 101", "a=rtpmap:101 telephone-event/8000"))
    with pytest.raises(SdpError):
        negotiate(d, supported=("telephone-event", "PCMU"))


def test_answer_formats_codec_then_event() -> None:
    """answer_formats lists the codec, then telephone-event when negotiated."""
    assert answer_formats(Negotiated(codec=PCMA, telephone_event=TE101)) == (PCMA, TE101)
    assert answer_formats(Negotiated(codec=PCMU, telephone_event=None)) == (PCMU,)


def test_answer_to_pjsua_offer_uses_offerer_payload_types() -> None:
    """The built answer reuses the offerer's payload types and its event fmtp."""
    n = negotiate(parse_sdp(body_of("pjsua_invite.sip")))
    answer = parse_sdp(build_sdp(address="10.0.0.1", port=4002, formats=answer_formats(n),
                                 session_id=5, session_version=5))
    assert [(f.payload_type, f.encoding) for f in answer.formats] == [
        (0, "PCMU"), (121, "telephone-event")]


# -- value validation ----------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"payload_type": 128}, {"payload_type": -1}, {"encoding": ""}, {"encoding": "PC MU"},
    {"encoding": "PCMU/8000"}, {"clock_rate": 0}, {"fmtp": "0-16\r\na=evil"},
])
def test_media_format_validates(kwargs: dict[str, object]) -> None:
    """MediaFormat refuses values that cannot appear in SDP."""
    args: dict[str, object] = {"payload_type": 0, "encoding": "PCMU"}
    args.update(kwargs)
    with pytest.raises(ValueError):
        MediaFormat(**args)  # type: ignore[arg-type]


def test_values_are_frozen() -> None:
    """Parsed values cannot be changed in place."""
    d = parse_sdp(body_of("asterisk_invite.sip"))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        d.port = 1  # type: ignore[misc]


# -- offers to agents and vendors ------------------------------------------------

def test_offer_lists_the_preferred_codec_first_then_the_others() -> None:
    """A PCMA caller's offer to an agent is PCMA, then PCMU, each on its static type."""
    assert offer_formats("PCMA", ("PCMU", "PCMA")) == (PCMA, PCMU)


def test_offer_keeps_the_supported_order_after_the_preferred_codec() -> None:
    """A PCMU caller's offer is PCMU, then PCMA (no codec listed twice)."""
    assert offer_formats("PCMU", ("PCMU", "PCMA")) == (PCMU, PCMA)


def test_offer_ends_with_telephone_event_when_asked() -> None:
    """telephone-event goes last, on the payload type given, with events 0-16."""
    assert offer_formats("pcmu", ("PCMU", "PCMA"), telephone_event_pt=101) == (
        PCMU, PCMA, TE101)


def test_offer_refuses_a_codec_without_static_payload_type() -> None:
    """A codec name without a static payload type is a ValueError, not a bad offer."""
    with pytest.raises(ValueError):
        offer_formats("opus", ("PCMU",))


def test_offer_is_answered_by_a_pcma_only_phone() -> None:
    """A far end that can only do PCMA finds it in the offer built for a PCMU caller."""
    formats = offer_formats("PCMU", ("PCMU", "PCMA"))
    body = build_sdp(address="10.0.0.1", port=4000, formats=formats, session_id=1,
                     session_version=1)
    assert negotiate(parse_sdp(body), supported=("PCMA",)).codec == PCMA


# -- hold: the answer's direction (RFC 3264 6.1, 8.4) --------------------------------


def test_sendonly_offer_is_answered_recvonly() -> None:
    """A hold offer (sendonly) is answered recvonly."""
    assert answer_direction(parse_sdp(offer("m=audio 5000 RTP/AVP 0", "a=sendonly"))) \
        == "recvonly"


def test_inactive_offer_is_answered_inactive() -> None:
    """An inactive offer is answered inactive."""
    assert answer_direction(parse_sdp(offer("m=audio 5000 RTP/AVP 0", "a=inactive"))) \
        == "inactive"


def test_unspecified_address_offer_is_answered_inactive() -> None:
    """An old-style hold (c=0.0.0.0, RFC 2543) is answered inactive, whatever a= says."""
    held = ("v=0", "o=- 1 2 IN IP4 192.0.2.1", "s=-", "c=IN IP4 0.0.0.0", "t=0 0")
    assert answer_direction(parse_sdp(offer("m=audio 5000 RTP/AVP 0", base=held))) \
        == "inactive"


def test_recvonly_offer_is_answered_sendonly() -> None:
    """A recvonly offer is answered sendonly."""
    assert answer_direction(parse_sdp(offer("m=audio 5000 RTP/AVP 0", "a=recvonly"))) \
        == "sendonly"


def test_sendrecv_offer_is_answered_sendrecv() -> None:
    """A plain offer (no direction: sendrecv) is answered sendrecv."""
    assert answer_direction(parse_sdp(offer("m=audio 5000 RTP/AVP 0"))) == "sendrecv"


def test_hold_is_sendonly_inactive_or_unspecified_address() -> None:
    """sendonly, inactive and c=0.0.0.0 put us on hold; sendrecv and recvonly do not."""
    held = ("v=0", "o=- 1 2 IN IP4 192.0.2.1", "s=-", "c=IN IP4 0.0.0.0", "t=0 0")
    m = "m=audio 5000 RTP/AVP 0"
    assert is_hold(parse_sdp(offer(m, "a=sendonly")))
    assert is_hold(parse_sdp(offer(m, "a=inactive")))
    assert is_hold(parse_sdp(offer(m, base=held)))
    assert not is_hold(parse_sdp(offer(m)))
    assert not is_hold(parse_sdp(offer(m, "a=recvonly")))
