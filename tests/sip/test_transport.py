"""The SIP UDP transport on real sockets (127.0.0.1) and on a fake datagram transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any, Callable

import attrs
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import FakeDatagramTransport
from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from ccswitch.sip.message import Request, Response, parse_message
from ccswitch.sip.transaction import ServerTransaction, TransactionLayer
from ccswitch.sip.transport import SipUdpProtocol

from tests.udp import HOST, Peer as UdpPeer
MAX_SIZE = 1500


class Peer(UdpPeer):
    """A far-end SIP phone socket that records what it receives."""

    def send(self, data: bytes, port: int) -> None:
        self.send_to(data, port)


@attrs.define
class RecordingTU:
    """Answers OPTIONS 200 and records every request."""

    requests: list[tuple[Request, tuple[str, int]]] = attrs.Factory(list)

    def request_received(self, request: Request, source: tuple[str, int],
                         tx: ServerTransaction) -> None:
        self.requests.append((request, source))
        tx.respond(200)

    def ack_received(self, request: Request, source: tuple[str, int]) -> None:
        pass

    def cancel_received(self, invite_tx: ServerTransaction) -> None:
        pass

    def stray_response(self, response: Response, source: tuple[str, int]) -> None:
        pass


@attrs.define
class Env:
    protocol: SipUdpProtocol
    tu: RecordingTU
    port: int
    phone: Peer


def options(peer_port: int, *, call_id: str = "opt-1", pad: int = 0) -> bytes:
    return (
        f"OPTIONS sip:ccswitch@{HOST} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{peer_port};branch=z9hG4bK{call_id};rport\r\n"
        "From: <sip:probe@127.0.0.1>;tag=p1\r\n"
        "To: <sip:ccswitch@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        f"X-Pad: {'x' * pad}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> Generator[
        Deferred[None], None, None]:
    """Let the reactor run until predicate() holds (bounded by timeout)."""
    for _ in range(int(timeout / 0.005)):
        if predicate():
            return
        yield deferLater(reactor, 0.005, lambda: None)
    assert predicate(), "condition not reached in time"


@pytest_twisted.async_yield_fixture
async def env() -> AsyncIterator[Env]:
    udp: Any = reactor
    tu = RecordingTU()
    protocol = SipUdpProtocol(max_size=MAX_SIZE)
    sip_port = udp.listenUDP(0, protocol, interface=HOST)
    port = sip_port.getHost().port
    protocol.set_layer(TransactionLayer(reactor, protocol.send, tu, local_via_host=HOST,
                                        local_port=port))
    phone = Peer()
    phone_port = udp.listenUDP(0, phone, interface=HOST)
    yield Env(protocol, tu, port, phone)
    await phone_port.stopListening()
    await sip_port.stopListening()


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """Formatted log lines emitted during the test."""
    lines: list[str] = []

    def observer(event: LogEvent) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    yield lines
    globalLogPublisher.removeObserver(observer)


# -- real sockets ---------------------------------------------------------------

@pytest_twisted.inlineCallbacks
def test_options_reaches_tu_and_gets_200(env: Env) -> Generator[Deferred[None], None, None]:
    """A valid OPTIONS is handed to the TU and its 200 comes back to the sender's port."""
    env.phone.send(options(env.phone.port), env.port)
    yield from wait_until(lambda: len(env.phone.received) >= 1)
    response = parse_message(env.phone.received[0][0])
    assert isinstance(response, Response) and response.status == 200
    assert [r.method for r, _ in env.tu.requests] == ["OPTIONS"]
    assert env.tu.requests[0][1] == (HOST, env.phone.port)


@pytest_twisted.inlineCallbacks
def test_garbage_is_dropped_without_reply(env: Env,
                                          logged: list[str]) -> Generator[
        Deferred[None], None, None]:
    """A garbage datagram gets no reply, is logged with its source, and breaks nothing."""
    env.phone.send(b"\x00\xffnot sip at all\r\n\r\n", env.port)
    env.phone.send(options(env.phone.port), env.port)
    yield from wait_until(lambda: len(env.tu.requests) >= 1)
    yield from wait_until(lambda: len(env.phone.received) >= 1)
    statuses = [parse_message(data).status for data, _ in env.phone.received]  # type: ignore[union-attr]
    assert statuses == [200]
    assert any("dropped malformed" in line and str(env.phone.port) in line for line in logged)


