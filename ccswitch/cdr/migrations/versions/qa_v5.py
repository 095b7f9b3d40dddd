"""The quality program's tables: samples (with the exemplary flag), scorecard versions
and evaluations. The calls table is unchanged.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "qa_samples",
        sa.Column("call_id", sa.Text, primary_key=True),
        sa.Column("sampled", sa.Boolean, nullable=False),
        sa.Column("sample_reason", sa.Text),
        sa.Column("flagged_ms", sa.BigInteger),
        sa.Column("exemplary", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("exemplary_by", sa.Text),
        sa.Column("exemplary_ms", sa.BigInteger),
    )
    op.create_index("qa_samples_exemplary", "qa_samples", ["exemplary"])
    op.create_table(
        "qa_forms",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("definition_json", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name="qa_forms_pkey"),
    )
    op.create_table(
        "qa_evaluations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.Text, nullable=False),
        sa.Column("reviewer", sa.Text, nullable=False),
        sa.Column("session", sa.Text, nullable=False, server_default=""),
        sa.Column("form_name", sa.Text, nullable=False),
        sa.Column("form_version", sa.Integer, nullable=False),
        sa.Column("answers_json", sa.Text, nullable=False),
        sa.Column("comments_json", sa.Text, nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("auto_failed", sa.Boolean, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("call_id", "reviewer", "session",
                            name="qa_evaluations_one_per_reviewer"),
    )
    op.create_index("qa_evaluations_session", "qa_evaluations", ["session"])
