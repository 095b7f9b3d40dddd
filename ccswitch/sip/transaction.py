"""RFC 3261 section 17 transactions over UDP, TCP and TLS, sans-I/O (RFC 6026 and
RFC 3581 included).

The layer sits between the wire and the transaction user (the call runtime). It takes
parsed messages plus their source address and transport, hands bytes and a
:class:`~ccswitch.sip.hop.Hop` to an injected ``send`` callable, and runs every timer through an injected clock
(anything with ``seconds()`` and ``callLater()``: the reactor in production,
``twisted.internet.task.Clock`` in tests). It imports nothing from
``twisted.internet``.

Each transaction kind is a small state machine whose legal transitions are a table
(:mod:`ccswitch.sip.transaction_states`); the transactions themselves are
:mod:`ccswitch.sip.server_transaction` and :mod:`ccswitch.sip.client_transaction`, this
module matches messages to them. An event a machine does not accept leaves its state
unchanged: events from the network are dropped, a response the TU may not send
(a second final response, say) is logged and ignored. Nothing raises into the
clock's caller.

Response routing (RFC 3261 18.2.2, RFC 3581): a server transaction stamps ``received=<source ip>`` on the top Via when the source IP
differs from the sent-by host or from a ``received`` the request already carries
(and always when ``rport`` is present), fills an empty ``rport`` with the source
port, then answers to the packet's source address when ``rport`` is present, else
to the source IP (the ``received`` address) and the sent-by port, so no answer
needs DNS. ``maddr`` is not honoured. Over TCP and TLS the answer goes back over the
connection the request came on (the hop's ``flow``), and to that address when the
connection is gone.

Requests pick their transport from the next-hop URI and their size
(:func:`~ccswitch.sip.hop.select_transport`); the top Via names it. When the transports
report that a connection could not be made (:meth:`TransactionLayer.transport_failed`),
a request that went to TCP for its size only is sent over UDP instead, any other one
ends at once as a timeout. Reliable transports
(TCP, TLS) get no retransmission timers (A, E, G) and zero waits for timers D, I, J, K
(RFC 3261 17.1.1.2, 17.1.2.2, 17.2.1, 17.2.2); the UAS still retransmits a 2xx until
the ACK (13.3.1.4: the ACK is end to end). Our own Contact (the UDP one the TU writes)
is rewritten to the transport a message leaves on (``;transport=tcp``, ``sips:``), so
the peer's requests in the dialog come back the same way.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol

import attrs
from twisted.logger import Logger

from ccswitch.clock import Clock
from ccswitch.errors import SipParseError
from ccswitch.sip.client_transaction import ClientTransaction
from ccswitch.sip.hop import Hop, Transport, default_port, next_hop_uri, select_transport
from ccswitch.sip.message import (
    BRANCH_MAGIC, Headers, NameAddr, Request, Response, SipURI, Via, new_branch, new_tag,
)
from ccswitch.sip.server_transaction import ServerTransaction
from ccswitch.sip.transaction_states import Address, ClientKey, ServerKey, State, Timers

# The transactions are the TU's handles (request_received, request), so they are part of
# this module's interface.
__all__ = ["TransactionUser", "TransactionLayer", "ServerTransaction", "ClientTransaction"]

log = Logger()


class TransactionUser(Protocol):
    """The layer's caller: the UA core (here ``ccswitch.calls``' call controller)."""

    def request_received(self, request: Request, source: Address,
                         tx: ServerTransaction) -> None:
        """A new request (not ACK, not CANCEL); answer it with ``tx.respond``."""

    def ack_received(self, request: Request, source: Address) -> None:
        """An ACK for a 2xx (any ACK not absorbed by a non-2xx INVITE server transaction)."""

    def cancel_received(self, invite_tx: ServerTransaction) -> None:
        """A CANCEL matched ``invite_tx`` (already answered 200); answer the INVITE 487."""

    def stray_response(self, response: Response, source: Address) -> None:
        """A response that matches no client transaction (e.g. a late 2xx retransmission)."""


class TransactionLayer:
    """Matches messages to transactions, runs their timers, talks to the TU."""

    def __init__(self, clock: Clock, send: Callable[[bytes, Hop], bool | None],
                 tu: TransactionUser, *, timers: Timers = Timers(), local_via_host: str,
                 local_port: int, stream_ports: Mapping[Transport, int] | None = None,
                 user_agent: str = "ccswitch") -> None:
        """``local_port`` is the UDP port; ``stream_ports`` the TCP and TLS listening
        ports, when there are any (requests may then use those transports)."""
        self._clock = clock
        self._send_fn = send
        self._tu = tu
        self.timers = timers
        self.user_agent = user_agent
        host = local_via_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        self._host = host
        self._ports: dict[Transport, int] = {Transport.UDP: local_port,
                                             **(stream_ports or {})}
        self._available = frozenset(self._ports)
        self._server: dict[ServerKey, ServerTransaction] = {}
        self._client: dict[ClientKey, ClientTransaction] = {}
        self._accepted: dict[tuple[str, int], ServerTransaction] = {}

    @property
    def transaction_count(self) -> int:
        """Live (not yet terminated) server and client transactions."""
        return len(self._server) + len(self._client)

    # -- from the wire --

    def receive(self, message: Request | Response, source: Address, *,
                transport: Transport = Transport.UDP, flow: int | None = None) -> None:
        """Handle one parsed message that arrived from ``source`` over ``transport``
        (on connection ``flow`` for TCP and TLS)."""
        if isinstance(message, Response):
            self._receive_response(message, source)
        else:
            self._receive_request(message, source, transport, flow)

    def _receive_response(self, response: Response, source: Address) -> None:
        branch = response.top_via.branch
        tx = None
        if branch is not None:
            tx = self._client.get((branch, response.cseq[1]))
        if tx is None:
            self._call_tu(self._tu.stray_response, response, source)
            return
        tx._receive(response)

    def _receive_request(self, request: Request, source: Address, transport: Transport,
                         flow: int | None) -> None:
        method = request.method
        top = request.top_via
        if method == "ACK":
            self._receive_ack(request, source, top)
            return
        key = _server_key(request, top, method)
        tx = self._server.get(key)
        if tx is not None:
            tx._retransmitted()
            return
        ip, port = self._stamp_via(request, top, source)
        destination = Hop(host=ip, port=port, transport=transport, flow=flow)
        tx = ServerTransaction(self, request, source, key, destination)
        self._server[key] = tx
        if method == "INVITE":
            tx.respond(100)
        else:
            tx._start_timer("no answer", self.timers.timeout, tx._no_answer)
        if method == "CANCEL":
            self._receive_cancel(tx, request, top)
            return
        if not self._call_tu(self._tu.request_received, request, source, tx) \
                and not tx.final_sent:
            tx.respond(500, headers=(("Server", self.user_agent),))

    def _receive_ack(self, request: Request, source: Address, top: Via) -> None:
        invite_tx = self._server.get(_server_key(request, top, "INVITE"))
        if invite_tx is not None and invite_tx.state in (State.COMPLETED, State.CONFIRMED,
                                                        State.ACCEPTED):
            invite_tx._ack(request, source)
            return
        if invite_tx is not None and invite_tx.state is State.PROCEEDING:
            return  # an ACK before any final response: nothing to acknowledge
        try:
            accepted = self._accepted.get((request.call_id, request.cseq[0]))
        except SipParseError:
            accepted = None
        if accepted is not None:
            accepted._ack(request, source)
            return
        self._tu_ack(request, source)

    def _receive_cancel(self, cancel_tx: ServerTransaction, request: Request,
                        top: Via) -> None:
        invite_tx = self._server.get(_server_key(request, top, "INVITE"))
        server = (("Server", self.user_agent),)
        if invite_tx is None or not invite_tx._invite:
            cancel_tx.respond(481, to_tag=new_tag(), headers=server)
            return
        tag = invite_tx._to_tag
        if tag is None and invite_tx.request.to.tag is None:
            tag = invite_tx._to_tag = new_tag()
        cancel_tx.respond(200, to_tag=tag, headers=server)
        if invite_tx.final_sent:
            return
        self._call_tu(self._tu.cancel_received, invite_tx)
        if not invite_tx.final_sent:
            invite_tx.respond(487, headers=server)

    def _stamp_via(self, request: Request, top: Via, source: Address) -> Address:
        """Add received/rport to the top Via (RFC 3261 18.2.1, RFC 3581); where to answer."""
        ip, port = source
        host = top.host
        if host.startswith("["):
            host = host[1:-1]
        rport = top.has_rport
        # A received parameter the peer wrote itself (not its source IP) is replaced: it
        # would send the answer somewhere else, or to a name needing DNS.
        if rport or host != ip or top.received not in (None, ip):
            new = top.with_param("received", ip)
            if rport and top.rport is None:
                new = new.with_param("rport", str(port))
            vias = request.vias
            headers = request.headers
            if len(vias) == 1:
                headers.set("Via", str(new))
            else:
                vias[0] = new
                headers.remove("Via")
                for via in reversed(vias):
                    headers.add("Via", str(via), first=True)
            top = new
        if rport:
            return source
        return (ip, top.sent_by()[1])  # received (stamped above) or the sent-by host: ip

    # -- from the TU --

    def request(self, request: Request, destination: Address, *,
                on_response: Callable[[Response], None],
                on_timeout: Callable[[], None],
                on_send_error: Callable[[], None] | None = None) -> ClientTransaction:
        """Send ``request`` (not ACK) in a new client transaction.

        Adds our top Via (new branch, ``rport``), Max-Forwards and User-Agent when
        missing. ``on_response`` gets every provisional and final response (INVITE:
        every 2xx, retransmissions included, for the TU to ACK; non-2xx finals are
        ACKed here). ``on_timeout`` is called once when the transaction ends without
        a final response (timer B/F, or 64*T1 after a CANCEL); no 408 is delivered.
        ``on_send_error`` is called once if sending the request (or a retransmission)
        fails: no route, bad address, socket error.
        """
        if request.method == "ACK":
            raise ValueError("ACK is not sent in a transaction; use send_ack")
        headers = request.headers.copy()
        branch = new_branch()
        if "Max-Forwards" not in headers:
            headers.add("Max-Forwards", "70")
        if "User-Agent" not in headers:
            headers.add("User-Agent", self.user_agent)
        base = headers.copy()  # without our Via: for a retry over UDP
        try:
            hop, via = self._route(request, headers, destination, branch)
        except ValueError as e:
            log.error("{method} {call_id} to {uri}: cannot send: {reason}",
                      method=request.method, call_id=request.headers.get("Call-ID"),
                      uri=str(request.uri), reason=str(e))
            tx = ClientTransaction(self, request, Hop(host=destination[0],
                                                      port=destination[1]),
                                   branch, "", on_response, on_timeout)
            self._client[tx.key] = tx
            tx._start_timer("B" if tx._invite else "F", 0, tx._timeout)
            return tx
        sent = Request(method=request.method, uri=request.uri, headers=headers,
                       body=request.body)
        tx = self._start_client(sent, hop, branch, via, on_response=on_response,
                                on_timeout=on_timeout, on_send_error=on_send_error)
        if hop.transport is Transport.TCP and _by_size(next_hop_uri(request)):
            def over_udp() -> tuple[Request, Hop, str]:
                udp_headers = base.copy()
                udp_hop, udp_via = self._route(request, udp_headers, destination, branch,
                                               transport=Transport.UDP)
                return (Request(method=request.method, uri=request.uri,
                                headers=udp_headers, body=request.body), udp_hop, udp_via)
            tx._fallback = over_udp
        return tx

    def send_ack(self, ack: Request, destination: Address) -> None:
        """Send the TU's ACK for a 2xx statelessly, with a fresh branch in a new top Via."""
        headers = ack.headers.copy()
        if "Max-Forwards" not in headers:
            headers.add("Max-Forwards", "70")
        try:
            hop, _ = self._route(ack, headers, destination, new_branch())
        except ValueError as e:
            log.error("ACK {call_id} to {uri}: cannot send: {reason}",
                      call_id=ack.headers.get("Call-ID"), uri=str(ack.uri), reason=str(e))
            return
        self._send(Request(method=ack.method, uri=ack.uri, headers=headers,
                           body=ack.body).to_bytes(), hop)

    def _route(self, request: Request, headers: Headers, destination: Address,
               branch: str, *, transport: Transport | None = None) -> tuple[Hop, str]:
        """Pick the transport of an outgoing request (unless given) and add our top Via
        for it to ``headers``; the hop and the Via. ValueError when no transport fits
        the URI."""
        uri = next_hop_uri(request)
        if transport is None:
            udp_via = self._via(Transport.UDP, branch)
            size = len(Request(method=request.method, uri=request.uri, headers=headers,
                               body=request.body).to_bytes()) + len(udp_via) + 7
            transport = select_transport(uri, size, available=self._available)
        host, port = destination
        if uri.port is None and transport is Transport.TLS:
            port = default_port(transport)
        via = self._via(transport, branch)
        headers.add("Via", via, first=True)
        self._localize_contact(headers, transport)
        server_name = uri.host[1:-1] if uri.host.startswith("[") else uri.host
        return Hop(host=host, port=port, transport=transport,
                   server_name=server_name), via

    def _via(self, transport: Transport, branch: str) -> str:
        # RFC 5923 alias: the peer may send its requests back over our connection.
        alias = ";alias" if transport.reliable else ""
        return (f"SIP/2.0/{transport.via_name} {self._host}:{self._ports[transport]}"
                f";branch={branch};rport{alias}")

    def _localize_contact(self, headers: Headers, transport: Transport) -> None:
        """Our UDP Contact becomes the one for ``transport`` (TCP: ``;transport=tcp`` and
        the TCP port; TLS: ``sips:`` and the TLS port); any other Contact stays."""
        if not transport.reliable:
            return
        contacts = headers.get_all("Contact")
        if len(contacts) != 1:
            return
        try:
            contact = NameAddr.parse(contacts[0])
        except SipParseError:
            return
        uri = contact.uri
        if not isinstance(uri, SipURI) or uri.scheme != "sip" or uri.params \
                or (uri.host, uri.port) != (self._host, self._ports[Transport.UDP]):
            return
        if transport is Transport.TLS:
            uri = attrs.evolve(uri, scheme="sips", port=self._ports[transport])
        else:
            uri = attrs.evolve(uri, port=self._ports[transport],
                               params=(("transport", "tcp"),))
        headers.set("Contact", str(attrs.evolve(contact, uri=uri)))

    def transport_failed(self, transport: Transport, address: Address) -> None:
        """A connection to ``address`` could not be made (refused, timed out, TLS
        handshake or certificate check failed): client transactions sent there with no
        response yet end now, as timeouts, not after timer B or F (RFC 3261 17.1.1.2,
        17.1.2.2)."""
        for tx in list(self._client.values()):
            hop = tx.destination
            if hop.transport is transport and hop.address == address:
                tx._transport_error()

    # -- internals --

    def _start_client(self, request: Request, destination: Hop, branch: str, via: str,
                      *, on_response: Callable[[Response], None],
                      on_timeout: Callable[[], None],
                      on_send_error: Callable[[], None] | None = None) -> ClientTransaction:
        tx = ClientTransaction(self, request, destination, branch, via, on_response,
                               on_timeout, on_send_error)
        self._client[tx.key] = tx
        tx._start()
        return tx

    def _send(self, data: bytes, destination: Hop) -> bool:
        """Hand bytes to the wire; False when the send function failed (or said so)."""
        try:
            return self._send_fn(data, destination) is not False
        except Exception:
            log.failure("sending {size} bytes to {destination} failed", size=len(data),
                        destination=destination)
            return False

    def _call_tu(self, callback: Callable[..., None], *args: Any) -> bool:
        """Run a TU callback; an exception is logged, never raised into the clock."""
        try:
            callback(*args)
        except Exception:
            log.failure("transaction user callback {callback} failed",
                        callback=getattr(callback, "__qualname__", repr(callback)))
            return False
        return True

    def _tu_ack(self, request: Request, source: Address) -> None:
        self._call_tu(self._tu.ack_received, request, source)

    def _forget_server(self, tx: ServerTransaction) -> None:
        if self._server.get(tx._key) is tx:
            del self._server[tx._key]
        if tx._invite:
            try:
                ack_key = tx._ack_key()
            except SipParseError:
                return
            if self._accepted.get(ack_key) is tx:
                del self._accepted[ack_key]

    def _forget_client(self, tx: ClientTransaction) -> None:
        if self._client.get(tx.key) is tx:
            del self._client[tx.key]


def _by_size(uri: SipURI) -> bool:
    """Whether TCP for ``uri`` can only come from the request's size (no sips:, no
    transport parameter): then UDP is the fallback (RFC 3261 18.1.1)."""
    return uri.scheme == "sip" and uri.param("transport") is None


def _server_key(request: Request, top: Via, method: str) -> ServerKey:
    """RFC 3261 17.2.3 matching key; the RFC 2543 fallback for old-style branches."""
    branch = top.branch
    host, port = top.sent_by()
    host = host.lower()
    if branch is not None and branch.startswith(BRANCH_MAGIC):
        return (branch, host, port, method)
    return ("rfc2543", request.call_id, request.cseq[0], request.from_.tag, host, port,
            method)
