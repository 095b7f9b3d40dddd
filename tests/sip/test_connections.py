"""SIP over TCP and TLS on real sockets (127.0.0.1): framing, limits, reuse, TLS checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any, Callable

import attrs
import pytest
import pytest_twisted
from twisted.internet import reactor, ssl
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.python.failure import Failure

from ccswitch.model import (
    ClientVerify, ConnectionLimits, GuardConfig, TlsConfig, TlsIdentity, Transport,
)
from ccswitch.sip.connections import StreamTransports
from ccswitch.sip.guard import SourceGuard
from ccswitch.sip.hop import Hop
from ccswitch.sip.message import Headers, Request, Response, SipURI, parse_message
from ccswitch.sip.tls import ClientTls, ServerTls, load_identity
from ccswitch.sip.transaction import TransactionLayer
from ccswitch.sip.transport import MessageEdge, SipUdpProtocol
from tests.certs import Issued, TestCA
from tests.phones.client import free_tcp_port
from tests.sip.test_transport import RecordingTU
from tests.udp import Peer as UdpPeer

HOST = "127.0.0.1"


class Client(Protocol):
    """A far-end SIP peer's connection that records what it receives."""

    def __init__(self) -> None:
        self.received = b""
        self.closed: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        self.closed = reason

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


def options(call_id: str = "o1", transport: str = "TCP", *, length: int | None = None,
            body: bytes = b"", extra: str = "") -> bytes:
    size = len(body) if length is None else length
    return (f"OPTIONS sip:ccswitch@{HOST} SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} {HOST}:5999;branch=z9hG4bK{call_id};rport{extra}\r\n"
            "From: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:ccswitch@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n"
            f"Content-Length: {size}\r\n\r\n").encode() + body


