"""Unit tests for the sans-I/O SIP message codec."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccswitch.errors import SipParseError
from ccswitch.sip.message import (
    REASONS, AbsoluteURI, Headers, NameAddr, Request, Response, SipURI, Via, canonical_name,
    make_response, new_branch, new_call_id, new_tag, parse_message,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "sip"
FIXTURES = sorted(p.name for p in DATA.glob("*.sip"))


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def parse_request(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def parse_response(data: bytes) -> Response:
    message = parse_message(data)
    assert isinstance(message, Response)
    return message


MINIMAL = (
    "INVITE sip:100@10.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKabc\r\n"
    "From: <sip:alice@10.0.0.2>;tag=f1\r\n"
    "To: <sip:100@10.0.0.1>\r\n"
    "Call-ID: c1@10.0.0.2\r\n"
    "CSeq: 1 INVITE\r\n"
)


def minimal(extra: str = "", body: str = "", *, drop: str | None = None,
            start: str | None = None) -> bytes:
    lines = MINIMAL.split("\r\n")[:-1]
    if start is not None:
        lines[0] = start
    if drop is not None:
        lines = [line for line in lines if not line.startswith(drop + ":")]
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n" + body).encode()


# -- Headers -----------------------------------------------------------------

def test_headers_get_is_case_insensitive() -> None:
    """Header names match regardless of case."""
    h = Headers([("call-id", "x@y")])
    assert h.get("CALL-ID") == "x@y"
    assert h.get("Call-Id") == "x@y"


@pytest.mark.parametrize("compact,full", [
    ("i", "Call-ID"), ("m", "Contact"), ("f", "From"), ("t", "To"), ("v", "Via"),
    ("l", "Content-Length"), ("c", "Content-Type"), ("k", "Supported"), ("s", "Subject"),
    ("e", "Content-Encoding"),
])
def test_headers_compact_names_expand(compact: str, full: str) -> None:
    """A compact-form name is stored and served under its full canonical name."""
    h = Headers([(compact, "v1")])
    assert h.get(full) == "v1"
    assert h.items() == [(full, "v1")]


@pytest.mark.parametrize("given_name,wire", [
    ("call-id", "Call-ID"), ("CSEQ", "CSeq"), ("www-authenticate", "WWW-Authenticate"),
    ("via", "Via"), ("record-route", "Record-Route"), ("max-forwards", "Max-Forwards"),
])
def test_headers_serialize_canonical_names(given_name: str, wire: str) -> None:
    """Known header names are written in their canonical spelling."""
    h = Headers([(given_name, "x")])
    assert h.items()[0][0] == wire
    assert canonical_name(given_name) == wire


def test_headers_unknown_name_kept_as_given() -> None:
    """An unknown extension header keeps the spelling it was given."""
    h = Headers([("X-UUID", "1")])
    assert h.items() == [("X-UUID", "1")]
    assert h.get("x-uuid") == "1"


def test_get_all_splits_via_values() -> None:
    """Several Via values in one header line come back as separate values."""
    h = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"),
                 ("Via", "SIP/2.0/TCP c;branch=z9hG4bK3")])
    assert h.get_all("via") == ["SIP/2.0/UDP a;branch=z9hG4bK1",
                                "SIP/2.0/UDP b;branch=z9hG4bK2",
                                "SIP/2.0/TCP c;branch=z9hG4bK3"]


def test_get_all_respects_quoted_commas() -> None:
    """A comma inside a quoted display name does not split a Contact/Route value."""
    h = Headers([("Route", '"Edge, SBC" <sip:sbc;lr>, <sip:core;lr>')])
    assert h.get_all("Route") == ['"Edge, SBC" <sip:sbc;lr>', "<sip:core;lr>"]


def test_get_all_respects_commas_inside_angle_brackets() -> None:
    """A comma inside <...> (URI headers part) does not split the value."""
    h = Headers([("Contact", "<sip:a@b?Subject=x,y>, <sip:c@d>")])
    assert h.get_all("Contact") == ["<sip:a@b?Subject=x,y>", "<sip:c@d>"]


def test_get_all_keeps_escaped_quote_inside_display() -> None:
    """An escaped quote inside a display name does not end the quoted string early."""
    h = Headers([("Contact", r'"A \"x, y\" B" <sip:a@b>, <sip:c@d>')])
    assert h.get_all("Contact") == [r'"A \"x, y\" B" <sip:a@b>', "<sip:c@d>"]


def test_get_all_does_not_split_non_list_headers() -> None:
    """Headers that are not comma lists (Subject, WWW-Authenticate) stay whole."""
    h = Headers([("Subject", "a, b"), ("WWW-Authenticate", 'Digest realm="x", nonce="y"')])
    assert h.get_all("Subject") == ["a, b"]
    assert h.get_all("WWW-Authenticate") == ['Digest realm="x", nonce="y"']


def test_get_all_splits_allow_and_supported() -> None:
    """Allow and Supported token lists are split and stripped."""
    h = Headers([("Allow", "INVITE,ACK , BYE"), ("k", "timer, 100rel")])
    assert h.get_all("Allow") == ["INVITE", "ACK", "BYE"]
    assert h.get_all("Supported") == ["timer", "100rel"]


def test_values_does_not_split() -> None:
    """values() returns the stored header values without list splitting."""
    h = Headers([("Via", "SIP/2.0/UDP a, SIP/2.0/UDP b")])
    assert h.values("Via") == ["SIP/2.0/UDP a, SIP/2.0/UDP b"]


def test_set_replaces_all_values_in_place() -> None:
    """set() replaces every value, keeping the first one's position."""
    h = Headers([("X-A", "1"), ("Route", "<sip:r1>"), ("X-B", "2"), ("Route", "<sip:r2>")])
    h.set("route", "<sip:new>")
    assert h.items() == [("X-A", "1"), ("Route", "<sip:new>"), ("X-B", "2")]


