"""The Redis store's ``state:`` URLs, parsed without connecting."""

from __future__ import annotations

import pytest

from ccswitch.state.redis_url import SentinelTarget, StateUrlError, parse_sentinel_url


def test_sentinel_url_parsing() -> None:
    """Hosts (default port 26379, IPv6), service, db and password come out of the URL."""
    assert parse_sentinel_url("redis+sentinel://s1:26380,s2,[::1]:5000/mymaster/2") == \
        SentinelTarget(sentinels=(("s1", 26380), ("s2", 26379), ("::1", 5000)),
                       service="mymaster", db=2)
    assert parse_sentinel_url("redis+sentinel://:p%40ss@s1/cc") == SentinelTarget(
        sentinels=(("s1", 26379),), service="cc", db=0, password="p@ss")
    for bad in ("redis://s1/cc", "redis+sentinel://s1", "redis+sentinel://s1:x/cc",
                "redis+sentinel://s1/cc/zero", "redis+sentinel://,s2/cc",
                "redis+sentinel://s1/cc/0/extra"):
        with pytest.raises(StateUrlError):
            parse_sentinel_url(bad)
