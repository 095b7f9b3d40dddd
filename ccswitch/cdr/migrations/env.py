"""Alembic environment for the CDR schema, run by ``ccswitch.cdr.store`` (no alembic.ini).

The store hands over an open connection in ``config.attributes["connection"]``; the
migrations run in its transaction. On PostgreSQL an advisory lock held for that
transaction makes nodes that start together migrate one after the other.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ccswitch.cdr.schema import metadata

#: pg_advisory_xact_lock key: "ccswitch" in ASCII, so it does not clash with other users.
MIGRATION_LOCK = 0x6363737769746368


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": MIGRATION_LOCK})
        context.run_migrations()


run_migrations(context.config.attributes["connection"])
