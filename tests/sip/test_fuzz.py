"""Hypothesis on the parsing and routing edge: parse_message, check_request and a whole
SipUdpProtocol + TransactionLayer + CallController never raise anything but
SipParseError, never log a swallowed exception and never leave a call behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccswitch.errors import SipParseError
from ccswitch.sip.message import Request, parse_message
from ccswitch.sip.validate import Rejection, check_request

from tests.sip.test_torture import CASES, build_node, failures, fixture

SDP = (b"v=0\r\no=fuzz 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n")

HEAD = [
    "INVITE sip:100@ccswitch.test SIP/2.0",
    "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKfuzz;rport",
    "Max-Forwards: 70",
    'From: "Fuzz" <sip:caller@127.0.0.1:5062>;tag=fz-1',
    "To: <sip:100@ccswitch.test>",
    "Call-ID: fuzz-1@127.0.0.1",
    "CSeq: 1 INVITE",
    "Contact: <sip:caller@127.0.0.1:5062>",
    "Content-Type: application/sdp",
]

NAMES = ["Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq", "Max-Forwards",
         "Contact", "m", "Content-Type", "c", "Content-Length", "l", "Content-Encoding", "e",
         "Require", "Supported", "Route", "Record-Route", "Expires", "X-Fuzz"]

# Values made of the characters a SIP parser has to be careful with.
_ALPHABET = st.sampled_from(list("abcXYZ019 \t:;,=@<>\"\\/[]%.+-_*?~'") + [
    "\x00", "\x7f", "\u00e9", "\u2603", "sip:", "tel:", "<sip:a@b>", "tag=", "branch=",
    "SIP/2.0/UDP ", "z9hG4bK", "\r\n ", "\r\n\t", "\r\n"])
VALUES = st.lists(_ALPHABET, max_size=12).map("".join)
URIS = st.one_of(
    st.sampled_from(["sip:100@ccswitch.test", "sips:100@[2001:db8::1]:5061;transport=tls",
                     "sip:%31%30%30@h", "tel:+15550100", "urn:service:sos", "sip:", "sip:@",
                     "<sip:100@h>", "sip:100@h?Subject=x&Priority=urgent", "*", "sip:a@b:0",
                     "sip:a@b:99999", "SIP:100@H", "sip:user;p=1@h;lr"]),
    VALUES)


@st.composite
def mutated_invite(draw: st.DrawFn) -> bytes:
    """A valid INVITE with header lines dropped, duplicated, garbled or added, a random
    Request-URI and a random (or true, or no) Content-Length."""
    lines = list(HEAD)
    if draw(st.booleans()):
        method, _, version = lines[0].split(" ")
        lines[0] = f"{method} {draw(URIS)} {version}"
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        op = draw(st.sampled_from(["drop", "dup", "garble", "add", "value"]))
        i = draw(st.integers(min_value=1, max_value=max(len(lines) - 1, 1)))
        if op == "drop" and len(lines) > 1:
            del lines[i % len(lines) or 1]
        elif op == "dup":
            lines.insert(i, lines[i % len(lines)])
        elif op == "garble":
            line = lines[i % len(lines)]
            cut = draw(st.integers(min_value=0, max_value=len(line)))
            lines[i % len(lines)] = line[:cut] + draw(VALUES) + line[cut:]
        elif op == "add":
            lines.insert(i, f"{draw(st.sampled_from(NAMES))}: {draw(VALUES)}")
        else:
            name = lines[i % len(lines)].partition(":")[0]
            lines[i % len(lines)] = f"{name}: {draw(VALUES)}"
    body = draw(st.sampled_from([SDP, b"", SDP[:40], b"\x00\xff" * 8, SDP + b"extra"]))
    kind = draw(st.integers(min_value=0, max_value=9))  # mostly the true length
    if kind <= 5:
        lines.append(f"Content-Length: {len(body)}")
    elif kind == 7:
        lines.append(f"Content-Length: {draw(st.integers(-3, 400))}")
    elif kind >= 8:
        lines.append("Content-Length: " + draw(st.sampled_from(
            ["", " ", "x", "1e3", "99999999999", "0x10", "+5", "\u0661"])))
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("utf-8") + body


def _through_codec(data: bytes) -> None:
    """parse_message and check_request raise nothing but SipParseError; what parses and
    passes re-serialises stably; a rejection is one of the statuses check_request uses."""
    try:
        message = parse_message(data)
    except SipParseError as e:
        assert 300 <= e.status <= 699
        return
    wire = message.to_bytes()
    assert parse_message(wire).to_bytes() == wire
    if isinstance(message, Request):
        rejection = check_request(message)
        assert rejection is None or (isinstance(rejection, Rejection)
                                     and rejection.status in (400, 406, 415, 416, 420, 483))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    """Arbitrary bytes: SipParseError or a message check_request can judge."""
    _through_codec(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_invite())
def test_mutated_invites(data: bytes) -> None:
    """Line-level mutations of a valid INVITE: SipParseError or a judgeable, stable message."""
    _through_codec(data)


FIXTURES = st.sampled_from(sorted(CASES))
POSITIONS = st.integers(min_value=0, max_value=2000)
JUNK = st.binary(min_size=1, max_size=4)


def _overwrite(name: str, position: int, junk: bytes) -> bytes:
    data = bytearray(fixture(name))
    position %= max(len(data), 1)
    data[position:position + len(junk)] = junk
    return bytes(data)


@settings(max_examples=200, deadline=None)
@given(FIXTURES, POSITIONS, JUNK)
def test_byte_flips_of_torture_fixtures(name: str, position: int, junk: bytes) -> None:
    """A torture fixture with a few bytes overwritten still only raises SipParseError."""
    _through_codec(_overwrite(name, position, junk))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fuzz-node")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_invite())
def test_mutated_invites_through_the_b2bua(workdir: Path, data: bytes) -> None:
    """Through transport, transactions and the call controller with check_request in
    front: no swallowed exception, at most one final answer, and nothing left once every
    timer has run out."""
    node = build_node(workdir)
    with failures() as seen:
        wire = node.feed(data)
        node.settle()
    finals = [d for d in wire if d.startswith(b"SIP/2.0 ") and not d.startswith(b"SIP/2.0 1")]
    assert len(finals) <= 1
    assert seen == []
    assert node.leftovers == (0, 0, 0)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FIXTURES, POSITIONS, JUNK)
def test_byte_flips_through_the_b2bua(workdir: Path, name: str, position: int,
                                      junk: bytes) -> None:
    """Byte-flipped torture fixtures through the whole node: nothing raised or logged as a
    failure, nothing left once every timer has run out."""
    node = build_node(workdir)
    with failures() as seen:
        node.feed(_overwrite(name, position, junk))
        node.settle()
    assert seen == []
    assert node.leftovers == (0, 0, 0)
