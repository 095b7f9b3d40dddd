"""Torture messages (in the spirit of RFC 4475) through the parser, check_request and a
real SipUdpProtocol + TransactionLayer + CallController.

Every fixture in tests/data/sip/torture has one row in CASES (tests/data/sip/torture/
README.md says the same in prose): what parse_message does with it, what
check_request says about it, and the final status that must go back on the wire
(None: nothing is sent).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock
from typing import Any, cast

import attrs
import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import FakeDatagramTransport
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher

from ccswitch.calls.runtime import CallController
from ccswitch.errors import SipParseError
from ccswitch.media.engine import MediaEngine
from ccswitch.metrics.registry import Metrics
from ccswitch.model import (
    Agent, CdrConfig, Config, Dialplan, Group, HttpConfig, Queue, RecordingConfig, Route,
    RtpConfig, SipConfig,
)
from ccswitch.routing.engine import RoutingEngine
from ccswitch.recording.finished import FinishedCall
from ccswitch.sip.message import Headers, Request, Response, SipURI, parse_message
from ccswitch.sip.transaction import ServerTransaction, TransactionLayer
from ccswitch.sip.transport import SipUdpProtocol
from ccswitch.sip.validate import Rejection, check_request

REPO = Path(__file__).resolve().parents[2]
TORTURE = REPO / "tests" / "data" / "sip" / "torture"
SOURCE = ("127.0.0.1", 5062)


@attrs.frozen(kw_only=True)
class Case:
    parse: int | None = None  # None: parses; else the SipParseError status
    check: int | None = None  # check_request's status (requests that parse)
    answer: int | None = None  # final status on the wire; None: dropped


CASES: dict[str, Case] = {
    # valid but weird
    "weird_whitespace_invite": Case(answer=200),
    "compact_forms": Case(answer=404),
    "many_vias": Case(answer=200),
    "unknown_method": Case(answer=405),
    "lowercase_method": Case(answer=405),
    "escaped_ruri_user": Case(answer=200),
    "ipv6_hosts": Case(answer=200),
    "keepalive_prefix": Case(answer=200),
    "options_max_forwards_zero": Case(answer=200),
    "binary_body_message": Case(answer=405),
    "register_star_contact": Case(answer=405),
    "unknown_via_transport": Case(answer=200),
    "long_header_value": Case(answer=200),
    "content_length_smaller": Case(answer=200),
    "reinvite_unknown_dialog": Case(answer=481),
    "bye_unknown_dialog": Case(answer=481),
    "cancel_unknown": Case(answer=481),
    "ack_stray": Case(answer=None),
    "utf8_display_name": Case(answer=200),
    "response_weird_reason": Case(answer=None),
    "response_unknown_code": Case(answer=None),
    "oversize_datagram": Case(parse=400),  # a 70 kB header line; the transport drops it first
    "non_sip_from_uri": Case(answer=200),
    "non_sip_to_and_from": Case(answer=200),
    "invite_tel_from": Case(answer=200),
    "escaped_nul_display_name": Case(answer=200),
    "rfc2543_invite": Case(answer=200),
    # rejected by check_request
    "invite_max_forwards_zero": Case(check=483, answer=483),
    "unknown_require": Case(check=420, answer=420),
    "unsupported_content_type": Case(check=415, answer=415),
    "unsupported_content_encoding": Case(check=415, answer=415),
    "body_without_content_type": Case(check=400, answer=400),
    "invite_without_contact": Case(check=400, answer=400),
    "rfc2543_invite_without_contact": Case(check=400, answer=400),
    "invite_bad_contact": Case(check=400, answer=400),
    "invite_bad_record_route": Case(check=400, answer=400),
    "invite_accept_no_sdp": Case(check=406, answer=406),
    # rejected by the parser
    "clen_larger_than_body": Case(parse=400, answer=400),
    "clen_negative": Case(parse=400, answer=400),
    "clen_huge": Case(parse=400, answer=400),
    "missing_call_id": Case(parse=400),
    "missing_cseq": Case(parse=400),
    "missing_from": Case(parse=400),
    "missing_to": Case(parse=400),
    "missing_via": Case(parse=400),
    "garbage_request_line": Case(parse=400),
    "request_line_extra_spaces": Case(parse=400, answer=400),
    "version_7": Case(parse=505, answer=505),
    "response_version_7": Case(parse=505),
    "unknown_ruri_scheme": Case(parse=416, answer=416),
    "ruri_in_angle_brackets": Case(parse=400, answer=400),
    "unclosed_ipv6_ruri": Case(parse=400, answer=400),
    "max_forwards_too_big": Case(parse=400, answer=400),
    "nul_in_header": Case(parse=400, answer=400),
    "unterminated_quote": Case(parse=400, answer=400),
    "non_utf8_header": Case(parse=400, answer=400),
    "non_utf8_in_from": Case(parse=400, answer=400),
    "response_bad_status_code": Case(parse=400),
    "response_status_below_100": Case(parse=400),
    "cseq_method_mismatch": Case(parse=400, answer=400),
    "cseq_too_big": Case(parse=400, answer=400),
    "duplicate_call_id": Case(parse=400, answer=400),
    "duplicate_content_length": Case(parse=400, answer=400),
    "bad_via_port": Case(parse=400, answer=400),
    "bad_header_name": Case(parse=400, answer=400),
    "empty_call_id": Case(parse=400, answer=400),
    "no_blank_line": Case(parse=400, answer=400),
    "continuation_first": Case(parse=400, answer=400),
    "folded_headers_bad_request": Case(parse=400, answer=400),
    "ruri_with_space": Case(parse=400, answer=400),
    "addr_spec_with_spaces": Case(parse=400, answer=400),
    "unreadable_but_answerable": Case(parse=400, answer=400),
    "malformed_ack": Case(parse=400),
}

# Requests check_request refuses that once leaked a call or an RTP port inside the B2BUA
# (found by the fuzz tests); test_b2bua_alone_does_not_leak feeds them past validation.
LEAKED_ONCE = {
    "invite_bad_contact": "_new_call opened the media leg before Dialog.as_uas parsed "
                          "Contact, and never closed it",
    "invite_bad_record_route": "unparseable Record-Route: the BYE after a missing ACK raised "
                               "in Dialog.destination, so the call and its RTP leg stayed",
}


def fixture(name: str) -> bytes:
    return (TORTURE / f"{name}.sip").read_bytes()


def parsed(name: str) -> Request | Response:
    return parse_message(fixture(name))


def parsed_request(name: str) -> Request:
    message = parsed(name)
    assert isinstance(message, Request)
    return message


ALL = sorted(CASES)
PARSING = [n for n in ALL if CASES[n].parse is None]
REQUESTS = [n for n in PARSING if not fixture(n).lstrip(b"\r\n").startswith(b"SIP/")]


# -- a B2BUA on a fake socket --------------------------------------------------------

class _Port:
    """What MediaEngine.open_leg gets from listenUDP (nothing is bound)."""

    maxThroughput = 0

    def stopListening(self) -> None:
        return None


class _UdpReactor:
    def listenUDP(self, port: int, protocol: Any, interface: str = "") -> _Port:
        return _Port()


class UncheckedController(CallController):
    """CallController without check_request in front: the B2BUA's own handling of what
    validation would have refused (defence in depth)."""

    def request_received(self, request: Request, source: tuple[str, int],
                         tx: ServerTransaction) -> None:
        with mock.patch("ccswitch.calls.inbound.check_request", return_value=None):
            super().request_received(request, source, tx)


@attrs.define
class Node:
    """SipUdpProtocol -> TransactionLayer -> CallController on a Clock, no real sockets."""

    protocol: SipUdpProtocol
    transport: FakeDatagramTransport
    layer: TransactionLayer
    controller: CallController
    media: MediaEngine
    clock: Clock

    def feed(self, datagram: bytes) -> list[bytes]:
        """Deliver one datagram from SOURCE; what went out on the wire meanwhile."""
        before = len(self.transport.written)
        self.protocol.datagramReceived(datagram, SOURCE)
        return [data for data, _ in self.transport.written[before:]]

    def settle(self, seconds: int = 100) -> None:
        """Let every SIP timer run out (no ACK, no answer from anyone)."""
        for _ in range(seconds):
            self.clock.advance(1)

    @property
    def leftovers(self) -> tuple[int, int, int]:
        """(calls, open media legs, live transactions)."""
        return self.controller.active_calls, self.media.legs, self.layer.transaction_count


def build_node(directory: Path, *, unchecked: bool = False,
               on_record: Callable[[FinishedCall], None] | None = None) -> Node:
    """Number 100 routes to queue support (agent alice); 127.0.0.0/8 is trusted.
    ``unchecked``: use UncheckedController instead of the plain CallController;
    ``on_record`` gets every finished call's record."""
    queue = Queue(name="support", group="inhouse",
                  announcement=REPO / "dialplans" / "sounds" / "qa_notice.wav")
    dialplan = Dialplan(agents={"alice": Agent(id="alice", uri="sip:alice@127.0.0.1:5090")},
                        groups={"inhouse": Group(name="inhouse", agents=("alice",))},
                        queues={"support": queue},
                        routes=(Route(queue="support", number="100"),))
    config = Config(sip=SipConfig(trusted=(ipaddress.ip_network("127.0.0.0/8"),)),
                    rtp=RtpConfig(), http=HttpConfig(),
                    recordings=RecordingConfig(directory=directory / "recordings"),
                    cdr=CdrConfig(database=directory / "cdr.sqlite"),
                    dialplan_dir=directory, dialplan=dialplan)
    clock = Clock()
    clock.advance(1_700_000_000)
    media = MediaEngine(_UdpReactor(), address="127.0.0.1", port_min=20000, port_max=20200,
                        clock=clock)
    kind = UncheckedController if unchecked else CallController
    controller = kind(clock=clock, config=config, engine=RoutingEngine(dialplan, clock=clock),
                      media=media, metrics=Metrics(), on_record=on_record)
    protocol = SipUdpProtocol()
    transport = FakeDatagramTransport()  # type: ignore[no-untyped-call]
    protocol.makeConnection(transport)
    layer = TransactionLayer(clock, protocol.send, controller, local_via_host="127.0.0.1",
                             local_port=5060)
    protocol.set_layer(layer)
    controller.attach(layer, 5060)
    return Node(protocol, transport, layer, controller, media, clock)


