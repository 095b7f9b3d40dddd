"""The CDR store's behaviour suite runs against SQLite and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ccswitch.cdr.store import CdrStore, Target
from tests.pgd import PostgresServer, postgres_server

__all__ = ["cdr_target", "postgres_server", "store"]


@pytest.fixture(params=["sqlite", "postgresql"])
def cdr_target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """A new, empty CDR database: a SQLite file, or a database on the session's server."""
    if request.param == "sqlite":
        return tmp_path / "cdr.sqlite"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture
def store(cdr_target: Target) -> Iterator[CdrStore]:
    opened = CdrStore(cdr_target)
    try:
        yield opened
    finally:
        opened.close()