def test_set_appends_when_absent() -> None:
    """set() on a missing header appends it."""
    h = Headers([("X-A", "1")])
    h.set("Contact", "<sip:x>")
    assert h.items() == [("X-A", "1"), ("Contact", "<sip:x>")]


def test_add_first_goes_before_existing_values() -> None:
    """add(first=True) puts the value before the other values of that header."""
    h = Headers([("Max-Forwards", "70"), ("Via", "SIP/2.0/UDP b")])
    h.add("Via", "SIP/2.0/UDP a", first=True)
    assert h.items() == [("Max-Forwards", "70"), ("Via", "SIP/2.0/UDP a"),
                         ("Via", "SIP/2.0/UDP b")]


def test_add_first_without_existing_goes_to_top() -> None:
    """add(first=True) with no value of that header puts it at the very top."""
    h = Headers([("Max-Forwards", "70")])
    h.add("Via", "SIP/2.0/UDP a", first=True)
    assert h.items()[0] == ("Via", "SIP/2.0/UDP a")


def test_add_appends_in_order() -> None:
    """add() keeps insertion order for repeated headers."""
    h = Headers()
    h.add("Route", "<sip:1>")
    h.add("route", "<sip:2>")
    assert h.get_all("Route") == ["<sip:1>", "<sip:2>"]


def test_remove_drops_every_value() -> None:
    """remove() drops all values and is silent for a missing header."""
    h = Headers([("Via", "a"), ("To", "t"), ("v", "b")])
    h.remove("VIA")
    h.remove("X-Missing")
    assert h.items() == [("To", "t")]


def test_copy_is_independent() -> None:
    """Changing a copy leaves the original alone."""
    h = Headers([("To", "t")])
    c = h.copy()
    c.add("From", "f")
    c.set("To", "u")
    assert h.items() == [("To", "t")]
    assert c.items() == [("To", "u"), ("From", "f")]


def test_contains_understands_compact_and_case() -> None:
    """`in` matches full, compact and differently cased names."""
    h = Headers([("i", "x")])
    assert "Call-ID" in h
    assert "call-id" in h
    assert "To" not in h


def test_add_refuses_line_breaks() -> None:
    """A value with CR or LF is refused (header injection)."""
    h = Headers()
    with pytest.raises(ValueError):
        h.add("Subject", "x\r\nVia: evil")


# -- SipURI ------------------------------------------------------------------

def test_uri_parses_all_parts() -> None:
    """User, password, host, port, params and headers are all recognised."""
    uri = SipURI.parse("sip:alice:secret@example.com:5070;transport=tcp;lr?subject=hi")
    assert uri == SipURI(user="alice", password="secret", host="example.com", port=5070,
                         params=(("transport", "tcp"), ("lr", None)), headers="subject=hi")


@pytest.mark.parametrize("text", [
    "sip:alice@example.com", "sip:example.com", "sips:bob@10.0.0.1:5061;transport=tls",
    "sip:alice:pw@h.example.com:5060;lr;maddr=239.1.1.1?x=y&z=w", "sip:u@[2001:db8::1]:5070",
    "sip:+4930123;phone-context=example.com@gw.example.com;user=phone",
])
def test_uri_round_trips(text: str) -> None:
    """str(parse(uri)) gives the URI back unchanged."""
    assert str(SipURI.parse(text)) == text


def test_uri_ipv6_host_keeps_brackets_but_host_port_strips_them() -> None:
    """An IPv6 reference is stored bracketed; host_port returns the bare address."""
    uri = SipURI.parse("sip:bob@[2001:db8::5]:5080")
    assert uri.host == "[2001:db8::5]"
    assert uri.host_port() == ("2001:db8::5", 5080)


def test_uri_host_port_default_port() -> None:
    """Without a port, host_port uses the given default."""
    uri = SipURI.parse("sip:bob@[::1]")
    assert uri.host_port() == ("::1", 5060)
    assert uri.host_port(default_port=5080) == ("::1", 5080)


def test_uri_renders_bare_ipv6_host_with_brackets() -> None:
    """A URI built with an unbracketed IPv6 host still renders valid text."""
    assert str(SipURI(host="::1", port=5060)) == "sip:[::1]:5060"


def test_uri_param_lookup_is_case_insensitive() -> None:
    """param() finds parameters case-insensitively; valueless ones give None."""
    uri = SipURI.parse("sip:h;Transport=UDP;lr")
    assert uri.param("transport") == "UDP"
    assert uri.param("lr") is None
    assert uri.has_param("LR")
    assert not uri.has_param("maddr")


def test_uri_scheme_is_lowercased() -> None:
    """The scheme is case-insensitive and normalised to lower case."""
    assert SipURI.parse("SIPS:a@b").scheme == "sips"


@pytest.mark.parametrize("text", ["tel:+15551234567", "mailto:a@b", "http://x"])
def test_uri_unsupported_scheme_is_416(text: str) -> None:
    """A well-formed URI with a scheme other than sip/sips raises 416."""
    with pytest.raises(SipParseError) as e:
        SipURI.parse(text)
    assert e.value.status == 416


