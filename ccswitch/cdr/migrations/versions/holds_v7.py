"""Holds on the calls table: each hold of the call (party, start, end) as JSON. The total,
``hold_ms``, has been a column since revision 0004.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Rows of calls before holds were recorded had none: an empty list, not NULL.
    op.add_column("calls", sa.Column("holds_json", sa.Text, nullable=False,
                                     server_default="[]"))