@contextmanager
def failures() -> Iterator[list[LogEvent]]:
    """Collects every log.failure (a swallowed exception) emitted inside the block."""
    seen: list[LogEvent] = []

    def observer(event: LogEvent) -> None:
        if "log_failure" in event:
            seen.append(event)

    watcher = cast(ILogObserver, observer)
    globalLogPublisher.addObserver(watcher)
    try:
        yield seen
    finally:
        globalLogPublisher.removeObserver(watcher)


def final_status(wire: list[bytes]) -> int | None:
    """The status of the last final response sent (100 Trying ignored), or None."""
    statuses = [int(data.split(b" ", 2)[1]) for data in wire if data.startswith(b"SIP/2.0 ")]
    finals = [s for s in statuses if s >= 200]
    return finals[-1] if finals else None


def header_line(data: bytes, pattern: bytes) -> bytes | None:
    """The first value of a header in raw bytes, folding undone and blanks collapsed."""
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", data)
    match = re.search(rb"(?im)^(?:" + pattern + rb")[ \t]*:[ \t]*(.*?)[ \t]*\r?$", unfolded)
    return re.sub(rb"[ \t]+", b" ", match.group(1)) if match else None


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return build_node(tmp_path)


# -- the fixture set ------------------------------------------------------------------

def test_every_fixture_has_an_expectation() -> None:
    """Each .sip file under torture/ has a row in CASES and vice versa."""
    assert sorted(p.stem for p in TORTURE.glob("*.sip")) == ALL


