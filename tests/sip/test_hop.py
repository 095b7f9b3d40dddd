"""Choosing a request's transport from its URI and size (RFC 3261 18.1.1, RFC 5630)."""

from __future__ import annotations

import pytest

from ccswitch.sip.hop import MTU_LIMIT, Transport, select_transport
from ccswitch.sip.message import SipURI

ALL = frozenset(Transport)
UDP_ONLY = frozenset({Transport.UDP})


def pick(uri: str, size: int = 500, available: frozenset[Transport] = ALL) -> Transport:
    return select_transport(SipURI.parse(uri), size, available=available)


def test_plain_uri_is_udp() -> None:
    """A sip: URI without a transport parameter goes over UDP."""
    assert pick("sip:a@10.0.0.1") is Transport.UDP


def test_transport_tcp_param() -> None:
    """``;transport=tcp`` means TCP."""
    assert pick("sip:a@10.0.0.1;transport=TCP") is Transport.TCP


def test_transport_tls_param() -> None:
    """``;transport=tls`` means TLS."""
    assert pick("sip:a@10.0.0.1;transport=tls") is Transport.TLS


def test_sips_is_tls() -> None:
    """A sips: URI goes over TLS, also with ``;transport=tcp``."""
    assert pick("sips:a@example.com") is Transport.TLS
    assert pick("sips:a@example.com;transport=tcp") is Transport.TLS


def test_sips_over_udp_refused() -> None:
    """A sips: URI pinned to UDP cannot be honoured."""
    with pytest.raises(ValueError, match="TLS over TCP only"):
        pick("sips:a@example.com;transport=udp")


def test_large_request_switches_to_tcp() -> None:
    """A request within 200 bytes of 1300 goes over TCP when TCP is there."""
    assert pick("sip:a@10.0.0.1", size=MTU_LIMIT + 1) is Transport.TCP
    assert pick("sip:a@10.0.0.1", size=MTU_LIMIT) is Transport.UDP


def test_large_request_stays_udp_without_tcp() -> None:
    """Without a TCP transport a large request still goes over UDP."""
    assert pick("sip:a@10.0.0.1", size=5000, available=UDP_ONLY) is Transport.UDP


def test_pinned_udp_stays_udp_when_large() -> None:
    """``;transport=udp`` pins UDP whatever the size."""
    assert pick("sip:a@10.0.0.1;transport=udp", size=5000) is Transport.UDP


def test_unconfigured_transport_refused() -> None:
    """A URI asking for a transport this node does not run is refused by name."""
    with pytest.raises(ValueError, match="transport tls is not configured"):
        pick("sips:a@example.com", available=UDP_ONLY)


def test_unknown_transport_refused() -> None:
    """An unknown transport parameter is refused by name."""
    with pytest.raises(ValueError, match="unknown transport 'sctp'"):
        pick("sip:a@10.0.0.1;transport=sctp")
