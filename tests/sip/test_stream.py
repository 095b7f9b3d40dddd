"""Framing SIP messages on a stream by Content-Length (RFC 3261 18.3)."""

from __future__ import annotations

import pytest

from ccswitch.sip.message import Request, parse_message
from ccswitch.sip.stream import FramingError, Ping, StreamFramer


def message(body: bytes = b"", *, length: int | None = None, call_id: str = "c1",
            extra: str = "") -> bytes:
    size = len(body) if length is None else length
    return (f"OPTIONS sip:100@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK{call_id}\r\n"
            "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n{extra}"
            f"Content-Length: {size}\r\n\r\n").encode() + body


def framer() -> StreamFramer:
    return StreamFramer(max_body=1000, max_head=4096)


def test_partial_message_waits_for_the_rest() -> None:
    """A message cut anywhere comes out once, whole, when its last byte arrives."""
    data = message(b"hello")
    f = framer()
    out = [m for i in range(len(data)) for m in f.feed(data[i:i + 1])]
    assert out == [data]


def test_several_messages_in_one_chunk() -> None:
    """Two messages and the start of a third in one read: two out, the rest kept."""
    a, b, c = message(b"x", call_id="a"), message(call_id="b"), message(b"yz", call_id="c")
    f = framer()
    assert f.feed(a + b + c[:10]) == [a, b]
    assert f.pending == 10
    assert f.feed(c[10:]) == [c]


def test_framed_message_parses() -> None:
    """What the framer hands out is a message the parser accepts, body included."""
    f = framer()
    (out,) = f.feed(message(b"body!"))
    assert isinstance(out, bytes)
    parsed = parse_message(out)
    assert isinstance(parsed, Request) and parsed.body == b"body!"


def test_double_crlf_is_a_ping() -> None:
    """A double CRLF between messages is a keep-alive ping, not a message."""
    f = framer()
    assert f.feed(b"\r\n\r\n" + message()) == [Ping(), message()]


def test_single_crlf_is_skipped_silently() -> None:
    """A single CRLF (a pong) is skipped without a ping."""
    assert framer().feed(b"\r\n" + message()) == [message()]


def test_compact_content_length() -> None:
    """The compact form ``l:`` frames the body too."""
    data = message(b"abc").replace(b"Content-Length:", b"l:")
    assert framer().feed(data) == [data]


def test_lying_content_length_holds_the_message() -> None:
    """A Content-Length above the bytes sent yields nothing (the idle timer ends it)."""
    f = framer()
    assert f.feed(message(b"abc", length=500)) == []
    assert f.pending > 0


def test_endless_headers_raise() -> None:
    """A head with no blank line past the head limit is a framing error."""
    f = framer()
    f.feed(b"OPTIONS sip:x@y SIP/2.0\r\n")
    with pytest.raises(FramingError, match="no end of headers"):
        for _ in range(100):
            f.feed(b"X-Junk: " + b"a" * 100 + b"\r\n")


def test_oversize_body_raises() -> None:
    """A Content-Length above the body limit is refused before any body is read."""
    with pytest.raises(FramingError, match="above the 1000 byte limit"):
        framer().feed(message(length=1001))


def test_missing_content_length_raises() -> None:
    """A stream message without Content-Length cannot be framed."""
    data = message().replace(b"Content-Length: 0\r\n", b"")
    with pytest.raises(FramingError, match="no Content-Length"):
        framer().feed(data)


def test_disagreeing_content_lengths_raise() -> None:
    """Two different Content-Length values are refused (request smuggling)."""
    with pytest.raises(FramingError, match="disagree"):
        framer().feed(message(b"ab", extra="Content-Length: 5\r\n"))


def test_bad_content_length_raises() -> None:
    """A negative or non-numeric Content-Length is refused."""
    with pytest.raises(FramingError, match="bad Content-Length"):
        framer().feed(message().replace(b"Content-Length: 0", b"Content-Length: -5"))