@attrs.define
class Env:
    streams: StreamTransports
    layer: TransactionLayer
    tu: RecordingTU
    ports: dict[Transport, int]
    ca: TestCA
    server_tls: ServerTls
    client_tls: ClientTls

    async def connect(self, transport: Transport = Transport.TCP,
                      client: Issued | None = None) -> Client:
        endpoint: Any = TCP4ClientEndpoint(reactor, HOST, self.ports[transport], timeout=2)
        if transport is Transport.TLS:
            identity = None if client is None else ssl.PrivateCertificate.loadPEM(
                client.certificate.read_bytes() + client.key.read_bytes())
            trust = ssl.Certificate.loadPEM(self.ca.certificate.read_bytes())
            endpoint = wrapClientTLS(ssl.optionsForClientTLS(
                HOST, trustRoot=trust, clientCertificate=identity), endpoint)
        protocol: Client = await connectProtocol(endpoint, Client())
        return protocol


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> Generator[
        Deferred[None], None, None]:
    """Let the reactor run until predicate() holds (bounded by timeout)."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        yield deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("condition not reached in time")


async def settle(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("condition not reached in time")


def tls_config(ca: TestCA, cert: Issued, verify: ClientVerify) -> TlsConfig:
    return TlsConfig(identity=TlsIdentity(certificate=cert.certificate, key=cert.key),
                     ca=ca.certificate, verify_client=verify)


async def make_env(tmp_path: Path, *, verify: ClientVerify = ClientVerify.NONE,
                   ca: TestCA | None = None,
                   limits: ConnectionLimits = ConnectionLimits(idle_timeout=0.5,
                                                               max_per_source=3)
                   ) -> tuple[Env, list[Any]]:
    ca = ca or TestCA(tmp_path / "ca")
    server_tls = ServerTls(tls_config(ca, ca.issue("node"), verify))
    client_tls = ClientTls(ca.certificate)
    edge = MessageEdge()
    streams = StreamTransports(reactor=reactor, edge=edge, limits=limits,
                               max_message_size=4096, server_tls=server_tls,
                               client_tls=client_tls)
    tcp: Any = reactor
    listening = [tcp.listenTCP(0, streams.server_factory(t), interface=HOST)
                 for t in (Transport.TCP, Transport.TLS)]
    ports = {Transport.TCP: listening[0].getHost().port,
             Transport.TLS: listening[1].getHost().port}
    tu = RecordingTU()
    layer = TransactionLayer(reactor, streams.send, tu, local_via_host=HOST, local_port=5060,
                             stream_ports=ports)
    edge.layer = layer
    return Env(streams, layer, tu, ports, ca, server_tls, client_tls), listening


@pytest_twisted.async_yield_fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    made, listening = await make_env(tmp_path)
    yield made
    made.streams.close_all()
    for port in listening:
        await port.stopListening()
    await deferLater(reactor, 0.05, lambda: None)


@pytest.fixture
def logged() -> Iterator[list[str]]:
    lines: list[str] = []

    def observer(event: LogEvent) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    yield lines
    globalLogPublisher.removeObserver(observer)


def statuses(data: bytes) -> list[int]:
    return [int(line.split()[1]) for line in data.split(b"\r\n")
            if line.startswith(b"SIP/2.0 ")]


@pytest_twisted.ensureDeferred
async def test_tcp_request_answered_on_its_connection(env: Env) -> None:
    """An OPTIONS over TCP reaches the TU and its 200 comes back on the same connection."""
    client = await env.connect()
    client.send(options())
    await settle(lambda: statuses(client.received) == [200])
    assert env.tu.requests[0][0].method == "OPTIONS"


@pytest_twisted.ensureDeferred
async def test_two_requests_in_one_write(env: Env) -> None:
    """Two requests in one TCP segment are both answered."""
    client = await env.connect()
    client.send(options("a") + options("b"))
    await settle(lambda: statuses(client.received) == [200, 200])


@pytest_twisted.ensureDeferred
async def test_request_in_pieces(env: Env) -> None:
    """A request written a few bytes at a time is answered once."""
    client = await env.connect()
    data = options()
    for i in range(0, len(data), 40):
        client.send(data[i:i + 40])
        await deferLater(reactor, 0.005, lambda: None)
    await settle(lambda: statuses(client.received) == [200])


@pytest_twisted.ensureDeferred
async def test_ping_gets_pong(env: Env) -> None:
    """A double-CRLF keep-alive is answered with a CRLF (RFC 5626)."""
    client = await env.connect()
    client.send(b"\r\n\r\n")
    await settle(lambda: client.received == b"\r\n")


@pytest_twisted.ensureDeferred
async def test_lying_content_length_closed_when_idle(env: Env, logged: list[str]) -> None:
    """A Content-Length promising more than comes: no answer, closed after the idle
    timeout with a log line, nothing left open."""
    client = await env.connect()
    client.send(options(length=300, body=b"short"))
    await settle(lambda: client.closed is not None)
    assert client.received == b"" and env.tu.requests == []
    assert any("idle" in line and "unfinished message" in line for line in logged)
    await settle(lambda: env.streams.connection_count == 0)


@pytest_twisted.ensureDeferred
async def test_endless_headers_closed(env: Env, logged: list[str]) -> None:
    """Headers that never end are cut at the limit: connection closed, logged."""
    client = await env.connect()
    client.send(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n")
    for _ in range(80):
        if client.closed is not None:
            break
        client.send(b"X-Junk: " + b"j" * 1000 + b"\r\n")
        await deferLater(reactor, 0.001, lambda: None)
    await settle(lambda: client.closed is not None)
    assert any("no end of headers" in line for line in logged)
    await settle(lambda: env.streams.connection_count == 0)


@pytest_twisted.ensureDeferred
async def test_oversize_body_closed(env: Env, logged: list[str]) -> None:
    """A Content-Length above the message size limit closes the connection at once."""
    client = await env.connect()
    client.send(options(length=100000))
    await settle(lambda: client.closed is not None, timeout=0.4)
    assert any("above the 4096 byte limit" in line for line in logged)


@pytest_twisted.ensureDeferred
async def test_unparseable_message_answered_400_and_closed(env: Env,
                                                           logged: list[str]) -> None:
    """A framed but malformed request gets a 400, then the connection is closed."""
    client = await env.connect()
    client.send(options().replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS"))
    await settle(lambda: client.closed is not None)
    assert statuses(client.received) == [400]
    assert any("unparseable" in line for line in logged)


@pytest_twisted.ensureDeferred
async def test_connections_per_source_capped(env: Env, logged: list[str]) -> None:
    """A source's connection beyond max_per_source is refused and logged."""
    clients = [await env.connect() for _ in range(4)]
    await settle(lambda: clients[3].closed is not None)
    assert [c.closed is None for c in clients[:3]] == [True, True, True]
    assert any("refused: 3 connections open" in line for line in logged)


@pytest_twisted.ensureDeferred
async def test_tls_request_answered(env: Env) -> None:
    """An OPTIONS over TLS is answered over the same TLS connection."""
    client = await env.connect(Transport.TLS)
    client.send(options(transport="TLS"))
    await settle(lambda: statuses(client.received) == [200])


@pytest_twisted.ensureDeferred
async def test_plaintext_on_tls_port_closed(env: Env, logged: list[str]) -> None:
    """Plain SIP sent to the TLS port: closed, logged, never parsed."""
    client = await env.connect(Transport.TCP)
    plain: Any = reactor
    client.transport.loseConnection()  # type: ignore[union-attr]
    raw = Client()
    await connectProtocol(TCP4ClientEndpoint(plain, HOST, env.ports[Transport.TLS]), raw)
    raw.send(options())
    await settle(lambda: raw.closed is not None)
    assert env.tu.requests == []
    assert any("tls connection" in line and "closed: TLS" in line for line in logged)
    await settle(lambda: env.streams.connection_count == 0)