@pytest_twisted.inlineCallbacks
def test_malformed_readable_request_gets_400(env: Env) -> Generator[
        Deferred[None], None, None]:
    """A request with a bad Max-Forwards but the five core headers is answered 400."""
    bad = options(env.phone.port).replace(b"X-Pad: ", b"Max-Forwards: abc\r\nX-Pad: ")
    env.phone.send(bad, env.port)
    yield from wait_until(lambda: len(env.phone.received) >= 1)
    response = parse_message(env.phone.received[0][0])
    assert isinstance(response, Response) and response.status == 400
    assert response.call_id == "opt-1" and response.cseq == (1, "OPTIONS")
    assert response.to.tag is not None
    assert env.tu.requests == []


@pytest_twisted.inlineCallbacks
def test_malformed_request_from_a_host_name_via_is_answered(env: Env) -> Generator[
        Deferred[None], None, None]:
    """A Via naming an unresolvable host gets its 400 at the source IP and the Via port,
    with received=<source IP> added (RFC 3261 18.2.1/18.2.2), no DNS involved."""
    bad = options(env.phone.port).replace(f"{HOST}:{env.phone.port}".encode(),
                                          f"phone.invalid:{env.phone.port}".encode(), 1) \
        .replace(b";rport", b"").replace(b"X-Pad: ", b"Max-Forwards: abc\r\nX-Pad: ")
    env.phone.send(bad, env.port)
    yield from wait_until(lambda: len(env.phone.received) >= 1)
    response = parse_message(env.phone.received[0][0])
    assert isinstance(response, Response) and response.status == 400
    assert response.top_via.host == "phone.invalid" and response.top_via.received == HOST


@pytest_twisted.inlineCallbacks
def test_oversize_datagram_is_dropped(env: Env) -> Generator[Deferred[None], None, None]:
    """A datagram over max_size never reaches the TU and gets no reply."""
    big = options(env.phone.port, call_id="big", pad=MAX_SIZE)
    assert len(big) > MAX_SIZE
    env.phone.send(big, env.port)
    env.phone.send(options(env.phone.port, call_id="small"), env.port)
    yield from wait_until(lambda: len(env.phone.received) >= 1)
    assert [r.call_id for r, _ in env.tu.requests] == ["small"]
    assert len(env.phone.received) == 1


# -- fake transport -----------------------------------------------------------------

@attrs.define
class RaisingLayer:
    calls: int = 0

    def receive(self, message: object, source: tuple[str, int], **where: object) -> None:
        self.calls += 1
        raise RuntimeError("layer bug")


def fake_protocol(tu: RecordingTU | None = None, *,
                  rejected: Callable[[int], None] | None = None) -> tuple[
        SipUdpProtocol, FakeDatagramTransport]:
    protocol = SipUdpProtocol(max_size=MAX_SIZE, rejected=rejected)
    transport = FakeDatagramTransport()
    protocol.makeConnection(transport)
    protocol.set_layer(TransactionLayer(Clock(), protocol.send, tu or RecordingTU(),
                                        local_via_host=HOST, local_port=5060))
    return protocol, transport


def test_keepalive_is_ignored(logged: list[str]) -> None:
    """CRLF keep-alives are neither answered nor logged."""
    protocol, transport = fake_protocol()
    before = len(logged)
    protocol.datagramReceived(b"\r\n\r\n", (HOST, 5062))
    protocol.datagramReceived(b"", (HOST, 5062))
    assert transport.written == [] and len(logged) == before


def test_malformed_ack_is_never_answered() -> None:
    """A malformed ACK is dropped: ACKs never get a response."""
    protocol, transport = fake_protocol()
    bad = options(5062).replace(b"OPTIONS", b"ACK").replace(b"X-Pad: ", b"Max-Forwards: x\r\nX: ")
    protocol.datagramReceived(bad, (HOST, 5062))
    assert transport.written == []


def test_unsupported_version_gets_505() -> None:
    """A request for SIP/3.0 is answered 505 statelessly."""
    protocol, transport = fake_protocol()
    protocol.datagramReceived(options(5062).replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1),
                              (HOST, 5062))
    assert len(transport.written) == 1
    response = parse_message(transport.written[0][0])
    assert isinstance(response, Response) and response.status == 505


def test_error_response_without_rport_goes_to_via_port() -> None:
    """Without rport a stateless 400 goes to the source IP and the Via's port."""
    protocol, transport = fake_protocol()
    bad = options(5099).replace(b";rport", b"").replace(b"X-Pad: ", b"Max-Forwards: x\r\nX: ")
    protocol.datagramReceived(bad, (HOST, 40000))
    assert [addr for _, addr in transport.written] == [(HOST, 5099)]


