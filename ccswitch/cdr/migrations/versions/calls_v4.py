"""The calls table as ccswitch's SQLite schema version 4 had it (the Alembic baseline).

A SQLite database made before Alembic is brought to version 4 by the old steps in
``ccswitch.cdr.legacy`` and then stamped with this revision, so it is not re-created.

Revision ID: 0004
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    ms = sa.BigInteger
    op.create_table(
        "calls",
        sa.Column("call_id", sa.Text, primary_key=True),
        sa.Column("sip_call_id", sa.Text),
        sa.Column("node", sa.Text),
        sa.Column("caller", sa.Text, nullable=False),
        sa.Column("dialed", sa.Text, nullable=False),
        sa.Column("queue", sa.Text, nullable=False),
        sa.Column("grp", sa.Text, nullable=False),
        sa.Column("route", sa.Text, nullable=False, server_default="inhouse"),
        sa.Column("vendor", sa.Text),
        sa.Column("agent_id", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("overflow_reason", sa.Text),
        sa.Column("arrived_ms", ms, nullable=False),
        sa.Column("announced_ms", ms),
        sa.Column("queued_ms", ms),
        sa.Column("answered_ms", ms),
        sa.Column("ended_ms", ms, nullable=False),
        sa.Column("wait_ms", ms),
        sa.Column("ring_ms", ms),
        sa.Column("talk_ms", ms),
        sa.Column("hold_ms", ms),
        sa.Column("total_ms", ms, nullable=False),
        sa.Column("short_abandon", sa.Boolean, nullable=False),
        sa.Column("qa_notice_played", sa.Boolean, nullable=False),
        sa.Column("recording_path", sa.Text),
        sa.Column("recording_error", sa.Text),
        sa.Column("offers_json", sa.Text, nullable=False),
        sa.Column("short_abandon_threshold_ms", ms),
        sa.Column("overflowed_ms", ms),
        sa.Column("recording_started_ms", ms),
    )
    op.create_index("calls_arrived", "calls", ["arrived_ms"])
    op.create_index("calls_queue_arrived", "calls", ["queue", "arrived_ms"])
    op.create_index("calls_caller", "calls", ["caller"])
    op.create_index("calls_agent_arrived", "calls", ["agent_id", "arrived_ms"])
    op.create_index("calls_vendor_arrived", "calls", ["vendor", "arrived_ms"])

