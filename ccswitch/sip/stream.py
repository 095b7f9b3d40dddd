"""Framing SIP messages on a byte stream (TCP, TLS), sans-I/O (RFC 3261 18.3).

On a stream the Content-Length header is the only way to find where a message ends, so
it is mandatory there. :class:`StreamFramer` takes the bytes as they arrive and hands
back each complete message (head and body, as :func:`parse_message` wants it) and each
RFC 5626 keep-alive ping. What a peer can use to make it hold memory is bounded: a head
with no blank line after ``max_head`` bytes, a Content-Length above ``max_body``, a
missing, unreadable or repeated-and-different Content-Length raise
:class:`FramingError`. After one the stream cannot be resynchronised: the connection
is closed. A Content-Length that promises more bytes than ever come is the idle
timeout's job (no complete message for N seconds), not the framer's.
"""

from __future__ import annotations

import re
from typing import Final

import attrs

from ccswitch.errors import SipParseError

__all__ = ["FramingError", "Ping", "StreamFramer", "MAX_HEAD", "PONG"]

#: Longest message head accepted (start line and headers with the blank line): far
#: above real SIP heads (a few KB), small enough to bound a peer that never ends one.
MAX_HEAD: Final = 65536

#: RFC 5626 3.5.1: the answer to a double-CRLF ping.
PONG: Final = b"\r\n"

_HEAD_END = re.compile(rb"\r?\n\r?\n")
# Content-Length and its compact form "l" (RFC 3261 7.3.3), at the start of a line.
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(.*?)[ \t]*\r?$",
                             re.IGNORECASE | re.MULTILINE)


class FramingError(SipParseError):
    """The stream broke the framing rules; the connection must be closed."""


@attrs.frozen
class Ping:
    """A keep-alive double CRLF between messages (RFC 5626 3.5.1): answer :data:`PONG`."""


class StreamFramer:
    """Cuts a byte stream into SIP messages."""

    def __init__(self, *, max_body: int, max_head: int = MAX_HEAD) -> None:
        self._max_body = max_body
        self._max_head = max_head
        self._buffer = bytearray()
        self._body_length: int | None = None  # of the message whose head is complete
        self._head_length = 0

    @property
    def pending(self) -> int:
        """Bytes held for a message not complete yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes | Ping]:
        """The complete messages and pings ``data`` finishes, in order.

        Raises :class:`FramingError` when the stream cannot be framed any more.
        """
        self._buffer += data
        out: list[bytes | Ping] = []
        while True:
            if self._body_length is None:
                if not self._head(out):
                    return out
            assert self._body_length is not None
            end = self._head_length + self._body_length
            if len(self._buffer) < end:
                return out
            out.append(bytes(self._buffer[:end]))
            del self._buffer[:end]
            self._body_length = None

    def _head(self, out: list[bytes | Ping]) -> bool:
        """Skip keep-alive CRLFs, then read a complete head; False when more bytes are
        needed."""
        buffer = self._buffer
        skipped = 0
        while skipped < len(buffer) and buffer[skipped] in (13, 10):
            skipped += 1
        if skipped:
            if buffer[:skipped].count(b"\r\n\r\n") or buffer[:skipped].count(b"\n\n"):
                out.append(Ping())
            del buffer[:skipped]
        match = _HEAD_END.search(buffer)
        if match is None:
            if len(buffer) > self._max_head:
                raise FramingError(f"no end of headers within {self._max_head} bytes")
            return False
        if match.end() > self._max_head:
            raise FramingError(f"headers longer than {self._max_head} bytes")
        head = bytes(buffer[:match.end()])
        self._head_length = match.end()
        self._body_length = self._content_length(head)
        return True

    def _content_length(self, head: bytes) -> int:
        values = {v.strip() for v in _CONTENT_LENGTH.findall(head)}
        if not values:
            raise FramingError("no Content-Length (mandatory on a stream)")
        if len(values) > 1:
            raise FramingError("Content-Length headers disagree")
        text = values.pop()
        if not text.isdigit() or len(text) > 10:
            raise FramingError(f"bad Content-Length: {text[:20]!r}")
        length = int(text)
        if length > self._max_body:
            raise FramingError(f"Content-Length {length} above the {self._max_body} "
                               "byte limit")
        return length
