"""Malformed SIP end to end: a real ccswitch process answers what it can and counts it."""

from __future__ import annotations

import socket

import pytest

from tests.e2e.node import NodeFactory, agent_uri, dialplan
from tests.phones.client import free_udp_port

pytestmark = pytest.mark.e2e


def options(sip_port: int, local: int, *, via_host: str = "127.0.0.1",
            start: str | None = None, extra: str = "") -> bytes:
    """An OPTIONS to number 100 from a socket on 127.0.0.1:``local`` (no rport)."""
    return (
        f"{start or f'OPTIONS sip:100@127.0.0.1:{sip_port} SIP/2.0'}\r\n"
        f"Via: SIP/2.0/UDP {via_host}:{local};branch=z9hG4bK-edge-{local}\r\n"
        "From: <sip:edge@127.0.0.1>;tag=e1\r\nTo: <sip:ccswitch@127.0.0.1>\r\n"
        f"Call-ID: edge-{local}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\n{extra}"
        "Content-Length: 0\r\n\r\n").encode()


def answer(sock: socket.socket, data: bytes, port: int) -> bytes | None:
    """Send ``data`` to ccswitch; the reply, or None after 2 s."""
    sock.sendto(data, ("127.0.0.1", port))
    sock.settimeout(2.0)
    try:
        return sock.recvfrom(65535)[0]
    except socket.timeout:
        return None


def test_malformed_requests_are_answered_400_and_counted(node_factory: NodeFactory) -> None:
    """A bad Max-Forwards, a Request-URI with a space and a Via naming an unresolvable host
    each get a stateless 400 at the sender, counted in ccswitch_sip_rejected_total."""
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", free_udp_port())}}))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    local = sock.getsockname()[1]
    try:
        sent = [
            options(node.sip_port, local, extra="Max-Forwards: abc\r\n"),
            options(node.sip_port, local, start=f"OPTIONS sip:1 00@127.0.0.1:{node.sip_port} "
                                                "SIP/2.0"),
            options(node.sip_port, local, via_host="phone.invalid",
                    extra="Max-Forwards: abc\r\n"),
        ]
        replies = [answer(sock, data, node.sip_port) for data in sent]
    finally:
        sock.close()
    assert [reply and reply.split(b" ", 2)[1] for reply in replies] == [b"400"] * 3
    assert replies[2] is not None and b";received=127.0.0.1" in replies[2]
    node.wait_metric(3, "ccswitch_sip_rejected_total", status="400")