@pytest.mark.parametrize("text", [
    "alice@example.com", "sip:", "sip:alice@", "sip:a@b:70000", "sip:a@b:x",
    "sip:a@[::1", "sip:a@b c", "sip:@b", "sip:a@[zz::1]", "1sip:a@b", "sip:a@b;=x",
])
def test_uri_malformed_is_400(text: str) -> None:
    """Malformed URIs raise SipParseError with status 400."""
    with pytest.raises(SipParseError) as e:
        SipURI.parse(text)
    assert e.value.status == 400


# -- NameAddr ----------------------------------------------------------------

def test_name_addr_quoted_display_and_tag() -> None:
    """A quoted display name may contain commas and escaped quotes."""
    na = NameAddr.parse(r'"Smith, \"Al\"" <sip:al@example.com>;tag=88sja8x')
    assert na.display == 'Smith, "Al"'
    assert na.uri.user == "al"
    assert na.tag == "88sja8x"


def test_name_addr_unquoted_display() -> None:
    """Unquoted display tokens before <uri> form the display name."""
    na = NameAddr.parse("Alice Smith <sip:alice@example.com>")
    assert na.display == "Alice Smith"
    assert na.tag is None


def test_name_addr_bare_uri_params_are_header_params() -> None:
    """In the bare form, parameters after the URI belong to the header, not the URI."""
    na = NameAddr.parse("sip:alice@example.com;tag=x1;expires=60")
    assert na.uri == SipURI(user="alice", host="example.com")
    assert na.tag == "x1"
    assert na.param("expires") == "60"


def test_name_addr_uri_params_stay_inside_brackets() -> None:
    """Parameters inside <...> are URI parameters; those after are header params."""
    na = NameAddr.parse("<sip:bob@h;transport=tcp>;tag=t9")
    assert na.uri.param("transport") == "tcp"
    assert na.params == (("tag", "t9"),)


def test_name_addr_quoted_param_value_with_semicolon() -> None:
    """A quoted header parameter value may contain ';' and '<>'."""
    na = NameAddr.parse('<sip:a@b>;+sip.instance="<urn:uuid:1;2>";expires=30')
    assert na.param("+sip.instance") == '"<urn:uuid:1;2>"'
    assert na.param("expires") == "30"


def test_name_addr_with_tag_adds_and_replaces() -> None:
    """with_tag adds a tag, or replaces an existing one, without touching the original."""
    na = NameAddr.parse("<sip:a@b>")
    tagged = na.with_tag("t1")
    assert tagged.tag == "t1"
    assert na.tag is None
    assert tagged.with_tag("t2").params == (("tag", "t2"),)


def test_name_addr_str_always_uses_angle_brackets() -> None:
    """str() renders the <uri> form, quoting the display name."""
    assert str(NameAddr.parse("sip:a@b;tag=1")) == "<sip:a@b>;tag=1"
    assert str(NameAddr.parse('Bob <sip:b@h>')) == '"Bob" <sip:b@h>'
    assert str(NameAddr(display='Say "hi"', uri=SipURI(host="h"))) == r'"Say \"hi\"" <sip:h>'


def test_name_addr_round_trips_through_str() -> None:
    """parse(str(x)) == x for a display name with specials."""
    na = NameAddr.parse(r'"Ops, \"Night\" \\ Desk" <sip:ops@[::1]:5062;transport=udp>;tag=z')
    assert NameAddr.parse(str(na)) == na


@pytest.mark.parametrize("text", [
    '"unterminated <sip:a@b>', "<sip:a@b", '"x" sip:a@b', "<sip:a@b> junk",
    "Alice sip:a@b", "<tel>", "<:x>", "",
])
def test_name_addr_malformed_raises(text: str) -> None:
    """Malformed name-addr values raise SipParseError."""
    with pytest.raises(SipParseError):
        NameAddr.parse(text)


@pytest.mark.parametrize("text", ["<sip:a@b >", "< sip:a@b>", '"A" <sip:a@b\t>;tag=1'])
def test_name_addr_with_whitespace_inside_brackets_raises(text: str) -> None:
    """An addr-spec with LWS inside the angle brackets is a 400 (RFC 3261 25.1)."""
    with pytest.raises(SipParseError) as e:
        NameAddr.parse(text)
    assert e.value.status == 400


@pytest.mark.parametrize("text,scheme", [
    ("<tel:+15550100;phone-context=example.com>;tag=t1", "tel"),
    ('"Web" <http://example.com/who?x=1>;tag=t1', "http"),
    ("urn:service:sos;tag=t1", "urn"),
])
def test_name_addr_with_non_sip_uri_parses(text: str, scheme: str) -> None:
    """From/To may carry any absoluteURI (RFC 3261 20.20, 20.39); params stay header params."""
    na = NameAddr.parse(text)
    assert isinstance(na.uri, AbsoluteURI) and na.uri.scheme == scheme
    assert na.tag == "t1"


def test_tel_uri_user_is_its_number() -> None:
    """A tel: URI's user is the number without its parameters; other schemes have none."""
    assert AbsoluteURI.parse("tel:+15550100;phone-context=x").user == "+15550100"
    assert AbsoluteURI.parse("urn:service:sos").user is None


