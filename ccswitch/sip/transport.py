"""SIP over UDP on Twisted: datagrams in, parsed messages to the transaction layer.

Forgiving at the edge: keep-alives are ignored, oversize and unparseable
datagrams are logged with their source and dropped, requests the source guard
refuses (scanners, floods, banned sources) are dropped unanswered, and a malformed request
that still names Via, From, To, Call-ID and CSeq gets a stateless 400 (or the
status the parser chose, e.g. 505). Nothing raised below reaches the reactor.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from ccswitch.errors import SipParseError
from ccswitch.sip.guard import SourceGuard, Verdict
from ccswitch.sip.message import (
    REASONS, Headers, Request, Response, Via, new_tag, parse_message,
)
from ccswitch.sip.transaction import TransactionLayer

__all__ = ["SipUdpProtocol"]

log = Logger()

Address = tuple[str, int]

# The headers a stateless error response copies (compact forms included).
_ERROR_HEADERS = {
    "via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To",
    "call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq",
}
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")


class SipUdpProtocol(DatagramProtocol):
    """The SIP UDP socket: feeds a :class:`TransactionLayer` and sends for it."""

    def __init__(self, *, max_size: int = 65535, guard: SourceGuard | None = None,
                 dropped: Callable[[str], None] | None = None) -> None:
        """``guard`` screens every request (scanners, per-source rate, bans); ``dropped``
        is told the verdict of each request it refuses (for a metric)."""
        self._max_size = max_size
        self._layer: TransactionLayer | None = None
        self._guard = guard
        self._dropped = dropped

    def set_layer(self, layer: TransactionLayer) -> None:
        """Attach the transaction layer that gets every parsed message."""
        self._layer = layer

    def send(self, data: bytes, addr: Address) -> bool:
        """Write one datagram; False when it failed (not listening, bad address, no route,
        OSError), which is logged."""
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
        guard = self._guard
        if guard is not None and guard.is_banned(source[0]):
            if self._dropped is not None:
                self._dropped(Verdict.BANNED.value)
            return  # a banned source's datagrams are not even parsed
        try:
            message = parse_message(datagram)
        except SipParseError as e:
            self._malformed(datagram, source, e)
            return
        except Exception:
            log.failure("SIP parser failed on a datagram from {source}", source=source)
            return
        if guard is not None and isinstance(message, Request):
            verdict = guard.check(source[0], message.headers.get("User-Agent"))
            if verdict is not Verdict.ALLOW:
                self._refused(guard, verdict, source)
                return
        layer = self._layer
        if layer is None:
            log.warn("no transaction layer yet: dropped a message from {source}",
                     source=source)
            return
        try:
            layer.receive(message, source)
        except Exception:
            log.failure("handling a SIP message from {source} failed", source=source)

    def _refused(self, guard: SourceGuard, verdict: Verdict, source: Address) -> None:
        """A request the guard refused: dropped without an answer (answering a scanner or
        a flood only helps it); each new ban is logged once."""
        for banned in guard.take_new_bans():
            log.warn("SIP source {banned} banned for {seconds:g}s (request flood)",
                     banned=banned, seconds=guard.config.ban_seconds, source=source)
        if self._dropped is not None:
            self._dropped(verdict.value)

    def _malformed(self, datagram: bytes, source: Address, error: SipParseError) -> None:
        """Answer a readable but malformed request statelessly; drop anything else."""
        try:
            answer = _error_response(datagram, error, source)
        except Exception:
            answer = None
        if answer is None:
            log.info("dropped malformed SIP datagram from {source}: {reason}",
                     source=source, reason=error.reason)
            return
        response, destination = answer
        log.info("malformed request from {source} answered {status}: {reason}",
                 source=source, status=response.status, reason=error.reason)
        self.send(response.to_bytes(), destination)


def _error_response(datagram: bytes, error: SipParseError,
                    source: Address) -> tuple[Response, Address] | None:
    """A stateless response to a malformed request, or None when it cannot be built.

    The request line must have three tokens, a SIP version last and not be an ACK;
    the five headers a response copies must be present.
    """
    head_end = datagram.find(b"\r\n\r\n")
    if head_end < 0:
        head_end = datagram.find(b"\n\n")
    head = datagram if head_end < 0 else datagram[:head_end]
    text = head.decode("utf-8", errors="replace").lstrip("\r\n")
    lines = text.replace("\r\n", "\n").split("\n")
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].upper().startswith("SIP/") \
            or parts[0].upper() == "ACK" or parts[0].upper().startswith("SIP/"):
        return None
    found: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if found:
                name, value = found[-1]
                found[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        canonical = _ERROR_HEADERS.get(name.strip().lower())
        if colon and canonical is not None:
            found.append((canonical, value.strip()))
    present = {name for name, _ in found}
    if any(name not in present for name in _REQUIRED):
        return None
    headers = Headers()
    for wanted in _REQUIRED:
        for name, value in found:
            if name == wanted:
                if name == "To" and "tag=" not in value.lower():
                    value = f"{value};tag={new_tag()}"
                headers.add(name, value)
                if name != "Via":
                    break
    status = error.status if 300 <= error.status <= 699 else 400
    response = Response(status=status, reason=REASONS.get(status, "Bad Request"),
                        headers=headers)
    headers.add("Warning", f'399 ccswitch "{_printable(error.reason)}"')
    # RFC 3581 / 18.2.2 for a stateless answer: the source with rport, else the source
    # IP (as "received") and the Via port; the source when the Via is unreadable.
    destination = source
    try:
        via = Via.parse(headers.get_all("Via")[0])
        if not via.has_rport:
            destination = (source[0], via.sent_by()[1])
    except (SipParseError, IndexError):
        pass
    return response, destination


def _printable(text: str) -> str:
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)[:100]
