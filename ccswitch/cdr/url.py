"""``cdr.database`` URLs: checked by ``ccswitch check`` without connecting anywhere."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

#: The URL schemes ``cdr.database`` accepts for PostgreSQL.
POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


def is_url(text: str) -> bool:
    """Whether ``cdr.database`` names a server (``scheme://...``) rather than a file."""
    return "://" in text


def check_url(url: str) -> None:
    """Raise ValueError (saying what is wrong) unless ``url`` is a usable PostgreSQL URL:
    a known scheme, a host, a valid port if any, and a database name."""
    if not url.startswith(POSTGRES_SCHEMES):
        scheme = url.partition("://")[0]
        raise ValueError(f"unknown database scheme {scheme!r}; use a file path (SQLite) or "
                         f"a URL starting with {', '.join(POSTGRES_SCHEMES)}")
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError("the PostgreSQL URL names no host (postgresql://user@host:port/db)")
    try:
        parts.port
    except ValueError as e:
        raise ValueError(f"the PostgreSQL URL has a bad port: {e}") from None
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ValueError("the PostgreSQL URL names no database (postgresql://user@host:port/db)")
