"""The ``state:`` URL of the Redis store: which schemes are accepted and what a
``redis+sentinel://`` URL names, checked without connecting (``ccswitch check`` and
:meth:`~ccswitch.state.redis_store.RedisStore.from_url` use the same functions)."""

from __future__ import annotations

import urllib.parse

import attrs

from ccswitch.errors import CCSwitchError

SENTINEL_PORT = 26379


class StateUrlError(CCSwitchError):
    """A ``state:`` URL cannot be understood."""

    error_id = "state.url"


@attrs.frozen(kw_only=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL names."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = None


def parse_sentinel_url(url: str) -> SentinelTarget:
    """``redis+sentinel://[:password@]h1[:p1],h2[:p2]/service[/db]`` -> SentinelTarget."""
    scheme, sep, rest = url.partition("://")
    if scheme != "redis+sentinel" or not sep:
        raise StateUrlError(f"not a redis+sentinel:// URL: {url!r}")
    netloc, _, path = rest.partition("/")
    password: str | None = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        secret = userinfo.partition(":")[2] if ":" in userinfo else userinfo
        password = urllib.parse.unquote(secret) or None
    sentinels: list[tuple[str, int]] = []
    for part in netloc.split(","):
        sentinels.append(_host_port(part, url))
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise StateUrlError(f"{url!r}: a sentinel URL names the service: "
                            "redis+sentinel://host:port,host:port/<service>[/db]")
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise StateUrlError(f"db must be a number in {url!r}")
        db = int(parts[1])
    return SentinelTarget(sentinels=tuple(sentinels), service=urllib.parse.unquote(parts[0]),
                          db=db, password=password)


def check_url(url: str) -> None:
    """Raise StateUrlError naming what is wrong with a state store URL (``redis://``,
    ``rediss://``, ``unix://`` or ``redis+sentinel://``); nothing is connected."""
    scheme = url.partition("://")[0]
    if scheme == "redis+sentinel":
        parse_sentinel_url(url)
        return
    if scheme not in ("redis", "rediss", "unix"):
        raise StateUrlError(f"unsupported state store URL scheme {scheme!r}")
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise StateUrlError(f"{url!r}: bad port {parts.netloc.rpartition(':')[2]!r}")
    if scheme != "unix" and not parts.hostname:
        raise StateUrlError(f"{url!r} has no host")


def _host_port(part: str, url: str) -> tuple[str, int]:
    part = part.strip()
    if part.startswith("["):
        host, bracket, tail = part[1:].partition("]")
        if not bracket:
            raise StateUrlError(f"unclosed '[' in {url!r}")
        port_text = tail[1:] if tail.startswith(":") else tail
    else:
        host, _, port_text = part.partition(":")
    if not host:
        raise StateUrlError(f"empty sentinel host in {url!r}")
    if not port_text:
        return host, SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise StateUrlError(f"{url!r}: bad port {port_text!r} for a sentinel")
    return host, int(port_text)