@pytest_twisted.ensureDeferred
async def test_mutual_tls_refuses_wrong_client_certificate(tmp_path: Path,
                                                           logged: list[str]) -> None:
    """With verify_client required, a client certificate from another CA is refused."""
    made, listening = await make_env(tmp_path, verify=ClientVerify.REQUIRED)
    try:
        stranger = TestCA(tmp_path / "other", "other CA").issue("intruder")
        client = await made.connect(Transport.TLS, client=stranger)
        client.send(options(transport="TLS"))
        await settle(lambda: client.closed is not None)
        assert made.tu.requests == [] and client.received == b""
        assert any("closed: TLS" in line for line in logged)
    finally:
        made.streams.close_all()
        for port in listening:
            await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_mutual_tls_accepts_right_client_certificate(tmp_path: Path) -> None:
    """With verify_client required, a client certificate from the CA is accepted."""
    made, listening = await make_env(tmp_path, verify=ClientVerify.REQUIRED)
    try:
        client = await made.connect(Transport.TLS, client=made.ca.issue("pbx"))
        client.send(options(transport="TLS"))
        await settle(lambda: statuses(client.received) == [200])
    finally:
        made.streams.close_all()
        for port in listening:
            await port.stopListening()


def outgoing(uri: str) -> Request:
    headers = Headers()
    headers.add("From", "<sip:ccswitch@127.0.0.1>;tag=x")
    headers.add("To", f"<{uri}>")
    headers.add("Call-ID", f"out-{uri}")
    headers.add("CSeq", "1 OPTIONS")
    return Request(method="OPTIONS", uri=SipURI.parse(uri), headers=headers)


@pytest_twisted.ensureDeferred
async def test_outbound_tls_to_expired_certificate_fails(tmp_path: Path, env: Env,
                                                         logged: list[str]) -> None:
    """Our request to a TLS server whose certificate expired: connection refused by us,
    logged, the request never reaches it."""
    other, listening = await make_env(tmp_path / "far", ca=env.ca)
    expired = TlsConfig(identity=TlsIdentity(**attrs.asdict(
        env.ca.issue("far", expired=True))), ca=env.ca.certificate)
    other.server_tls.reload(expired)
    try:
        port = other.ports[Transport.TLS]
        env.layer.request(outgoing(f"sips:far@127.0.0.1:{port}"), (HOST, port),
                          on_response=lambda r: None, on_timeout=lambda: None)
        await settle(lambda: any("closed: TLS" in line and "certificate verify failed"
                                 in line for line in logged))
        await deferLater(reactor, 0.1, lambda: None)
        assert other.tu.requests == []
    finally:
        other.streams.close_all()
        for p in listening:
            await p.stopListening()


@pytest_twisted.ensureDeferred
async def test_outbound_requests_reuse_one_connection(tmp_path: Path, env: Env) -> None:
    """Two requests to the same TLS peer go over one connection, verified by host."""
    other, listening = await make_env(tmp_path / "far", ca=env.ca)
    try:
        port = other.ports[Transport.TLS]
        got: list[Response] = []
        for _ in range(2):
            env.layer.request(outgoing(f"sips:far@127.0.0.1:{port}"), (HOST, port),
                              on_response=got.append, on_timeout=lambda: None)
        await settle(lambda: len([r for r in got if r.status == 200]) == 2)
        assert other.streams.connection_count == 1
        assert env.streams.connection_count == 1
    finally:
        other.streams.close_all()
        for p in listening:
            await p.stopListening()


@pytest_twisted.ensureDeferred
async def test_reload_new_certificate_for_new_connections(env: Env) -> None:
    """After a reload new TLS connections get the new certificate; an open one lives on."""
    first = await env.connect(Transport.TLS)
    first.send(options("before", transport="TLS"))
    await settle(lambda: statuses(first.received) == [200])
    renewed = env.ca.issue("renewed")
    env.server_tls.reload(tls_config(env.ca, renewed, ClientVerify.NONE))
    second = await env.connect(Transport.TLS)
    second.send(options("after", transport="TLS"))
    await settle(lambda: statuses(second.received) == [200])
    peer: Any = second.transport
    assert peer.getPeerCertificate().get_subject().CN == "renewed"
    first.send(options("still", transport="TLS"))
    await settle(lambda: statuses(first.received) == [200, 200])


@pytest_twisted.ensureDeferred
async def test_refused_connection_fails_the_transaction_at_once(env: Env) -> None:
    """A request to a TCP port nobody listens on times out at once, not after timer F."""
    port = free_tcp_port()
    env.streams.failed = env.layer.transport_failed
    timeouts: list[int] = []
    env.layer.request(outgoing(f"sip:nobody@127.0.0.1:{port};transport=tcp"), (HOST, port),
                      on_response=lambda r: None, on_timeout=lambda: timeouts.append(1))
    await settle(lambda: timeouts == [1], timeout=2)


