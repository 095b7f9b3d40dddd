"""SQLite CDR databases from before Alembic: brought to schema version 4, then stamped.

Those databases carry their version in SQLite's ``user_version`` (1 to 4). Opening
one applies the missing steps of ``MIGRATIONS`` and records Alembic's baseline
revision (``0004``, the same schema) in the same transaction, so from then on
Alembic alone migrates it and ``user_version`` stays 4. A ``user_version`` above 4
without Alembic's table comes from an unknown ccswitch and is refused untouched.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from twisted.logger import Logger

from ccswitch.cdr.errors import CdrError

log = Logger()

#: Step ``n`` (0-based) takes the schema from version ``n`` to ``n + 1``. Frozen: later
#: changes are Alembic revisions.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # v1: the first CDR table.
    (
        """CREATE TABLE calls (
            call_id TEXT PRIMARY KEY,
            sip_call_id TEXT,
            node TEXT,
            caller TEXT NOT NULL,
            dialed TEXT NOT NULL,
            queue TEXT NOT NULL,
            grp TEXT NOT NULL,
            route TEXT NOT NULL DEFAULT 'inhouse',
            vendor TEXT,
            agent_id TEXT,
            outcome TEXT NOT NULL,
            overflow_reason TEXT,
            arrived_ms INTEGER NOT NULL,
            announced_ms INTEGER,
            queued_ms INTEGER,
            answered_ms INTEGER,
            ended_ms INTEGER NOT NULL,
            wait_ms INTEGER,
            ring_ms INTEGER,
            talk_ms INTEGER,
            hold_ms INTEGER,
            total_ms INTEGER NOT NULL,
            short_abandon INTEGER NOT NULL,
            qa_notice_played INTEGER NOT NULL,
            recording_path TEXT,
            recording_error TEXT,
            offers_json TEXT NOT NULL
        )""",
        "CREATE INDEX calls_arrived ON calls (arrived_ms)",
        "CREATE INDEX calls_queue_arrived ON calls (queue, arrived_ms)",
        "CREATE INDEX calls_caller ON calls (caller)",
    ),
    # v2: the queue's short-abandon threshold at arrival (so the flag can be
    # audited), and per-agent lookups.
    (
        "ALTER TABLE calls ADD COLUMN short_abandon_threshold_ms INTEGER",
        "CREATE INDEX calls_agent_arrived ON calls (agent_id, arrived_ms)",
    ),
    # v3: vendor overflow. When the call was first sent to a vendor, and the
    # outcome list of issue 2: "answered" splits by route; "abandoned" becomes
    # short_abandon (flagged short), abandoned_ringing (an agent's offer was
    # cancelled by the hang-up: with no answer, only the caller leaving cancels
    # offers) or abandoned_queue.
    (
        "ALTER TABLE calls ADD COLUMN overflowed_ms INTEGER",
        "CREATE INDEX calls_vendor_arrived ON calls (vendor, arrived_ms)",
        """UPDATE calls SET outcome = CASE
             WHEN route = 'vendor' THEN 'answered_vendor' ELSE 'answered_inhouse' END
           WHERE outcome = 'answered'""",
        """UPDATE calls SET outcome = CASE
             WHEN short_abandon = 1 THEN 'short_abandon'
             WHEN offers_json LIKE '%"result": "cancelled"%' THEN 'abandoned_ringing'
             ELSE 'abandoned_queue' END
           WHERE outcome = 'abandoned'""",
    ),
    # v4: when the recording started (after the QA notice, or at the answer), so the
    # record shows the notice came first.
    (
        "ALTER TABLE calls ADD COLUMN recording_started_ms INTEGER",
    ),
)
LEGACY_VERSION = len(MIGRATIONS)
#: The Alembic revision whose schema is LEGACY_VERSION's.
BASELINE_REVISION = "0004"
# Alembic's own bookkeeping table, as ``alembic stamp`` creates it.
_STAMP = (
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))",
    f"INSERT INTO alembic_version (version_num) VALUES ('{BASELINE_REVISION}')",
)


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                      (name,)).fetchone() is not None


def upgrade_to_baseline(path: Path) -> None:
    """Bring a pre-Alembic database at ``path`` to version 4 and stamp it (see above).

    A new file, or one Alembic already manages, is left as it is. Raises
    CdrError for a newer ``user_version`` and sqlite3.Error for a file
    SQLite cannot use.
    """
    db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    try:
        if _has_table(db, "alembic_version"):
            return
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > LEGACY_VERSION:
            raise CdrError(
                f"CDR database {path} has schema version {version}, newer than this "
                f"ccswitch knows ({LEGACY_VERSION}); upgrade ccswitch or point "
                f"cdr.database at another file")
        if version == 0 and not _has_table(db, "calls"):
            return  # a new database: Alembic creates everything
        db.execute("BEGIN IMMEDIATE")  # one migrator at a time across processes
        try:
            if _has_table(db, "alembic_version"):  # another process was first
                db.execute("ROLLBACK")
                return
            before = int(db.execute("PRAGMA user_version").fetchone()[0])
            for step in range(before, LEGACY_VERSION):
                for statement in MIGRATIONS[step]:
                    db.execute(statement)
            for statement in _STAMP:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {LEGACY_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        log.info("CDR database {path}: schema version {old} brought to {new} and handed to "
                 "Alembic (revision {revision})", path=str(path), old=before,
                 new=LEGACY_VERSION, revision=BASELINE_REVISION)
    finally:
        db.close()
