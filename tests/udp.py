"""A far-end UDP socket for tests: records every datagram it receives, sends on request."""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import DatagramProtocol

HOST = "127.0.0.1"


class Peer(DatagramProtocol):
    """A far-end phone socket on 127.0.0.1 (listen with ``reactor.listenUDP(0, peer, HOST)``)."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, tuple[str, int]]] = []

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.received.append((datagram, addr))

    @property
    def port(self) -> int:
        transport: Any = self.transport
        port: int = transport.getHost().port
        return port

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    def send_to(self, data: bytes, port: int) -> None:
        """Send ``data`` to ``port`` on 127.0.0.1."""
        transport: Any = self.transport
        transport.write(data, (HOST, port))