@pytest_twisted.ensureDeferred
async def test_request_reuses_inbound_connection_with_alias(env: Env) -> None:
    """After a request whose Via carries ``alias`` (RFC 5923), our request to that Via
    address goes back over the peer's connection instead of a new one."""
    client = await env.connect()
    client.send(options(extra=";alias"))
    await settle(lambda: statuses(client.received) == [200])
    env.layer.request(outgoing("sip:peer@127.0.0.1:5999;transport=tcp"), (HOST, 5999),
                      on_response=lambda r: None, on_timeout=lambda: None)
    await settle(lambda: b"OPTIONS sip:peer@127.0.0.1:5999" in client.received)
    assert env.streams.connection_count == 1


@pytest_twisted.ensureDeferred
async def test_flood_over_tcp_is_cut_by_the_guard(tmp_path: Path) -> None:
    """The source guard's per-request token bucket applies to requests over TCP too."""
    made, listening = await make_env(tmp_path)
    dropped: list[str] = []
    guard = SourceGuard(GuardConfig(rate=1, burst=3), reactor)
    made.streams.edge = MessageEdge(guard=guard, dropped=dropped.append)
    made.streams.edge.layer = made.layer
    try:
        client = await made.connect()
        client.send(b"".join(options(f"f{i}") for i in range(10)))
        await settle(lambda: len(dropped) == 7)
        assert len(made.tu.requests) == 3
    finally:
        made.streams.close_all()
        for port in listening:
            await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_vendor_client_certificate_shown_for_mutual_tls(tmp_path: Path,
                                                              env: Env) -> None:
    """To a server that requires client certificates, the identity configured for its
    address (a vendor's ``tls``) is shown and the request gets through."""
    far, listening = await make_env(tmp_path / "far", ca=env.ca,
                                    verify=ClientVerify.REQUIRED)
    port = far.ports[Transport.TLS]
    issued = env.ca.issue("vendor-client")
    env.streams.client_identities = {(HOST, port): load_identity(
        TlsIdentity(certificate=issued.certificate, key=issued.key))}
    try:
        got: list[Response] = []
        env.layer.request(outgoing(f"sips:trunk@127.0.0.1:{port}"), (HOST, port),
                          on_response=got.append, on_timeout=lambda: None)
        await settle(lambda: [r.status for r in got] == [200])
    finally:
        far.streams.close_all()
        for p in listening:
            await p.stopListening()


@pytest_twisted.ensureDeferred
async def test_no_client_certificate_refused_by_mutual_tls_server(tmp_path: Path,
                                                                  env: Env) -> None:
    """Without a client identity for that address the same server refuses us."""
    far, listening = await make_env(tmp_path / "far", ca=env.ca,
                                    verify=ClientVerify.REQUIRED)
    port = far.ports[Transport.TLS]
    env.streams.failed = env.layer.transport_failed
    try:
        timeouts: list[int] = []
        env.layer.request(outgoing(f"sips:trunk@127.0.0.1:{port}"), (HOST, port),
                          on_response=lambda r: None, on_timeout=lambda: timeouts.append(1))
        await settle(lambda: timeouts == [1])
        assert far.tu.requests == []
    finally:
        far.streams.close_all()
        for p in listening:
            await p.stopListening()


@pytest_twisted.ensureDeferred
async def test_large_request_reaches_udp_only_peer(env: Env) -> None:
    """A request over 1100 bytes to a peer with no TCP listener is tried over TCP, then
    reaches the peer over UDP."""
    udp_socket = SipUdpProtocol()
    udp: Any = reactor
    udp_port = udp.listenUDP(0, udp_socket, interface=HOST)
    peer = UdpPeer()
    peer_port = udp.listenUDP(0, peer, interface=HOST)
    try:
        def send(data: bytes, hop: Hop) -> None:
            (udp_socket.send if hop.transport is Transport.UDP else env.streams.send)(
                data, hop)

        layer = TransactionLayer(reactor, send, env.tu, local_via_host=HOST,
                                 local_port=udp_port.getHost().port, stream_ports=env.ports)
        env.streams.failed = layer.transport_failed
        big = outgoing(f"sip:peer@127.0.0.1:{peer.port}")
        big = Request(method=big.method, uri=big.uri, headers=big.headers,
                      body=b"a=x\r\n" * 250)
        layer.request(big, (HOST, peer.port), on_response=lambda r: None,
                      on_timeout=lambda: None)
        await settle(lambda: len(peer.received) >= 1)
        message = parse_message(peer.received[0][0])
        assert message.top_via.transport == "UDP" and len(peer.received[0][0]) > 1100
    finally:
        await peer_port.stopListening()
        await udp_port.stopListening()