def test_non_sip_uri_is_not_a_sip_uri() -> None:
    """sip_uri refuses a tel: address with a 400, since ccswitch cannot send to it."""
    with pytest.raises(SipParseError) as e:
        NameAddr.parse("<tel:+15550100>").sip_uri
    assert e.value.status == 400


def test_request_with_tel_from_and_http_to_parses() -> None:
    """A request whose From is tel: and To is http: parses; only the Request-URI is judged."""
    data = minimal().replace(b"From: <sip:alice@10.0.0.2>", b"From: <tel:+15550100>") \
        .replace(b"To: <sip:100@10.0.0.1>", b"To: <http://example.com/b>")
    request = parse_message(data)
    assert str(request.from_.uri) == "tel:+15550100" and str(request.to.uri) == \
        "http://example.com/b"


def test_escaped_nul_in_quoted_string_parses() -> None:
    """A quoted-pair escaping NUL inside a display name is legal (RFC 3261 25.1)."""
    request = parse_message(minimal().replace(b"From: <sip:", b'From: "A\\\x00B" <sip:'))
    assert request.from_.display == "A\x00B"


@pytest.mark.parametrize("value", [b'"A\x00B" <sip:x@y>', b'A\\\x00B', b'"A" \\\x00'])
def test_bare_nul_in_headers_is_still_400(value: bytes) -> None:
    """A NUL that is not escaped inside quotes makes the message a 400."""
    with pytest.raises(SipParseError) as e:
        parse_message(minimal(f"Subject: {value.decode()}\r\n"))
    assert e.value.status == 400 and "NUL" in e.value.reason


def test_display_name_with_control_characters_is_re_escaped() -> None:
    """str() escapes NUL and other controls as quoted-pairs, so the value parses back."""
    na = NameAddr(display="A\x00B\x7f", uri=SipURI(host="h"))
    assert str(na) == '"A\\\x00B\\\x7f" <sip:h>'
    assert NameAddr.parse(str(na)) == na


# -- Via -----------------------------------------------------------------------

def test_via_parses_rport_without_value() -> None:
    """A request Via with a bare rport has has_rport but no rport number."""
    via = Via.parse("SIP/2.0/UDP 10.0.0.2:5062;rport;branch=z9hG4bKx")
    assert (via.transport, via.host, via.port) == ("UDP", "10.0.0.2", 5062)
    assert via.branch == "z9hG4bKx"
    assert via.has_rport
    assert via.rport is None


def test_via_response_address_prefers_received_and_rport() -> None:
    """received and rport override sent-by when answering (RFC 3581)."""
    via = Via.parse("SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bKx;received=203.0.113.7;rport=40000")
    assert via.received == "203.0.113.7"
    assert via.rport == 40000
    assert via.response_address() == ("203.0.113.7", 40000)


def test_via_response_address_falls_back_to_sent_by() -> None:
    """Without received/rport, responses go to sent-by with the default port."""
    assert Via.parse("SIP/2.0/UDP h.example.com;branch=z9hG4bK1").response_address() == \
        ("h.example.com", 5060)


def test_via_tolerates_whitespace_in_protocol() -> None:
    """Linear whitespace around '/' and ';' is accepted."""
    via = Via.parse("SIP / 2.0 / udp  host.example.com:5070 ; branch = z9hG4bK2 ;rport")
    assert via.transport == "UDP"
    assert via.port == 5070
    assert via.branch == "z9hG4bK2"


def test_via_ipv6_sent_by() -> None:
    """An IPv6 sent-by is kept bracketed; sent_by() strips the brackets."""
    via = Via.parse("SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bK3")
    assert via.host == "[2001:db8::9]"
    assert via.sent_by() == ("2001:db8::9", 5062)


def test_via_default_port_for_tls_is_5061() -> None:
    """sent_by() defaults to 5061 over TLS."""
    assert Via.parse("SIP/2.0/TLS h;branch=z9hG4bK4").sent_by() == ("h", 5061)


def test_via_with_param_and_str_round_trip() -> None:
    """with_param sets a parameter and str() renders the Via header value."""
    via = Via(transport="UDP", host="10.0.0.2", port=5060, params=(("branch", "z9hG4bK5"),
                                                                   ("rport", None)))
    stamped = via.with_param("received", "192.0.2.1").with_param("rport", "5099")
    assert str(stamped) == "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK5;received=192.0.2.1;rport=5099"
    assert Via.parse(str(stamped)) == stamped


@pytest.mark.parametrize("text", [
    "SIP/3.0/UDP h", "HTTP/2.0/UDP h", "SIP/2.0 h", "SIP/2.0/UDP", "SIP/2.0/UDP h:99999",
])
def test_via_malformed_raises(text: str) -> None:
    """Malformed Via values raise SipParseError."""
    with pytest.raises(SipParseError):
        Via.parse(text)


# -- parse_message: fixtures -------------------------------------------------

def test_parse_pjsua_invite() -> None:
    """A pjsua INVITE parses with its URI, dialog headers and SDP body."""
    req = parse_request(fixture("pjsua_invite.sip"))
    assert req.method == "INVITE"
    assert req.uri == SipURI(user="100", host="127.0.0.1", port=5060)
    assert req.call_id == "5f0c2a7e-1b3d-4c8e-9f6a-2d4b8e1c3a57"
    assert req.cseq == (25519, "INVITE")
    assert req.from_.display == "Agent Test"
    assert req.from_.tag == "9d1e8b6a-7c2f-4a55-8a0e-3b2d5c6f7e81"
    assert req.to.tag is None
    assert req.top_via.has_rport
    assert req.headers.get("Content-Type") == "application/sdp"
    assert req.body.startswith(b"v=0\r\n")
    assert len(req.body) == int(req.headers.get("Content-Length") or "")