def test_readme_lists_every_fixture() -> None:
    """The torture README names every fixture."""
    readme = (TORTURE / "README.md").read_text()
    assert [name for name in ALL if f"`{name}.sip`" not in readme] == []


@pytest.mark.parametrize("name", ALL)
def test_fixture_uses_crlf_line_endings(name: str) -> None:
    """Every header line ends in CRLF (no bare LF before the body)."""
    data = fixture(name)
    end = data.find(b"\r\n\r\n", len(data) - len(data.lstrip(b"\r\n")))
    head = data if end < 0 else data[:end]
    assert b"\n" not in head.replace(b"\r\n", b"")


# -- parse_message ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_parse_outcome(name: str) -> None:
    """parse_message returns a message or raises SipParseError with the expected status."""
    expected = CASES[name].parse
    try:
        message = parse_message(fixture(name))
    except SipParseError as e:
        assert e.status == expected, e.reason
        return
    assert expected is None
    assert isinstance(message, (Request, Response))


@pytest.mark.parametrize("name", PARSING)
def test_parsed_fixture_round_trips(name: str) -> None:
    """What parses re-serialises to bytes that parse to the same wire form."""
    wire = parsed(name).to_bytes()
    assert parse_message(wire).to_bytes() == wire


def test_weird_whitespace_invite_values() -> None:
    """Folding, spaces around ':' and '=' and leading zeros are read as the plain forms."""
    request = parsed_request("weird_whitespace_invite")
    assert request.cseq == (9, "INVITE")
    assert request.to.uri.user == "100"
    assert request.from_.display == 'Caller "Q" Name' and request.from_.tag == "ws-1"
    assert request.top_via.branch == "z9hG4bKws1"
    assert request.headers.get("Subject") == "line one continued on line two and three"
    assert request.headers.get("Max-Forwards") == "0068"


