"""SIP over UDP on Twisted: datagrams in, parsed messages to the transaction layer.

:class:`MessageEdge` is what every transport does with one received message (UDP
datagram or framed stream message); TCP and TLS connections are in
:mod:`ccswitch.sip.connections`. Forgiving at the edge: keep-alives are ignored, oversize and unparseable
datagrams are logged with their source and dropped, requests the source guard
refuses (scanners, floods, banned sources) are dropped unanswered, and a malformed request
that still names Via, From, To, Call-ID and CSeq gets a stateless 400 (or the
status the parser chose, e.g. 505), counted through the injected ``rejected``
callback. Nothing raised below reaches the reactor.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from ccswitch.errors import SipParseError
from ccswitch.sip.guard import SourceGuard, Verdict
from ccswitch.sip.hop import Hop, Transport
from ccswitch.sip.message import Request, Response, Via, parse_message, salvage_response
from ccswitch.sip.transaction import TransactionLayer

__all__ = ["MessageEdge", "SipUdpProtocol"]

log = Logger()

Address = tuple[str, int]


class MessageEdge:
    """Screens, parses and hands one received message to the transaction layer."""

    def __init__(self, *, guard: SourceGuard | None = None,
                 dropped: Callable[[str], None] | None = None,
                 rejected: Callable[[int], None] | None = None) -> None:
        """``guard`` screens every request (scanners, per-source rate, bans); ``dropped``
        is told the verdict of each request it refuses and ``rejected`` the status of each
        malformed request it answers statelessly (both for metrics)."""
        self.layer: TransactionLayer | None = None
        self.guard = guard
        self._dropped = dropped
        self._rejected = rejected

    def banned(self, source_ip: str) -> bool:
        """Whether ``source_ip`` is banned (counted as a drop when it is)."""
        guard = self.guard
        if guard is not None and guard.is_banned(source_ip):
            if self._dropped is not None:
                self._dropped(Verdict.BANNED.value)
            return True
        return False

    def handle(self, data: bytes, source: Address, reply: Callable[[bytes, Address], object],
               *, transport: Transport = Transport.UDP,
               flow: int | None = None) -> Request | Response | None:
        """Handle one message from ``source``: the parsed message (also when the guard
        dropped it), or None when it could not be parsed (it was answered through
        ``reply`` when possible)."""
        try:
            message = parse_message(data)
        except SipParseError as e:
            self._malformed(data, source, e, reply, transport)
            return None
        except Exception:
            log.failure("SIP parser failed on a message from {source}", source=source)
            return None
        guard = self.guard
        if guard is not None and isinstance(message, Request):
            verdict = guard.check(source[0], message.headers.get("User-Agent"))
            if verdict is not Verdict.ALLOW:
                self._refused(guard, verdict, source)
                return message
        layer = self.layer
        if layer is None:
            log.warn("no transaction layer yet: dropped a message from {source}",
                     source=source)
            return message
        try:
            layer.receive(message, source, transport=transport, flow=flow)
        except Exception:
            log.failure("handling a SIP message from {source} failed", source=source)
        return message

    def _refused(self, guard: SourceGuard, verdict: Verdict, source: Address) -> None:
        """A request the guard refused: dropped without an answer (answering a scanner or
        a flood only helps it); each new ban is logged once."""
        for banned in guard.take_new_bans():
            log.warn("SIP source {banned} banned for {seconds:g}s (request flood)",
                     banned=banned, seconds=guard.config.ban_seconds, source=source)
        if self._dropped is not None:
            self._dropped(verdict.value)

    def _malformed(self, data: bytes, source: Address, error: SipParseError,
                   reply: Callable[[bytes, Address], object], transport: Transport) -> None:
        """Answer a readable but malformed request statelessly; drop anything else."""
        try:
            answer = _error_response(data, error, source)
        except Exception:
            log.failure("building a stateless answer for {source} failed", source=source)
            return
        if answer is None:
            log.info("dropped malformed SIP message from {source} ({transport}): "
                     "{reason}", source=source, reason=error.reason,
                     transport=transport.value)
            return
        response, destination = answer
        log.info("malformed request from {source} ({transport}) answered {status}: "
                 "{reason}", source=source, status=response.status, reason=error.reason,
                 transport=transport.value)
        reply(response.to_bytes(), destination)
        if self._rejected is not None:
            self._rejected(response.status)


class SipUdpProtocol(DatagramProtocol):
    """The SIP UDP socket: feeds a :class:`TransactionLayer` and sends for it."""

    def __init__(self, *, max_size: int = 65535, guard: SourceGuard | None = None,
                 dropped: Callable[[str], None] | None = None,
                 rejected: Callable[[int], None] | None = None,
                 edge: MessageEdge | None = None) -> None:
        """``edge`` (shared with the TCP and TLS listeners) or ``guard``, ``dropped`` and
        ``rejected`` to build one: see :class:`MessageEdge`."""
        self._max_size = max_size
        self._edge = edge if edge is not None else MessageEdge(
            guard=guard, dropped=dropped, rejected=rejected)

    def set_layer(self, layer: TransactionLayer) -> None:
        """Attach the transaction layer that gets every parsed message."""
        self._edge.layer = layer

    def send(self, data: bytes, destination: Address | Hop) -> bool:
        """Write one datagram; False when it failed (not listening, bad address, no route,
        OSError), which is logged."""
        addr = destination.address if isinstance(destination, Hop) else destination
        transport: Any = self.transport
        if transport is None:
            log.warn("SIP socket not listening: dropped {size} bytes for {destination}",
                     size=len(data), destination=addr)
            return False
        try:
            transport.write(data, addr)
        except Exception as e:
            log.warn("SIP send of {size} bytes to {destination} failed: {error}",
                     size=len(data), destination=addr, error=repr(e))
            return False
        return True

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        size = len(datagram)
        if size < 8 and not datagram.strip():
            return  # keep-alive (CRLF, RFC 5626 double CRLF) or empty
        source: Address = (addr[0], addr[1])
        if size > self._max_size:
            log.warn("dropped oversize SIP datagram ({size} bytes) from {source}",
                     size=size, source=source)
            return
        if self._edge.banned(source[0]):
            return  # a banned source's datagrams are not even parsed
        self._edge.handle(datagram, source, self.send)


def _error_response(datagram: bytes, error: SipParseError,
                    source: Address) -> tuple[Response, Address] | None:
    """A stateless response to a malformed request and where it goes, or None when it
    cannot be built (see :func:`salvage_response`).

    Routed as RFC 3261 18.2.1/18.2.2 and RFC 3581 say, without DNS: the top Via gets
    ``received=<source IP>`` when its sent-by host (or a ``received`` it carries) is not
    that IP, or it asks for ``rport``, which gets the source port; the answer goes to the
    source address with ``rport``, else to the source IP and the sent-by port, and to the
    source address when the Via cannot be read.
    """
    status = error.status if 300 <= error.status <= 699 else 400
    response = salvage_response(datagram, status, headers=[
        ("Warning", f'399 ccswitch "{_printable(error.reason)}"')])
    if response is None:
        return None
    headers = response.headers
    vias = headers.get_all("Via")
    try:
        top = Via.parse(vias[0] if vias else "")
    except SipParseError:
        return response, source
    ip, port = source
    if top.has_rport or _strip_brackets(top.host) != ip or top.received not in (None, ip):
        top = top.with_param("received", ip)
        if top.has_rport:
            top = top.with_param("rport", str(port))
        headers.remove("Via")
        for via in reversed([str(top), *vias[1:]]):
            headers.add("Via", via, first=True)
    if top.has_rport:
        return response, source
    return response, (ip, top.sent_by()[1])


def _printable(text: str) -> str:
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)[:100]


def _strip_brackets(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host