def test_stateless_answers_are_reported_by_status() -> None:
    """Each stateless answer is reported to the injected ``rejected`` sink with its
    status; a datagram dropped unanswered is not."""
    statuses: list[int] = []
    protocol, transport = fake_protocol(rejected=statuses.append)
    protocol.datagramReceived(options(5062).replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1),
                              (HOST, 5062))
    protocol.datagramReceived(options(5062).replace(b"X-Pad: ", b"Max-Forwards: x\r\nX: "),
                              (HOST, 5062))
    protocol.datagramReceived(b"\x00\xffnot sip at all\r\n\r\n", (HOST, 5062))
    assert statuses == [505, 400] and len(transport.written) == 2


def test_request_uri_with_a_space_gets_400() -> None:
    """A request line of four tokens (a space inside the Request-URI) is answered 400."""
    protocol, transport = fake_protocol()
    protocol.datagramReceived(options(5062).replace(b"OPTIONS sip:ccswitch@", b"OPTIONS sip:cc "
                                                    b"switch@", 1), (HOST, 5062))
    response = parse_message(transport.written[0][0])
    assert isinstance(response, Response) and response.status == 400


def test_stateless_answer_corrects_a_received_written_by_the_peer() -> None:
    """A Via arriving with received=<a name> gets received=<source IP> in the 400."""
    protocol, transport = fake_protocol()
    bad = options(5099).replace(b";rport", b";received=phone.invalid") \
        .replace(b"X-Pad: ", b"Max-Forwards: x\r\nX: ")
    protocol.datagramReceived(bad, (HOST, 40000))
    response = parse_message(transport.written[0][0])
    assert isinstance(response, Response) and response.top_via.received == HOST
    assert transport.written[0][1] == (HOST, 5099)


def test_malformed_request_with_an_empty_via_is_answered_at_its_source() -> None:
    """An empty Via value cannot route the 400, so it goes to the packet's source."""
    protocol, transport = fake_protocol()
    bad = options(5099).replace(b"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKopt-1;rport",
                                b"Via: ")
    assert b"Via: \r\n" in bad
    protocol.datagramReceived(bad, (HOST, 40000))
    assert [addr for _, addr in transport.written] == [(HOST, 40000)]
    assert transport.written[0][0].startswith(b"SIP/2.0 400 ")


def test_malformed_request_missing_headers_is_dropped() -> None:
    """A broken request without Call-ID cannot be answered and is dropped."""
    protocol, transport = fake_protocol()
    protocol.datagramReceived(options(5062).replace(b"Call-ID: opt-1\r\n", b""), (HOST, 5062))
    assert transport.written == []


def test_malformed_response_is_dropped() -> None:
    """A malformed response is never answered."""
    protocol, transport = fake_protocol()
    protocol.datagramReceived(b"SIP/2.0 2x0 OK\r\nVia: x\r\n\r\n", (HOST, 5062))
    assert transport.written == []


def test_layer_exception_is_logged_and_swallowed(logged: list[str]) -> None:
    """An exception from the layer is logged with the source and never propagates."""
    protocol, _ = fake_protocol()
    layer = RaisingLayer()
    protocol.set_layer(layer)  # type: ignore[arg-type]
    protocol.datagramReceived(options(5062), (HOST, 5062))
    assert layer.calls == 1
    assert any("5062" in line and "failed" in line for line in logged)


def test_send_without_transport_is_logged(logged: list[str]) -> None:
    """send() before the socket is listening drops the datagram with a log line."""
    protocol = SipUdpProtocol()
    protocol.send(b"x", (HOST, 5062))
    assert any("not listening" in line for line in logged)


@pytest_twisted.inlineCallbacks
def test_send_failure_is_logged_not_raised(logged: list[str]) -> Generator[
        Deferred[None], None, None]:
    """A write that fails (here: a host name, not an IP) is logged, not raised."""
    protocol = SipUdpProtocol()
    udp: Any = reactor
    port = udp.listenUDP(0, protocol, interface=HOST)
    try:
        protocol.send(b"x", ("not-an-ip.invalid", 5062))
    finally:
        yield port.stopListening()
    assert any("failed" in line and "not-an-ip.invalid" in line for line in logged)


@pytest_twisted.inlineCallbacks
def test_send_says_whether_the_datagram_left(logged: list[str]) -> Generator[
        Deferred[None], None, None]:
    """send() is True for a datagram written, False for one the socket refused (from
    127.0.0.1 to an address off the loopback: no route)."""
    protocol = SipUdpProtocol()
    udp: Any = reactor
    port = udp.listenUDP(0, protocol, interface=HOST)
    try:
        assert protocol.send(b"x", (HOST, 9)) is True
        assert protocol.send(b"x", ("192.0.2.1", 5062)) is False
    finally:
        yield port.stopListening()