def test_content_length_smaller_truncates_body() -> None:
    """Bytes beyond Content-Length in a datagram are discarded (RFC 3261 18.3)."""
    request = parsed_request("content_length_smaller")
    assert request.body.endswith(b"a=sendrecv\r\n")
    assert b"garbage" not in request.body


def test_many_vias_keeps_every_hop_in_order() -> None:
    """30 Via lines plus a comma-joined one give 34 hops, top first."""
    vias = parsed_request("many_vias").vias
    assert len(vias) == 34
    assert vias[0].branch == "z9hG4bKmanyvias" and vias[3].host == "[2001:db8::7]"


def test_binary_body_kept_byte_exact() -> None:
    """A body with NUL, 0xFF and CRLFCRLF inside is kept exactly."""
    request = parsed_request("binary_body_message")
    assert request.body == b"\x00\x01\x02binary\xff\xfe\x00\r\n\r\nnot headers\x00"


# -- check_request on the fixtures --------------------------------------------------------

@pytest.mark.parametrize("name", REQUESTS)
def test_check_request_outcome(name: str) -> None:
    """check_request rejects with the expected status, or lets the request through."""
    rejection = check_request(parsed_request(name))
    assert (None if rejection is None else rejection.status) == CASES[name].check


def test_unknown_require_lists_unsupported_tags() -> None:
    """420 carries Unsupported with every unknown option-tag, in order (8.2.2.3)."""
    rejection = check_request(parsed_request("unknown_require"))
    assert rejection == Rejection(status=420, reason="Bad Extension",
                                  headers=(("Unsupported", "x-frobnicate, x-teleport"),))


def test_unsupported_content_type_lists_accept() -> None:
    """415 for an unknown body type carries Accept with what we take."""
    rejection = check_request(parsed_request("unsupported_content_type"),
                              accepted_types=frozenset({"application/sdp", "text/plain"}))
    assert rejection is not None and rejection.status == 415
    assert rejection.headers == (("Accept", "application/sdp, text/plain"),)


def test_unsupported_content_encoding_lists_accept_encoding() -> None:
    """415 for gzip carries Accept-Encoding: identity."""
    rejection = check_request(parsed_request("unsupported_content_encoding"))
    assert rejection is not None
    assert rejection.headers == (("Accept-Encoding", "identity"),)


def test_options_with_max_forwards_zero_is_ours_to_answer() -> None:
    """OPTIONS with Max-Forwards 0 is not 483: we answer it ourselves (11, 16.3)."""
    assert check_request(parsed_request("options_max_forwards_zero")) is None


# -- check_request: direct cases ---------------------------------------------------------

