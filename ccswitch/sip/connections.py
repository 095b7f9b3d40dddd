"""SIP over TCP and TLS on Twisted (RFC 3261 18, RFC 5923 connection reuse).

:class:`StreamTransports` owns every SIP connection, inbound and outbound, of both
stream transports. Each :class:`SipStreamProtocol` cuts its bytes into messages with a
:class:`~ccswitch.sip.stream.StreamFramer` and hands them to the same
:class:`~ccswitch.sip.transport.MessageEdge` as UDP (source guard per request, stateless
400s). A connection that breaks the framing rules, sends an unparseable message (the
stream cannot be trusted to be in step after one), stays without a complete message for
``idle_timeout`` seconds (a lying Content-Length, a half-open peer), comes from a
banned source or from a source already holding ``max_per_source`` connections is logged
and closed. Sending: a response goes back on the connection its request came on; a
request reuses an open connection to its address (one we opened, one the peer opened
from that address, or one whose requests carried a Via ``alias``), else opens one;
bytes wait until it is up. A failed connection is logged and its bytes dropped: the
transaction's own timer ends it.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Mapping

from OpenSSL import SSL
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IProtocolFactory
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure

from ccswitch.clock import DelayedCall
from ccswitch.errors import SipParseError
from ccswitch.model import ConnectionLimits, Transport
from ccswitch.sip.hop import Hop
from ccswitch.sip.message import Request
from ccswitch.sip.stream import PONG, FramingError, Ping, StreamFramer
from ccswitch.sip.tls import ClientTls, Identity, ServerTls
from ccswitch.sip.transport import MessageEdge

__all__ = ["SipStreamProtocol", "StreamTransports"]

log = Logger()

Address = tuple[str, int]

#: Seconds an outbound TCP connect may take before it counts as failed.
CONNECT_TIMEOUT = 10.0
#: How often a lingering shutdown looks whether the far ends have closed.
LINGER_POLL = 0.05


class SipStreamProtocol(Protocol):
    """One SIP connection over TCP or TLS."""

    def __init__(self, owner: StreamTransports, transport_kind: Transport, *,
                 outbound: Address | None = None) -> None:
        self._owner = owner
        self.kind = transport_kind
        self.flow = next(owner._flow_ids)
        self.outbound = outbound
        self.peer: Address = outbound or ("?", 0)
        self._framer = StreamFramer(max_body=owner.max_message_size)
        self._heard = False  # anything received yet (then the connection worked)
        self._idle: DelayedCall | None = None
        self._queue: list[bytes] = []
        self._connected = False
        self._closing = False

    # -- Twisted ---------------------------------------------------------------

    def connectionMade(self) -> None:
        peer: Any = self.transport.getPeer()  # type: ignore[union-attr]
        self.peer = (peer.host, peer.port)
        self._connected = True
        if self.outbound is None and not self._owner._admit(self):
            self._abort()
            return
        self._owner._register(self)
        if self.outbound is None:
            log.info("SIP {transport} connection {flow} from {peer} accepted",
                     transport=self.kind.value, flow=self.flow, peer=self.peer)
        self._touch()
        try:
            self.transport.setTcpKeepAlive(True)  # type: ignore[union-attr]
        except (AttributeError, OSError):
            pass  # the TLS wrapper passes it down; a test transport may not have it
        queued, self._queue = self._queue, []
        for data in queued:
            self.write(data)

    def dataReceived(self, data: bytes) -> None:
        self._heard = True
        if self._closing:
            return
        try:
            frames = self._framer.feed(data)
        except FramingError as e:
            log.warn("SIP {transport} connection from {source} closed: {reason}",
                     transport=self.kind.value, source=self.peer, reason=e.reason)
            self._abort()
            return
        edge = self._owner.edge
        for frame in frames:
            self._touch()
            if isinstance(frame, Ping):
                self.write(PONG)
                continue
            message = edge.handle(frame, self.peer, self._reply, transport=self.kind,
                                  flow=self.flow)
            if message is None:
                log.warn("SIP {transport} connection from {source} closed after an "
                         "unparseable message", transport=self.kind.value,
                         source=self.peer)
                self._close()
                return
            if self._closing:
                return
            if isinstance(message, Request):
                self._learn_alias(message)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closing = True
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        self._owner._unregister(self)
        # A TLS handshake that failed (plaintext on the TLS port, a certificate that
        # does not verify) ends here too: worth a warning, unlike a plain close.
        emit = log.info if isinstance(reason.value, ConnectionDone) else log.warn
        emit("SIP {transport} connection {flow} with {peer} closed: {reason}",
             transport=self.kind.value, flow=self.flow, peer=self.peer,
             reason=_describe(reason))
        if self.outbound is not None and not self._heard:
            self._owner._report_failure(self.kind, self.outbound)

    # -- sending ---------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self._connected:
            self._queue.append(data)
            return
        if self._closing or self.transport is None:
            return
        self.transport.write(data)

    def _reply(self, data: bytes, destination: Address) -> None:
        """A stateless answer to a malformed request: back on this connection."""
        self.write(data)

    # -- internals -------------------------------------------------------------

    def _touch(self) -> None:
        """A complete message (or keep-alive) came: the idle clock starts again."""
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = self._owner.clock.callLater(self._owner.limits.idle_timeout,
                                                 self._idle_timeout)

    def _idle_timeout(self) -> None:
        self._idle = None
        log.info("SIP {transport} connection {flow} with {peer} idle for {seconds:g}s "
                 "({pending} bytes of an unfinished message): closing",
                 transport=self.kind.value, flow=self.flow, peer=self.peer,
                 seconds=self._owner.limits.idle_timeout, pending=self._framer.pending)
        self._abort()

    def _abort(self) -> None:
        self._closing = True
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()

    def _close(self) -> None:
        """Close once what is queued is written (a stateless answer, say); the idle
        timer still aborts a peer that does not read it."""
        self._closing = True
        transport: Any = self.transport
        if transport is not None:
            transport.loseConnection()

    def _learn_alias(self, request: Request) -> None:
        """RFC 5923: a request whose top Via has ``alias`` (and names the address it
        came from) lets us reuse this connection for requests to its sent-by address."""
        if self.outbound is not None:
            return
        try:
            via = request.top_via
        except SipParseError:
            return
        host, port = via.sent_by()
        if any(k.lower() == "alias" for k, _ in via.params) and host == self.peer[0]:
            self._owner._alias(self, (host, port))


class StreamTransports:
    """Every TCP and TLS connection of the node, and the factories for listening."""

    def __init__(self, *, reactor: Any, edge: MessageEdge, limits: ConnectionLimits,
                 max_message_size: int, server_tls: ServerTls | None = None,
                 client_tls: ClientTls | None = None,
                 client_identities: Mapping[Address, Identity] | None = None,
                 failed: Callable[[Transport, Address], None] | None = None) -> None:
        """``client_identities``: the client certificate to show per outbound TLS address
        (a vendor trunk's), none elsewhere. ``failed`` is told of each outbound
        connection that could not be made or closed before a byte came back (refused,
        TLS handshake or certificate check failed)."""
        self.reactor = reactor
        self.clock = reactor
        self.edge = edge
        self.limits = limits
        self.max_message_size = max_message_size
        self.server_tls = server_tls
        self.client_tls = client_tls
        self.client_identities: Mapping[Address, Identity] = client_identities or {}
        self._flow_ids = itertools.count(1)
        self._flows: dict[int, SipStreamProtocol] = {}
        self._by_address: dict[tuple[Transport, Address], SipStreamProtocol] = {}
        self._per_source: dict[str, int] = {}
        self.failed = failed

    @property
    def connection_count(self) -> int:
        return len(self._flows)

    def server_factory(self, transport: Transport) -> IProtocolFactory:
        """What to listen with for ``transport`` (TCP, or TLS with ``server_tls``)."""
        inner: IProtocolFactory = Factory.forProtocol(
            lambda: SipStreamProtocol(self, transport))
        if transport is Transport.TLS:
            assert self.server_tls is not None
            return TLSMemoryBIOFactory(self.server_tls, False, inner)
        return inner

    def send(self, data: bytes, hop: Hop) -> None:
        """Write ``data`` for ``hop`` on its flow, a reusable connection, or a new one."""
        connection = self._flows.get(hop.flow) if hop.flow is not None else None
        if connection is None or connection._closing:
            connection = self._by_address.get((hop.transport, hop.address))
        if connection is None or connection._closing:
            if hop.transport is Transport.TLS and self.client_tls is None:
                log.error("no TLS configured: dropped {size} bytes for {destination}",
                          size=len(data), destination=hop.address)
                return
            connection = self._connect(hop)
        connection.write(data)

    def close_all(self, linger: float = 0.0) -> Deferred[None]:
        """Close every connection once what is queued on it (the BYEs of a shutdown) is
        written, after giving the far ends up to ``linger`` seconds to close theirs first:
        a peer that answered our BYE and is still in its own wind-down (SIPp's timewait)
        counts a connection closed under it as a failed call."""
        done: Deferred[None] = Deferred()
        deadline = self.clock.seconds() + linger

        def close_when_quiet() -> None:
            if self._flows and self.clock.seconds() < deadline:
                self.clock.callLater(LINGER_POLL, close_when_quiet)
                return
            for connection in list(self._flows.values()):
                connection._close()
            done.callback(None)

        close_when_quiet()
        return done

    # -- internals -------------------------------------------------------------

    def _connect(self, hop: Hop) -> SipStreamProtocol:
        connection = SipStreamProtocol(self, hop.transport, outbound=hop.address)
        factory: IProtocolFactory = Factory.forProtocol(lambda: connection)
        if hop.transport is Transport.TLS:
            assert self.client_tls is not None
            creator = self.client_tls.creator(hop.server_name or hop.host,
                                              self.client_identities.get(hop.address))
            factory = TLSMemoryBIOFactory(creator, True, factory)
        self._by_address[(hop.transport, hop.address)] = connection
        self._flows[connection.flow] = connection
        self.reactor.connectTCP(hop.host, hop.port, _ClientFactory(factory, self._failed(
            connection)), timeout=CONNECT_TIMEOUT)
        log.info("SIP {transport} connection {flow} to {destination} opening",
                 transport=hop.transport.value, flow=connection.flow,
                 destination=hop.address)
        return connection

    def _failed(self, connection: SipStreamProtocol) -> Callable[[Failure], None]:
        def failed(reason: Failure) -> None:
            connection._closing = True
            self._unregister(connection)
            log.warn("SIP {transport} connection to {destination} failed: {reason}; "
                     "{count} message(s) dropped", transport=connection.kind.value,
                     destination=connection.outbound, reason=reason.getErrorMessage(),
                     count=len(connection._queue))
            assert connection.outbound is not None
            self._report_failure(connection.kind, connection.outbound)
        return failed

    def _report_failure(self, transport: Transport, address: Address) -> None:
        if self.failed is not None:
            try:
                self.failed(transport, address)
            except Exception:
                log.failure("reporting a failed connection to {address} failed",
                            address=address)

    def _admit(self, connection: SipStreamProtocol) -> bool:
        ip = connection.peer[0]
        if self.edge.banned(ip):
            log.info("SIP {transport} connection from banned {source} refused",
                     transport=connection.kind.value, source=connection.peer)
            return False
        count = self._per_source.get(ip, 0)
        if count >= self.limits.max_per_source:
            log.warn("SIP {transport} connection from {source} refused: {count} "
                     "connections open from that address", transport=connection.kind.value,
                     source=connection.peer, count=count)
            return False
        self._per_source[ip] = count + 1
        return True

    def _register(self, connection: SipStreamProtocol) -> None:
        self._flows[connection.flow] = connection
        self._by_address.setdefault((connection.kind, connection.peer), connection)

    def _alias(self, connection: SipStreamProtocol, address: Address) -> None:
        self._by_address.setdefault((connection.kind, address), connection)

    def _unregister(self, connection: SipStreamProtocol) -> None:
        if self._flows.pop(connection.flow, None) is None:
            return
        for key in [k for k, c in self._by_address.items() if c is connection]:
            del self._by_address[key]
        if connection.outbound is None and connection._connected:
            ip = connection.peer[0]
            left = self._per_source.get(ip, 0) - 1
            if left > 0:
                self._per_source[ip] = left
            else:
                self._per_source.pop(ip, None)


def _describe(reason: Failure) -> str:
    """A connection's end in words; OpenSSL errors as their reason strings."""
    value = reason.value
    if isinstance(value, SSL.Error) and value.args and isinstance(value.args[0], list):
        return "TLS: " + "; ".join(str(item[-1]) for item in value.args[0]
                                   if isinstance(item, tuple)) or repr(value)
    return reason.getErrorMessage()


class _ClientFactory(Factory):
    """Builds the one outbound connection and reports a failed connect."""

    noisy = False  # the connection logs its own opening and end

    def __init__(self, inner: IProtocolFactory, failed: Callable[[Failure], None]) -> None:
        self._inner = inner
        self._failed = failed

    def buildProtocol(self, addr: IAddress | None) -> Any:
        assert addr is not None  # a connector always names the peer
        return self._inner.buildProtocol(addr)

    def startedConnecting(self, connector: Any) -> None:
        """Nothing to do until the connect succeeds or fails."""

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self._failed(reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        """Told through the protocol's connectionLost already."""
