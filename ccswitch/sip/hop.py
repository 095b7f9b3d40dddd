"""Where a SIP message goes next and over which transport, sans-I/O.

A :class:`Hop` is what the transaction layer hands to the transports with each message:
the transport, the address, the name a TLS server certificate must carry, and for an
answer the connection the request came on (``flow``). :func:`select_transport` picks
the transport of a request from its next-hop URI (RFC 3261 18.1.1, 19.1.2; RFC 5630
for ``sips:``) and its size.
"""

from __future__ import annotations

from typing import Final

import attrs

from ccswitch.model import Transport
from ccswitch.sip.message import NameAddr, Request, SipURI

__all__ = ["Transport", "Hop", "select_transport", "next_hop_uri", "MTU_LIMIT",
           "default_port"]

#: RFC 3261 18.1.1: a request within 200 bytes of a 1300-byte path MTU (unknown here)
#: goes over a congestion-controlled transport when the URI does not pin UDP.
MTU_LIMIT: Final = 1300 - 200


def default_port(transport: Transport) -> int:
    return 5061 if transport is Transport.TLS else 5060


@attrs.frozen(kw_only=True)
class Hop:
    """One message's destination as the transports need it."""

    host: str
    port: int
    transport: Transport = Transport.UDP
    server_name: str | None = None
    """TLS: the host name (or IP) the server certificate must be valid for."""
    flow: int | None = None
    """The connection a request came on: its responses go back over it (RFC 3261
    18.2.2); None, or a closed connection, means any connection to the address."""

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


def next_hop_uri(request: Request) -> SipURI:
    """The first Route (loose routing, RFC 3261 8.1.2), else the Request-URI."""
    routes = request.headers.get_all("Route")
    if routes:
        return NameAddr.parse(routes[0]).sip_uri
    return request.uri


def select_transport(uri: SipURI, size: int, *,
                     available: frozenset[Transport]) -> Transport:
    """The transport for a request of ``size`` bytes to ``uri``.

    ``sips:`` (with no transport or ``tcp``) and ``;transport=tls`` mean TLS, ``;transport=tcp`` TCP, ``;transport=udp``
    UDP whatever the size. Without a parameter: UDP, or TCP for a request longer than
    :data:`MTU_LIMIT` when a TCP transport is ``available``. Raises ValueError for a
    transport that is not available (or unknown), naming it.
    """
    param = (uri.param("transport") or "").lower()
    if uri.scheme == "sips":
        # RFC 5630 3.1.1: sips: over TCP is TLS; nothing here secures a datagram.
        if param not in ("", "tcp", "tls"):
            raise ValueError(f"sips: URI with transport={param} (TLS over TCP only)")
        wanted = Transport.TLS
    elif param:
        try:
            wanted = Transport(param)
        except ValueError:
            raise ValueError(f"unknown transport {param!r}") from None
    elif size > MTU_LIMIT and Transport.TCP in available:
        return Transport.TCP
    else:
        wanted = Transport.UDP
    if wanted not in available:
        raise ValueError(f"transport {wanted.value} is not configured")
    return wanted