def build(method: str = "INVITE", *, uri: SipURI | None = None, extra: tuple[tuple[str, str],
          ...] = (), body: bytes = b"", to_tag: str | None = None,
          drop: str | None = None) -> Request:
    to = "<sip:100@ccswitch.test>" + (f";tag={to_tag}" if to_tag else "")
    items = [("Via", "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKdirect"),
             ("Max-Forwards", "70"), ("From", "<sip:caller@127.0.0.1>;tag=d1"), ("To", to),
             ("Call-ID", "direct@127.0.0.1"), ("CSeq", f"1 {method}"),
             ("Contact", "<sip:caller@127.0.0.1:5062>"), *extra]
    headers = Headers([(n, v) for n, v in items if n != drop])
    return Request(method=method, uri=uri or SipURI(user="100", host="ccswitch.test"),
                   headers=headers, body=body)


def test_ack_is_never_rejected() -> None:
    """ACK gets None even with Max-Forwards 0 and an unknown Require: ACKs are not answered."""
    ack = build("ACK", extra=(("Require", "x-nope"),))
    ack.headers.set("Max-Forwards", "0")
    assert check_request(ack) is None


def test_cancel_ignores_require() -> None:
    """CANCEL is not judged on Require (RFC 3261 9.1)."""
    assert check_request(build("CANCEL", extra=(("Require", "x-nope"),))) is None


def test_supported_extension_passes_case_insensitively() -> None:
    """A Require tag we list in supported_extensions (any case) is accepted."""
    request = build(extra=(("Require", "Timer"),))
    assert check_request(request, supported_extensions=frozenset({"timer"})) is None


def test_in_dialog_max_forwards_zero_is_handled() -> None:
    """A re-INVITE with Max-Forwards 0 ends with us, so it is not 483."""
    request = build(to_tag="ours")
    request.headers.set("Max-Forwards", "0")
    assert check_request(request) is None


def test_max_forwards_checked_before_require() -> None:
    """With both problems, 483 wins over 420 (loop check first)."""
    request = build(extra=(("Require", "x-nope"),))
    request.headers.set("Max-Forwards", "0")
    rejection = check_request(request)
    assert rejection is not None and rejection.status == 483


def test_non_sip_request_uri_built_in_code_is_416() -> None:
    """A Request-URI with a tel scheme (possible for requests built in code) is 416."""
    rejection = check_request(build("OPTIONS", uri=SipURI(scheme="tel", host="x")))
    assert rejection is not None and rejection.status == 416


def test_scheme_checked_before_require() -> None:
    """416 comes before 420 (8.2.2.1 before 8.2.2.3)."""
    request = build("OPTIONS", uri=SipURI(scheme="tel", host="x"),
                    extra=(("Require", "x-nope"),))
    rejection = check_request(request)
    assert rejection is not None and rejection.status == 416


def test_missing_call_id_built_in_code_is_400() -> None:
    """A request built without Call-ID is 400 Missing Call-ID, not an exception."""
    assert check_request(build("OPTIONS", drop="Call-ID")) == Rejection(
        status=400, reason="Missing Call-ID")


def test_unparseable_to_built_in_code_is_400() -> None:
    """A garbage To header becomes a 400 rejection, never an exception."""
    request = build("OPTIONS")
    request.headers.set("To", '"unterminated <sip:x@y>')
    rejection = check_request(request)
    assert rejection is not None and rejection.status == 400


def test_content_type_parameters_and_case_are_ignored() -> None:
    """Application/SDP with a charset parameter is application/sdp."""
    request = build(body=b"v=0\r\n", extra=(("Content-Type", "Application/SDP; charset=utf-8"),
                                             ("Content-Encoding", "identity")))
    assert check_request(request) is None


def test_two_contacts_in_invite_is_400() -> None:
    """An INVITE must carry exactly one Contact (8.1.1.8)."""
    request = build(extra=(("Contact", "<sip:other@127.0.0.1>"),))
    assert check_request(request) == Rejection(status=400, reason="More Than One Contact")


@pytest.mark.parametrize("accept", ["application/*", "*/*;q=0.1", "text/plain, Application/SDP"])
def test_accept_admitting_sdp_passes(accept: str) -> None:
    """An INVITE whose Accept admits application/sdp (wildcards included) is handled."""
    assert check_request(build(extra=(("Accept", accept),))) is None


