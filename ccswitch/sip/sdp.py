"""SDP offer/answer for one audio stream (RFC 4566, RFC 3264, RFC 4733 events).

Pure functions: parse an offer, pick a codec, build our side. Anything we
cannot accept raises :class:`~ccswitch.errors.SdpError` (488 by default).
"""

from __future__ import annotations

import ipaddress
from typing import Sequence

import attrs

from ccswitch.errors import SdpError

__all__ = [
    "MediaFormat", "SessionDescription", "Negotiated", "parse_sdp", "build_sdp",
    "negotiate", "answer_formats", "offer_formats", "answer_direction", "is_hold",
    "STATIC_PAYLOAD_TYPES", "DIRECTIONS",
]

DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})
_RTP_PROFILES = frozenset({"RTP/AVP", "RTP/AVPF"})

# Static audio payload types (RFC 3551 table 4) we can name without an rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {
    0: ("PCMU", 8000), 3: ("GSM", 8000), 4: ("G723", 8000), 8: ("PCMA", 8000),
    9: ("G722", 8000), 13: ("CN", 8000), 15: ("G728", 8000), 18: ("G729", 8000),
}


def _check_pt(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 127:
        raise ValueError(f"payload type {value} not in 0..127")


def _check_encoding(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value or any(c in value for c in " \t\r\n/"):
        raise ValueError(f"bad encoding name {value!r}")


def _check_positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


def _check_line(instance: object, attribute: attrs.Attribute[str | None],
                value: str | None) -> None:
    if value is not None and ("\r" in value or "\n" in value):
        raise ValueError(f"{attribute.name} contains a line break")


@attrs.frozen(kw_only=True)
class MediaFormat:
    """One RTP payload format: ``0 PCMU/8000``, ``101 telephone-event/8000 0-16``."""

    payload_type: int = attrs.field(validator=_check_pt)
    encoding: str = attrs.field(validator=_check_encoding)
    clock_rate: int = attrs.field(default=8000, validator=_check_positive)
    fmtp: str | None = attrs.field(default=None, validator=_check_line)

    @property
    def is_telephone_event(self) -> bool:
        return self.encoding.lower() == "telephone-event"


def _check_direction(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in DIRECTIONS:
        raise ValueError(f"bad direction {value!r}")


def _check_port(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 < value <= 65535:
        raise ValueError(f"bad port {value}")


@attrs.frozen(kw_only=True)
class SessionDescription:
    """What we need from a peer's SDP: where to send audio, how, and in which formats."""

    address: str
    port: int = attrs.field(validator=_check_port)
    formats: tuple[MediaFormat, ...]
    direction: str = attrs.field(default="sendrecv", validator=_check_direction)
    ptime: int | None = None
    origin_username: str = "-"
    session_id: int = 0
    session_version: int = 0
    protocol: str = "RTP/AVP"
    media: tuple[str, ...] = ("audio",)
    """Media types of every m= line, in order (answers must keep the same count)."""


@attrs.frozen(kw_only=True)
class Negotiated:
    """The outcome of offer/answer: one voice codec and, optionally, RFC 4733 events."""

    codec: MediaFormat
    telephone_event: MediaFormat | None = None


def _address(nettype: str, addrtype: str, address: str, line: str) -> str:
    if nettype != "IN":
        raise SdpError(f"unsupported network type in {line!r}")
    address = address.split("/", 1)[0]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise SdpError(f"bad connection address in {line!r}") from None
    if addrtype == "IP4" and ip.version == 4 or addrtype == "IP6" and ip.version == 6:
        return address
    raise SdpError(f"unsupported or mismatched address type in {line!r}")


def _int(text: str, line: str, maximum: int | None = None) -> int:
    if not text or len(text) > 40 or not text.isascii() or not text.isdigit():
        raise SdpError(f"malformed SDP line {line[:80]!r}")
    value = int(text)
    if maximum is not None and value > maximum:
        raise SdpError(f"value out of range in {line[:80]!r}")
    return value


def parse_sdp(body: bytes) -> SessionDescription:
    """Parse an SDP body, keeping the first audio stream. Unknown lines are ignored."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP is not UTF-8") from None

    version: str | None = None
    origin: tuple[str, int, int] | None = None
    session_conn: str | None = None
    session_dir: str | None = None
    media_types: list[str] = []
    # State of the first audio stream, filled while we are inside its m= section.
    in_audio = False
    audio_seen = False
    port = 0
    protocol = ""
    pts: list[int] = []
    media_conn: str | None = None
    media_dir: str | None = None
    ptime: int | None = None
    rtpmap: dict[int, tuple[str, int]] = {}
    fmtp: dict[int, str] = {}

    for raw in text.split("\n"):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise SdpError(f"malformed SDP line {line[:80]!r}")
        kind, value = line[0], line[2:]
        if kind == "v":
            version = value.strip()
        elif kind == "o":
            fields = value.split()
            if len(fields) != 6:
                raise SdpError(f"malformed SDP line {line[:80]!r}")
            origin = (fields[0], _int(fields[1], line), _int(fields[2], line))
        elif kind == "m":
            fields = value.split()
            if len(fields) < 3:
                raise SdpError(f"malformed SDP line {line[:80]!r}")
            media_types.append(fields[0])
            in_audio = False
            if fields[0] == "audio" and not audio_seen:
                audio_seen = in_audio = True
                port_text = fields[1].split("/", 1)[0]
                port = _int(port_text, line, 65535)
                protocol = fields[2]
                pts = [_int(f, line, 127) for f in fields[3:]]
        elif kind == "c":
            fields = value.split()
            if len(fields) != 3:
                raise SdpError(f"malformed SDP line {line[:80]!r}")
            if not media_types:
                session_conn = _address(fields[0], fields[1], fields[2], line)
            elif in_audio:
                media_conn = _address(fields[0], fields[1], fields[2], line)
        elif kind == "a":
            name, colon, arg = value.partition(":")
            name = name.strip()
            if name in DIRECTIONS and not colon:
                if not media_types:
                    session_dir = name
                elif in_audio:
                    media_dir = name
            elif not in_audio:
                continue
            elif name == "rtpmap":
                pt_text, _, spec = arg.strip().partition(" ")
                parts = spec.strip().split("/")
                if len(parts) < 2 or not parts[0]:
                    raise SdpError(f"malformed SDP line {line[:80]!r}")
                pt = _int(pt_text, line, 127)
                rate = _int(parts[1], line)
                if rate == 0:
                    raise SdpError(f"malformed SDP line {line[:80]!r}")
                rtpmap[pt] = (parts[0], rate)
            elif name == "fmtp":
                pt_text, _, params = arg.strip().partition(" ")
                fmtp[_int(pt_text, line, 127)] = params.strip()
            elif name == "ptime":
                arg = arg.strip()
                if arg.isascii() and arg.isdigit() and 0 < len(arg) <= 4 and int(arg) > 0:
                    ptime = int(arg)

    if version is None or version != "0":
        raise SdpError("missing or unsupported v= line")
    if origin is None:
        raise SdpError("missing o= line")
    if not audio_seen:
        raise SdpError("no audio stream offered")
    if port == 0:
        raise SdpError("audio stream rejected (port 0)")
    if protocol not in _RTP_PROFILES:
        raise SdpError(f"unsupported media transport {protocol[:40]!r}")
    address = media_conn or session_conn
    if address is None:
        raise SdpError("no c= line for the audio stream")

    formats: list[MediaFormat] = []
    for pt in pts:
        known = rtpmap.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
        if known is None:
            continue  # a dynamic type without rtpmap: unusable, skip it
        try:
            formats.append(MediaFormat(payload_type=pt, encoding=known[0],
                                       clock_rate=known[1], fmtp=fmtp.get(pt)))
        except ValueError as e:
            raise SdpError(f"bad format {pt}: {e}") from None
    return SessionDescription(
        address=address, port=port, formats=tuple(formats),
        direction=media_dir or session_dir or "sendrecv", ptime=ptime,
        origin_username=origin[0], session_id=origin[1], session_version=origin[2],
        protocol=protocol, media=tuple(media_types))


def build_sdp(*, address: str, port: int, formats: Sequence[MediaFormat], session_id: int,
              session_version: int, direction: str = "sendrecv", ptime: int = 20,
              username: str = "ccswitch") -> bytes:
    """Our SDP for one audio stream, CRLF line endings."""
    if not formats:
        raise ValueError("build_sdp needs at least one format")
    if direction not in DIRECTIONS:
        raise ValueError(f"bad direction {direction!r}")
    if not 0 < port <= 65535:
        raise ValueError(f"bad port {port}")
    if not username or any(c.isspace() for c in username):
        raise ValueError(f"bad username {username!r}")
    addrtype = "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"
    lines = [
        "v=0",
        f"o={username} {session_id} {session_version} IN {addrtype} {address}",
        "s=ccswitch",
        f"c=IN {addrtype} {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(str(f.payload_type) for f in formats)}",
    ]
    for f in formats:
        lines.append(f"a=rtpmap:{f.payload_type} {f.encoding}/{f.clock_rate}")
        params = f.fmtp
        if params is None and f.is_telephone_event:
            params = "0-16"
        if params:
            lines.append(f"a=fmtp:{f.payload_type} {params}")
    lines.append(f"a=ptime:{ptime}")
    lines.append(f"a={direction}")
    lines.append("")
    return "\r\n".join(lines).encode("utf-8")


def negotiate(offer: SessionDescription, supported: Sequence[str] = ("PCMU", "PCMA"),
              prefer: str | None = None) -> Negotiated:
    """Pick the first 8 kHz codec in the offer's order that we support, plus
    telephone-event/8000 when offered (the offerer's payload types are kept).

    ``prefer`` wins wherever it is listed. For an answer to our offer that is the codec
    we listed first: RFC 3264 6.1 has the answerer send the first of our formats that
    its answer lists, so picking the same one keeps both directions on one codec.

    Encoding names are case-insensitive (RFC 4855): the codec comes back with its
    name upper-cased, the spelling the media engine knows it by."""
    wanted = {name.upper() for name in supported}
    preferred = prefer.upper() if prefer is not None and prefer.upper() in wanted else None
    codec: MediaFormat | None = None
    event: MediaFormat | None = None
    for f in offer.formats:
        if f.clock_rate != 8000:
            continue
        name = f.encoding.upper()
        if f.is_telephone_event:
            if event is None:
                event = f
        elif name in wanted and (codec is None or name == preferred != codec.encoding):
            codec = attrs.evolve(f, encoding=name)
    if codec is None:
        raise SdpError("no common codec", 488)
    return Negotiated(codec=codec, telephone_event=event)


# RFC 3264 6.1: the answer's direction is the offer's seen from the other end.
_MIRROR = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly",
           "inactive": "inactive"}


def _unspecified(address: str) -> bool:
    return ipaddress.ip_address(address).is_unspecified


def answer_direction(offer: SessionDescription) -> str:
    """Our answer's direction attribute for ``offer`` (RFC 3264 6.1): sendonly is
    answered recvonly, recvonly sendonly, inactive inactive. A connection address of
    0.0.0.0 (RFC 2543 hold, RFC 3264 8.4) means the offerer wants no media: inactive."""
    if _unspecified(offer.address):
        return "inactive"
    return _MIRROR[offer.direction]


def is_hold(offer: SessionDescription) -> bool:
    """Whether ``offer`` puts us on hold: it will not receive our media (sendonly,
    inactive, or the old-style 0.0.0.0 address)."""
    return _unspecified(offer.address) or offer.direction in ("sendonly", "inactive")


def answer_formats(n: Negotiated) -> tuple[MediaFormat, ...]:
    """The formats to put in our answer: the codec, then telephone-event if any."""
    if n.telephone_event is None:
        return (n.codec,)
    return (n.codec, n.telephone_event)


def offer_formats(preferred: str, supported: Sequence[str],
                  telephone_event_pt: int | None = None) -> tuple[MediaFormat, ...]:
    """The formats to offer a far end: ``preferred`` first (so it can answer with the
    codec the other leg already uses and nothing needs transcoding), then the rest of
    ``supported`` in order, each on its static payload type, then telephone-event on
    ``telephone_event_pt`` if given. ValueError for a codec without a static type."""
    static = {name.upper(): pt for pt, (name, _) in STATIC_PAYLOAD_TYPES.items()}
    names = [preferred.upper()]
    names += [n.upper() for n in supported if n.upper() != names[0]]
    formats: list[MediaFormat] = []
    for name in names:
        if name not in static:
            raise ValueError(f"no static payload type for {name!r}")
        formats.append(MediaFormat(payload_type=static[name], encoding=name))
    if telephone_event_pt is not None:
        formats.append(MediaFormat(payload_type=telephone_event_pt,
                                   encoding="telephone-event", fmtp="0-16"))
    return tuple(formats)
