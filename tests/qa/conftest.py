"""The QA store's suite runs against SQLite and a real PostgreSQL, like the CDR store's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ccswitch.cdr.store import Target
from ccswitch.qa.store import QaStore
from tests.cdr.conftest import cdr_target, postgres_server

__all__ = ["cdr_target", "postgres_server", "qa"]


@pytest.fixture
def qa(cdr_target: Target) -> Iterator[QaStore]:
    opened = QaStore(cdr_target)
    try:
        yield opened
    finally:
        opened.close()
