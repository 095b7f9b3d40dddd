"""The CDR schema as SQLAlchemy Core tables: one definition for SQLite and PostgreSQL.

The queries in ``store.py`` are built from these tables; the Alembic revisions under
``migrations/versions/`` create and change them. A change here needs a new revision
too: a test compares a migrated database with these tables on both engines.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger, Boolean, Column, Float, Index, Integer, MetaData, PrimaryKeyConstraint, Table,
    Text, UniqueConstraint, false,
)

metadata = MetaData()

#: One row per call, keyed by ccswitch's call id; times are epoch ms, durations ms.
calls = Table(
    "calls", metadata,
    Column("call_id", Text, primary_key=True),
    Column("sip_call_id", Text),
    Column("node", Text),
    Column("caller", Text, nullable=False),
    Column("dialed", Text, nullable=False),
    Column("queue", Text, nullable=False),
    Column("grp", Text, nullable=False),
    Column("route", Text, nullable=False, server_default="inhouse"),
    Column("vendor", Text),
    Column("agent_id", Text),
    Column("outcome", Text, nullable=False),
    Column("overflow_reason", Text),
    Column("arrived_ms", BigInteger, nullable=False),
    Column("announced_ms", BigInteger),
    Column("queued_ms", BigInteger),
    Column("answered_ms", BigInteger),
    Column("ended_ms", BigInteger, nullable=False),
    Column("wait_ms", BigInteger),
    Column("ring_ms", BigInteger),
    Column("talk_ms", BigInteger),
    Column("hold_ms", BigInteger),
    Column("total_ms", BigInteger, nullable=False),
    Column("short_abandon", Boolean, nullable=False),
    Column("qa_notice_played", Boolean, nullable=False),
    Column("recording_path", Text),
    Column("recording_error", Text),
    Column("offers_json", Text, nullable=False),
    Column("short_abandon_threshold_ms", BigInteger),
    Column("overflowed_ms", BigInteger),
    Column("recording_started_ms", BigInteger),
    Column("holds_json", Text, nullable=False, server_default="[]"),  # revision 0007
    Index("calls_arrived", "arrived_ms"),
    Index("calls_queue_arrived", "queue", "arrived_ms"),
    Index("calls_caller", "caller"),
    Index("calls_agent_arrived", "agent_id", "arrived_ms"),
    Index("calls_vendor_arrived", "vendor", "arrived_ms"),
)

# -- the quality program (revision 0005) ----------------------------------------------

#: One row per call the sampler flagged or a reviewer marked exemplary, by call id.
qa_samples = Table(
    "qa_samples", metadata,
    Column("call_id", Text, primary_key=True),
    Column("sampled", Boolean, nullable=False),
    Column("sample_reason", Text),
    Column("flagged_ms", BigInteger),
    Column("exemplary", Boolean, nullable=False, server_default=false()),
    Column("exemplary_by", Text),
    Column("exemplary_ms", BigInteger),
    Index("qa_samples_exemplary", "exemplary"),
)

#: Every scorecard version an evaluation was scored on, as JSON: old evaluations keep
#: their form when the scorecard changes.
qa_forms = Table(
    "qa_forms", metadata,
    Column("name", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("definition_json", Text, nullable=False),
    PrimaryKeyConstraint("name", "version", name="qa_forms_pkey"),
)

#: One reviewer's evaluation of one call (in a calibration ``session``, or ``""``).
qa_evaluations = Table(
    "qa_evaluations", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", Text, nullable=False),
    Column("reviewer", Text, nullable=False),
    Column("session", Text, nullable=False, server_default=""),
    Column("form_name", Text, nullable=False),
    Column("form_version", Integer, nullable=False),
    Column("answers_json", Text, nullable=False),
    Column("comments_json", Text, nullable=False),
    Column("score", Float),
    Column("auto_failed", Boolean, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    UniqueConstraint("call_id", "reviewer", "session", name="qa_evaluations_one_per_reviewer"),
    Index("qa_evaluations_session", "session"),
)


# -- the portal (revision 0006) ------------------------------------------------------

#: Portal users (``ccswitch user ...``); ``vendor`` binds a vendor reviewer to one vendor.
#: Passwords are argon2id hashes (``ccswitch.portal.passwords``), never the password.
users = Table(
    "users", metadata,
    Column("username", Text, primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("vendor", Text),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)