@pytest.mark.parametrize("accept", ["", "text/plain", "application/sdp;q=0", "*/*;q=0.0"])
def test_accept_without_sdp_is_406(accept: str) -> None:
    """An INVITE whose Accept admits no SDP (an empty one admits nothing, 20.1) is 406."""
    assert check_request(build(extra=(("Accept", accept),))) == Rejection(
        status=406, reason="Not Acceptable", headers=(("Accept", "application/sdp"),))


def test_accept_of_non_invite_is_not_judged() -> None:
    """Only an INVITE's answer carries SDP: an OPTIONS with Accept: text/plain passes."""
    assert check_request(build("OPTIONS", extra=(("Accept", "text/plain"),))) is None


def test_non_invite_body_type_is_not_judged() -> None:
    """Only INVITE bodies are checked: a MESSAGE with text/plain passes."""
    request = build("MESSAGE", body=b"hi", extra=(("Content-Type", "text/plain"),))
    assert check_request(request) is None


@pytest.mark.parametrize("status", [200, 700, 0])
def test_rejection_status_must_be_final_error(status: int) -> None:
    """A Rejection is validated when built: only 300-699."""
    with pytest.raises(ValueError):
        Rejection(status=status, reason="x")


def test_rejection_reason_must_be_one_line() -> None:
    """A reason phrase with a line break is refused."""
    with pytest.raises(ValueError):
        Rejection(status=400, reason="a\r\nInjected: yes")


# -- on the wire: SipUdpProtocol + TransactionLayer + CallController -----------------------

@pytest.mark.parametrize("name", ALL)
def test_wire_answer(node: Node, name: str) -> None:
    """The datagram gets the expected final status on the wire, or nothing at all."""
    with failures() as seen:
        wire = node.feed(fixture(name))
    assert final_status(wire) == CASES[name].answer
    assert seen == []


@pytest.mark.parametrize("name", ALL)
def test_nothing_leaks(node: Node, name: str) -> None:
    """Once every SIP timer has run out no call, media leg or transaction is left."""
    with failures() as seen:
        node.feed(fixture(name))
        node.settle()
    assert node.leftovers == (0, 0, 0)
    assert seen == []


@pytest.mark.parametrize("name", [n for n in ALL if CASES[n].answer is not None])
def test_answer_echoes_call_id_and_cseq(node: Node, name: str) -> None:
    """Every answer carries the request's Call-ID and CSeq (8.2.6.2)."""
    data = fixture(name)
    wire = node.feed(data)
    assert wire
    call_id = header_line(data, rb"call-id|i")
    cseq = header_line(data, rb"cseq")
    assert header_line(wire[-1], rb"call-id") == call_id
    assert header_line(wire[-1], rb"cseq") == cseq


def test_invite_gets_100_before_the_final(node: Node) -> None:
    """An INVITE is answered 100 Trying first, then its final response."""
    wire = node.feed(fixture("compact_forms"))
    assert [data.split(b" ", 2)[1] for data in wire] == [b"100", b"404"]


def test_weird_invite_becomes_a_call(node: Node) -> None:
    """The weird-but-valid INVITE to 100 creates one call, answered 200 with SDP."""
    wire = node.feed(fixture("weird_whitespace_invite"))
    response = parse_message(wire[-1])
    assert isinstance(response, Response) and response.status == 200
    assert response.headers.get("Content-Type") == "application/sdp"
    assert node.controller.active_calls == 1


def test_every_datagram_in_a_row_keeps_the_node_healthy(node: Node) -> None:
    """All fixtures back to back on one node (known leaks aside until wired), then an
    OPTIONS: still answered 200, nothing left over, no swallowed exception."""
    with failures() as seen:
        for name in ALL:
            node.feed(fixture(name))
        node.settle()
        wire = node.feed(fixture("many_vias"))
    assert final_status(wire) == 200
    assert node.leftovers[:2] == (0, 0)
    assert seen == []


