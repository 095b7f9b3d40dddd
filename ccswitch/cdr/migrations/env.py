"""Alembic environment for the CDR schema, run by ``ccswitch.cdr.store`` (no alembic.ini).

The store hands over an open connection in ``config.attributes["connection"]``, in a
transaction that already keeps other migrators out; the revisions run in it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from ccswitch.cdr.schema import metadata


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


run_migrations(context.config.attributes["connection"])