def test_parse_asterisk_invite() -> None:
    """An Asterisk INVITE parses, including P-Asserted-Identity and Allow list."""
    req = parse_request(fixture("asterisk_invite.sip"))
    assert req.from_.display == "+15551234567"
    assert req.uri.user == "5000"
    assert "PRACK" in req.headers.get_all("Allow")
    assert req.headers.get("p-asserted-identity") == \
        '"+15551234567" <sip:+15551234567@192.0.2.20>'


def test_parse_compact_lf_only_invite_with_keepalive_prefix() -> None:
    """Compact headers, LF-only line endings and leading CRLFs are all accepted."""
    data = fixture("compact_invite.sip")
    assert data.startswith(b"\r\n\r\n") and b"\r" not in data[4:]
    req = parse_request(data)
    assert req.call_id == "6C1B2F0E-1DD211B2-8A61C3F5-77B0E1D4@198.51.100.7"
    assert req.uri.param("user") == "phone"
    assert req.from_.tag == "4F2E1A-9C3"
    assert req.headers.get_all("Supported") == ["timer", "100rel"]
    assert req.headers.get("Contact") == "<sip:+4940987654@198.51.100.7:5060>"
    assert req.body.startswith(b"v=0\n") and req.body.endswith(b"a=ptime:30\n")


def test_parse_folded_headers_and_ipv6() -> None:
    """Continuation lines are joined, including a Via list folded across two lines."""
    req = parse_request(fixture("folded_options.sip"))
    assert req.headers.get("Subject") == "a header folded over three lines"
    assert [v.branch for v in req.vias] == ["z9hG4bKfold1", "z9hG4bKfold2"]
    assert req.vias[1].received == "203.0.113.9"
    assert req.top_via.sent_by() == ("2001:db8::20", 5062)
    assert req.uri.host_port() == ("2001:db8::10", 5060)
    assert req.from_.display == "Ops, Monitor"
    assert req.headers.get("Max-Forwards") == "70"


def test_parse_response_with_multiple_vias_in_one_header() -> None:
    """A 180 with two Vias in one header and a third on its own keeps hop order."""
    resp = parse_response(fixture("ringing_multi_via.sip"))
    assert (resp.status, resp.reason) == (180, "Ringing")
    assert [v.branch for v in resp.vias] == ["z9hG4bKproxy77", "z9hG4bKuac01",
                                             "z9hG4bKorigin"]
    assert resp.vias[1].rport == 5080
    assert resp.to.tag == "to-2"
    assert resp.headers.get_all("Record-Route") == [
        "<sip:10.1.0.5;lr;ftag=abc>", '"Edge, SBC" <sip:sbc.example.com;lr>',
        "<sip:core.example.com;lr>"]


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_round_trips(name: str) -> None:
    """parse -> to_bytes -> parse keeps start line, headers and body."""
    first = parse_message(fixture(name))
    second = parse_message(first.to_bytes())
    assert second == first
    assert second.to_bytes() == first.to_bytes()


def test_fixtures_present() -> None:
    """The captured-style fixtures are all there (guards the parametrised tests)."""
    assert len(FIXTURES) >= 5


# -- parse_message: rules ----------------------------------------------------

def test_whitespace_around_colon_is_accepted() -> None:
    """Spaces and tabs before and after the colon are allowed."""
    req = parse_request(minimal("Subject \t:  hi there  \r\n"))
    assert req.headers.get("Subject") == "hi there"


def test_missing_content_length_takes_rest_as_body() -> None:
    """Over UDP a missing Content-Length means the body is the rest of the datagram."""
    req = parse_request(minimal(body="hello"))
    assert req.body == b"hello"


def test_body_truncated_to_content_length() -> None:
    """Bytes beyond Content-Length are dropped."""
    req = parse_request(minimal("Content-Length: 3\r\n", body="hello"))
    assert req.body == b"hel"


def test_content_length_larger_than_body_is_400() -> None:
    """A Content-Length promising more than the datagram holds is rejected."""
    with pytest.raises(SipParseError) as e:
        parse_message(minimal("Content-Length: 10\r\n", body="hello"))
    assert e.value.status == 400


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "", "99999999999", "\u0661"])
def test_bad_content_length_is_400(value: str) -> None:
    """A non-numeric or absurd Content-Length is rejected."""
    with pytest.raises(SipParseError):
        parse_message(minimal(f"Content-Length: {value}\r\n", body="x"))