@pytest.mark.parametrize("name", sorted(LEAKED_ONCE))
def test_b2bua_alone_does_not_leak(tmp_path: Path, name: str) -> None:
    """Without check_request in front, the B2BUA itself still leaves nothing behind."""
    node = build_node(tmp_path, unchecked=True)
    with failures() as seen:
        node.feed(fixture(name))
        node.settle()
    assert node.leftovers == (0, 0, 0)
    assert seen == []


def test_non_sip_from_uri_is_accepted() -> None:
    """From: <tel:+15550100> is legal in a request and parses."""
    request = parsed_request("non_sip_from_uri")
    assert request.from_.tag == "tt-telfrom"


def test_tel_from_invite_is_a_call_with_the_number_as_caller(tmp_path: Path) -> None:
    """An INVITE from a tel: URI becomes a call whose record names the number as caller."""
    records: list[FinishedCall] = []
    node = build_node(tmp_path, on_record=records.append)
    wire = node.feed(fixture("invite_tel_from"))
    assert final_status(wire) == 200 and node.controller.active_calls == 1
    node.settle()  # no ACK: the call ends, and its record is written
    assert [finished.record.caller for finished in records] == ["+15550100"]


def test_rfc2543_invite_is_confirmed_by_its_ack(node: Node) -> None:
    """An INVITE without a branch magic cookie is matched by the RFC 2543 rules (17.2.3):
    its retransmission is absorbed and its branchless ACK ends the 200's retransmissions,
    so the call stays up."""
    data = fixture("rfc2543_invite")
    ok = node.feed(data)[-1]
    assert node.feed(data) == []
    to = header_line(ok, rb"to")
    assert to is not None
    ack = (data.split(b"\r\n\r\n")[0].replace(b"INVITE sip:", b"ACK sip:", 1)
           .replace(b"CSeq: 1 INVITE", b"CSeq: 1 ACK")
           .replace(b"To: <sip:100@ccswitch.test>", b"To: " + to)
           .split(b"Content-Type")[0] + b"Content-Length: 0\r\n\r\n")
    node.feed(ack)
    sent = len(node.transport.written)
    node.clock.advance(40)  # past timer H: an unacknowledged 200 would have ended the call
    assert node.transport.written[sent:] == [] and node.controller.active_calls == 1


def test_error_answer_copies_folded_headers_exactly(node: Node) -> None:
    """A stateless 400 carries Via, From, To (plus a tag), Call-ID and CSeq exactly as
    sent, folding undone (RFC 3261 7.3.1), and no other header's continuation."""
    data = fixture("folded_headers_bad_request")
    answer = node.feed(data)[-1]
    for name in (rb"via", rb"from", rb"call-id", rb"cseq"):
        assert header_line(answer, name) == header_line(data, name)
    to = header_line(answer, rb"to")
    assert to is not None and to.startswith(header_line(data, rb"to") + b";tag=")


def test_unparseable_request_is_answered_with_its_own_bytes(node: Node) -> None:
    """No blank line, bytes that are not UTF-8 and a NUL: the 400 still goes out, with
    From and Call-ID copied byte for byte."""
    data = fixture("unreadable_but_answerable")
    answer = node.feed(data)[-1]
    assert answer.startswith(b"SIP/2.0 400 ")
    assert header_line(answer, rb"from") == header_line(data, rb"from")
    assert header_line(answer, rb"call-id") == b"torture-protos\x00@phone.ccswitch.test"


def test_error_answer_to_a_host_name_via_goes_to_the_source(node: Node) -> None:
    """A Via sent-by host name needs no DNS: received=<source IP> is added and the answer
    goes to that IP and the sent-by port (RFC 3261 18.2.1, 18.2.2)."""
    node.feed(fixture("unreadable_but_answerable"))
    data, addr = node.transport.written[-1]
    assert addr == (SOURCE[0], 5064)
    assert header_line(data, rb"via") == (b"SIP/2.0/UDP phone.ccswitch.test:5064;"
                                          b"branch=z9hG4bKprotos;received=127.0.0.1")


def test_escaped_request_uri_user_routes_like_plain(node: Node) -> None:
    """INVITE sip:%31%30%30@... reaches number 100's queue like sip:100@..."""
    assert final_status(node.feed(fixture("escaped_ruri_user"))) == 200