@pytest.mark.parametrize("header", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_missing_mandatory_header_is_400(header: str) -> None:
    """Every mandatory header must be present."""
    with pytest.raises(SipParseError) as e:
        parse_message(minimal(drop=header))
    assert e.value.status == 400


def test_max_forwards_is_optional() -> None:
    """A request without Max-Forwards parses."""
    assert "Max-Forwards" not in parse_request(minimal()).headers


def test_bad_max_forwards_is_400() -> None:
    """A present but non-numeric Max-Forwards is rejected."""
    with pytest.raises(SipParseError):
        parse_message(minimal("Max-Forwards: lots\r\n"))


@pytest.mark.parametrize("cseq", ["x INVITE", "1", "1 INVITE extra", "2147483648 INVITE",
                                  "-1 INVITE", "1 INV ITE"])
def test_bad_cseq_is_400(cseq: str) -> None:
    """A malformed CSeq is rejected."""
    data = minimal().replace(b"CSeq: 1 INVITE", f"CSeq: {cseq}".encode())
    with pytest.raises(SipParseError) as e:
        parse_message(data)
    assert e.value.status == 400


def test_cseq_method_must_match_request_method() -> None:
    """A request whose CSeq method differs from its method is rejected."""
    with pytest.raises(SipParseError):
        parse_message(minimal(start="BYE sip:100@10.0.0.1 SIP/2.0"))


def test_ack_with_ack_cseq_parses() -> None:
    """ACK carries CSeq method ACK and parses."""
    data = minimal(start="ACK sip:100@10.0.0.1 SIP/2.0").replace(b"1 INVITE", b"1 ACK")
    assert parse_request(data).cseq == (1, "ACK")


@pytest.mark.parametrize("start", ["INVITE sip:100@10.0.0.1 SIP/3.0", "SIP/1.0 200 OK"])
def test_other_sip_version_is_505(start: str) -> None:
    """A SIP version other than 2.0 raises with status 505."""
    with pytest.raises(SipParseError) as e:
        parse_message(minimal(start=start))
    assert e.value.status == 505


def test_unsupported_request_uri_scheme_is_416() -> None:
    """A tel: Request-URI raises with status 416."""
    with pytest.raises(SipParseError) as e:
        parse_message(minimal(start="INVITE tel:+15551234567 SIP/2.0"))
    assert e.value.status == 416


@pytest.mark.parametrize("start", [
    "INVITE sip:100@10.0.0.1", "INVITE  sip:100@10.0.0.1 SIP/2.0", "INVITE sip:x SIP/2.0 x",
    "IN<VITE sip:100@10.0.0.1 SIP/2.0", "SIP/2.0 2000 OK", "SIP/2.0 099 Low", "SIP/2.0 abc OK",
    "HTTP/1.1 200 OK", "INVITE sip:100@10.0.0.1 HTTP/1.1", "",
])
def test_bad_start_line_is_400(start: str) -> None:
    """Malformed request and status lines are rejected with 400."""
    with pytest.raises(SipParseError) as e:
        parse_message(minimal(start=start))
    assert e.value.status == 400


def test_non_utf8_header_is_400() -> None:
    """Header bytes that are not UTF-8 are rejected."""
    with pytest.raises(SipParseError) as e:
        parse_message(minimal().replace(b"CSeq", b"Subject: caf\xe9\r\nCSeq"))
    assert e.value.status == 400


def test_utf8_display_name_is_accepted() -> None:
    """UTF-8 in header values (display names) is fine."""
    data = minimal().replace(b"From: <", 'From: "Zoë" <'.encode())
    assert parse_request(data).from_.display == "Zoë"


def test_non_utf8_body_is_accepted() -> None:
    """The body is opaque bytes; only headers must be UTF-8."""
    assert parse_request(minimal() + b"\xff\xfe").body == b"\xff\xfe"


def test_duplicate_single_header_is_400() -> None:
    """Two Call-ID headers make the message malformed."""
    with pytest.raises(SipParseError):
        parse_message(minimal("i: other@x\r\n"))


def test_missing_blank_line_is_400() -> None:
    """Headers must end with an empty line."""
    with pytest.raises(SipParseError):
        parse_message(MINIMAL.encode())


@pytest.mark.parametrize("data", [b"", b"\r\n\r\n", b"\n"])
def test_empty_or_keepalive_only_is_400(data: bytes) -> None:
    """An empty datagram or a bare keep-alive is not a message."""
    with pytest.raises(SipParseError):
        parse_message(data)


def test_header_line_without_colon_is_400() -> None:
    """A header line without a colon is rejected."""
    with pytest.raises(SipParseError):
        parse_message(minimal("garbage line\r\n"))


def test_continuation_before_any_header_is_400() -> None:
    """A folded line right after the start line has nothing to continue."""
    data = minimal().replace(b"SIP/2.0\r\n", b"SIP/2.0\r\n continued\r\n", 1)
    with pytest.raises(SipParseError):
        parse_message(data)


def test_response_reason_phrase_keeps_spaces() -> None:
    """A reason phrase with several words is kept; an empty one is allowed."""
    resp = parse_response(minimal(start="SIP/2.0 481 Call/Transaction Does Not Exist"))
    assert resp.reason == "Call/Transaction Does Not Exist"
    assert parse_response(minimal(start="SIP/2.0 200")).reason == ""


def test_response_cseq_method_is_not_checked_against_anything() -> None:
    """A response carries the CSeq of its request, whatever the method."""
    resp = parse_response(minimal(start="SIP/2.0 200 OK").replace(b"1 INVITE", b"2 BYE"))
    assert resp.cseq == (2, "BYE")


def test_bad_from_is_400() -> None:
    """A From header that is not a name-addr is rejected at parse time."""
    data = minimal().replace(b"From: <sip:alice@10.0.0.2>", b"From: <sip:alice@10.0.0.2")
    with pytest.raises(SipParseError):
        parse_message(data)


def test_bad_top_via_is_400() -> None:
    """A top Via that does not parse is rejected at parse time."""
    data = minimal().replace(b"SIP/2.0/UDP 10.0.0.2:5060", b"nonsense")
    with pytest.raises(SipParseError):
        parse_message(data)


# -- properties and serialisation --------------------------------------------

def test_properties_follow_header_changes() -> None:
    """Parsed values are cached but a changed header is parsed again."""
    req = parse_request(minimal())
    assert req.from_.tag == "f1"
    req.headers.set("From", "<sip:bob@h>;tag=f2")
    req.headers.set("CSeq", "9 INVITE")
    req.headers.add("Via", "SIP/2.0/TCP top;branch=z9hG4bKnew", first=True)
    assert req.from_.tag == "f2"
    assert req.cseq == (9, "INVITE")
    assert req.top_via.branch == "z9hG4bKnew"
    assert [v.branch for v in req.vias] == ["z9hG4bKnew", "z9hG4bKabc"]


def test_vias_is_empty_and_top_via_raises_without_via() -> None:
    """A locally built request has no Via until the transport adds one."""
    req = Request(method="OPTIONS", uri=SipURI(host="h"), headers=Headers())
    assert req.vias == []
    with pytest.raises(SipParseError):
        req.top_via
    with pytest.raises(SipParseError):
        req.call_id


def test_to_bytes_sets_content_length_from_body() -> None:
    """to_bytes always writes Content-Length from the actual body."""
    req = parse_request(minimal("Content-Length: 99\r\n", body="x" * 99))
    req.body = b"abc"
    wire = req.to_bytes()
    assert wire.count(b"Content-Length") == 1
    assert wire.endswith(b"Content-Length: 3\r\n\r\nabc")


def test_to_bytes_adds_content_length_zero() -> None:
    """A message without body gets Content-Length: 0 and ends with CRLF CRLF."""
    headers = Headers([("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"), ("To", "<sip:h>"),
                       ("From", "<sip:a@h>;tag=1"), ("i", "c@h"), ("CSeq", "1 OPTIONS")])
    wire = Request(method="OPTIONS", uri=SipURI(host="h"), headers=headers).to_bytes()
    assert wire.startswith(b"OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n")
    assert b"\r\nCall-ID: c@h\r\n" in wire
    assert wire.endswith(b"Content-Length: 0\r\n\r\n")


def test_response_to_bytes_status_line() -> None:
    """A response starts with its status line."""
    resp = Response(status=486, reason="Busy Here", headers=Headers())
    assert resp.to_bytes().startswith(b"SIP/2.0 486 Busy Here\r\n")


# -- make_response -----------------------------------------------------------

def test_make_response_copies_vias_in_order() -> None:
    """Every Via is copied in order, including several in one header line."""
    req = parse_request(minimal().replace(
        b"Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKabc",
        b"Via: SIP/2.0/UDP p1;branch=z9hG4bK1, SIP/2.0/UDP p2;branch=z9hG4bK2\r\n"
        b"Via: SIP/2.0/UDP p3;branch=z9hG4bK3"))
    resp = make_response(req, 100)
    assert [v.branch for v in resp.vias] == ["z9hG4bK1", "z9hG4bK2", "z9hG4bK3"]


def test_make_response_copies_dialog_headers() -> None:
    """From, To, Call-ID and CSeq are copied unchanged."""
    req = parse_request(minimal())
    resp = make_response(req, 486)
    for name in ("From", "To", "Call-ID", "CSeq"):
        assert resp.headers.get(name) == req.headers.get(name)
    assert (resp.status, resp.reason) == (486, "Busy Here")


def test_make_response_adds_to_tag_when_absent() -> None:
    """to_tag is added to a To without tag."""
    resp = make_response(parse_request(minimal()), 200, to_tag="t-1")
    assert resp.to.tag == "t-1"
    assert resp.to.uri == SipURI(user="100", host="10.0.0.1")


def test_make_response_keeps_existing_to_tag() -> None:
    """An existing To tag (in-dialog request) is never replaced."""
    req = parse_request(minimal().replace(b"To: <sip:100@10.0.0.1>",
                                          b"To: <sip:100@10.0.0.1>;tag=orig"))
    assert make_response(req, 200, to_tag="other").to.tag == "orig"


def test_make_response_reason_defaults_and_overrides() -> None:
    """The reason comes from REASONS, then the status class, unless given."""
    req = parse_request(minimal())
    assert make_response(req, 183).reason == "Session Progress"
    assert make_response(req, 499).reason == "Client Error"
    assert make_response(req, 403, "Forbidden (untrusted source)").reason == \
        "Forbidden (untrusted source)"


def test_make_response_body_and_extra_headers() -> None:
    """Body, Content-Type, Contact and extra headers are added; the result parses."""
    req = parse_request(minimal())
    resp = make_response(req, 200, to_tag="x", body=b"v=0\r\n", content_type="application/sdp",
                         contact="<sip:cc@10.0.0.1:5060>", headers=[("Allow", "INVITE, BYE")])
    back = parse_response(resp.to_bytes())
    assert back.body == b"v=0\r\n"
    assert back.headers.get("Content-Type") == "application/sdp"
    assert back.headers.get("Contact") == "<sip:cc@10.0.0.1:5060>"
    assert back.headers.get_all("Allow") == ["INVITE", "BYE"]


def test_make_response_copies_record_route_for_dialog_creating_responses() -> None:
    """Record-Route is copied into 1xx/2xx answers to INVITE, not into failures."""
    req = parse_request(minimal("Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\n"))
    assert make_response(req, 200, to_tag="t").headers.get_all("Record-Route") == \
        ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert "Record-Route" not in make_response(req, 486, to_tag="t").headers


def test_make_response_100_copies_timestamp() -> None:
    """100 Trying echoes the Timestamp header (RFC 3261 8.2.6.1)."""
    req = parse_request(minimal("Timestamp: 54\r\n"))
    assert make_response(req, 100).headers.get("Timestamp") == "54"


@pytest.mark.parametrize("status", [100, 180, 183, 200, 400, 403, 404, 405, 408, 416, 420,
                                    480, 481, 482, 483, 486, 487, 488, 500, 501, 503, 504,
                                    505, 513, 603])
def test_reasons_cover_usual_codes(status: int) -> None:
    """REASONS names every commonly used status code."""
    assert REASONS[status]


# -- identifiers --------------------------------------------------------------

def test_new_branch_has_magic_cookie_and_is_random() -> None:
    """Branches start with z9hG4bK and differ each time."""
    branches = {new_branch() for _ in range(50)}
    assert len(branches) == 50
    assert all(b.startswith("z9hG4bK") and len(b) > 7 for b in branches)


def test_new_tag_is_random() -> None:
    """Tags differ each time and are header-safe tokens."""
    tags = {new_tag() for _ in range(50)}
    assert len(tags) == 50
    assert all(t.isalnum() for t in tags)


def test_new_call_id_uses_host() -> None:
    """Call-IDs are random@host."""
    a, b = new_call_id("10.0.0.1"), new_call_id("10.0.0.1")
    assert a != b
    assert a.endswith("@10.0.0.1")


# -- properties (hypothesis) -------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_sip_parse_error(data: bytes) -> None:
    """parse_message on arbitrary bytes either parses or raises SipParseError."""
    try:
        parse_message(data)
    except SipParseError:
        pass


_SEEDS = [fixture(name) for name in FIXTURES] + [minimal()]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "dup"]))
        pos = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        if op == "replace" and data:
            data[pos] = draw(st.sampled_from(
                [0, 9, 10, 13, 32, 34, 44, 58, 59, 60, 62, 64, 91, 93, 0x80, 0xC3, 0xFF]
                + list(range(33, 127))))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(
                [b"\r\n", b"\n ", b":", b";", b",", b'"', b"<", b">", b"[", b"@", b"%00",
                 b"\xc3", b"9999999999", b" ", b"SIP/2.0", b"\r\n\r\n"]))
        elif op == "delete" and data:
            del data[pos:pos + draw(st.integers(min_value=1, max_value=20))]
        elif op == "truncate":
            del data[pos:]
        elif op == "dup" and data:
            data[pos:pos] = data[pos:pos + draw(st.integers(min_value=1, max_value=40))]
    return bytes(data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_raise_only_sip_parse_error(data: bytes) -> None:
    """Mutated real messages parse or raise SipParseError; what parses re-serialises."""
    try:
        message = parse_message(data)
    except SipParseError:
        return
    wire = message.to_bytes()
    assert parse_message(wire).to_bytes() == wire


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
                 min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(user=_token, host=st.from_regex(r"[a-z][a-z0-9]{0,10}(\.[a-z]{2,5}){0,2}", fullmatch=True),
       port=st.one_of(st.none(), st.integers(min_value=1, max_value=65535)),
       display=st.one_of(st.none(), st.text(
           st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20).filter(
           lambda s: s.strip() == s and s != "")),
       tag=_token, cseq=st.integers(min_value=0, max_value=2**31 - 1),
       body=st.binary(max_size=200))
def test_built_requests_round_trip(user: str, host: str, port: int | None, display: str | None,
                                   tag: str, cseq: int, body: bytes) -> None:
    """A request built from values serialises and parses back to the same values."""
    uri = SipURI(user=user, host=host, port=port)
    frm = NameAddr(uri=uri, display=display, params=(("tag", tag),))
    headers = Headers([("Via", f"SIP/2.0/UDP {host};branch={new_branch()}"),
                       ("From", str(frm)), ("To", str(NameAddr(uri=uri))),
                       ("Call-ID", new_call_id(host)), ("CSeq", f"{cseq} MESSAGE")])
    req = Request(method="MESSAGE", uri=uri, headers=headers, body=body)
    back = parse_request(req.to_bytes())
    assert back.uri == uri
    assert back.from_ == frm
    assert back.cseq == (cseq, "MESSAGE")
    assert back.body == body


def test_too_many_header_lines_are_refused() -> None:
    """A head of more than MAX_HEADER_LINES lines is a 400 before any header is parsed."""
    from ccswitch.sip.message import MAX_HEADER_LINES
    head = "OPTIONS sip:a@b SIP/2.0\r\n" + "X-A: 1\r\n" * (MAX_HEADER_LINES + 1) + "\r\n"
    with pytest.raises(SipParseError, match="header lines") as info:
        parse_message(head.encode())
    assert info.value.status == 400


def test_an_overlong_header_line_is_refused() -> None:
    """One header line above MAX_HEADER_LINE characters is a 400."""
    from ccswitch.sip.message import MAX_HEADER_LINE
    head = "OPTIONS sip:a@b SIP/2.0\r\nX-A: " + "a" * MAX_HEADER_LINE + "\r\n\r\n"
    with pytest.raises(SipParseError, match="longer than"):
        parse_message(head.encode())
