"""The call-detail-record store, on SQLite and on PostgreSQL (``store``, ``cdr_target``)."""

from __future__ import annotations

import io
import json
import math
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ccswitch.cdr import store as store_module
from ccswitch.cdr.legacy import LEGACY_VERSION, MIGRATIONS
from ccswitch.cdr.schema import metadata
from ccswitch.cdr.store import (
    MIGRATIONS_DIR, CdrError, CdrStore, CdrUnavailable, JsonLinesSink, Target,
)
from ccswitch.errors import CCSwitchError

# A real record as the B2BUA hands it over: CallRecord.to_dict() plus its extras.
RECORD: dict[str, Any] = {
    "agent_id": "alice", "announced_at": 1795419746.442,
    "announced_at_iso": "2026-11-23T08:22:26.442Z", "answered_at": 1795419746.955,
    "answered_at_iso": "2026-11-23T08:22:26.955Z", "arrived_at": 1795419742.482,
    "arrived_at_iso": "2026-11-23T08:22:22.482Z", "call_id": "1a2075b2110-7f30a3da",
    "caller": "caller", "dialed": "100", "ended_at": 1795419750.462,
    "ended_at_iso": "2026-11-23T08:22:30.462Z", "group": "inhouse",
    "offers": [{"agent_id": "alice", "ended_at": 1795419746.955,
                "ended_at_iso": "2026-11-23T08:22:26.955Z", "offered_at": 1795419746.442,
                "offered_at_iso": "2026-11-23T08:22:26.442Z", "result": "answered",
                "ring": 0.513}],
    "outcome": "answered", "qa_notice_played": True, "queue": "support",
    "queued_at": 1795419746.442, "queued_at_iso": "2026-11-23T08:22:26.442Z", "ring": 0.513,
    "short_abandon": False, "short_abandon_threshold": 5.0,
    "sip_call_id": "iOAERuLwbcDSl1ne3HtQZPnotQb-1F7x", "talk": 3.507, "total": 7.981,
    "wait": 0.513,
    "recording": {"path": "/rec/2026/11/23/1a2075b2110-7f30a3da.wav",
                  "duration_seconds": 7.98},
}

#: The newest schema revision: every store opens its database at it.
HEAD = ScriptDirectory(str(store_module.MIGRATIONS_DIR)).get_current_head()

# The schema as the first CDR release created it (user_version 1), spelled out by
# hand so this test keeps checking old databases even if the code's steps change.
V1_SCHEMA = """
CREATE TABLE calls (
    call_id TEXT PRIMARY KEY, sip_call_id TEXT, node TEXT, caller TEXT NOT NULL,
    dialed TEXT NOT NULL, queue TEXT NOT NULL, grp TEXT NOT NULL,
    route TEXT NOT NULL DEFAULT 'inhouse', vendor TEXT, agent_id TEXT, outcome TEXT NOT NULL,
    overflow_reason TEXT, arrived_ms INTEGER NOT NULL, announced_ms INTEGER,
    queued_ms INTEGER, answered_ms INTEGER, ended_ms INTEGER NOT NULL, wait_ms INTEGER,
    ring_ms INTEGER, talk_ms INTEGER, hold_ms INTEGER, total_ms INTEGER NOT NULL,
    short_abandon INTEGER NOT NULL, qa_notice_played INTEGER NOT NULL,
    recording_path TEXT, recording_error TEXT, offers_json TEXT NOT NULL);
CREATE INDEX calls_arrived ON calls (arrived_ms);
CREATE INDEX calls_queue_arrived ON calls (queue, arrived_ms);
CREATE INDEX calls_caller ON calls (caller);
INSERT INTO calls (call_id, caller, dialed, queue, grp, outcome, arrived_ms, ended_ms,
    total_ms, short_abandon, qa_notice_played, offers_json)
    VALUES ('old-call', '5550001', '100', 'support', 'inhouse', 'abandoned',
            1795000000000, 1795000003000, 3000, 1, 0, '[]');
PRAGMA user_version = 1;
"""





def _engine(target: Target) -> sqlalchemy.Engine:
    """A plain SQLAlchemy engine on the store's database, to look at it from outside."""
    if isinstance(target, Path):
        return sqlalchemy.create_engine(f"sqlite:///{target}")
    return sqlalchemy.create_engine(target.replace("postgresql://", "postgresql+psycopg://"))


def _legacy_file(path: Path, version: int) -> None:
    """A SQLite CDR file as ccswitch made it before Alembic, at ``user_version`` 1..4,
    with one call: V1_SCHEMA spelled out, then the shipped steps."""
    old = sqlite3.connect(path)
    old.executescript(V1_SCHEMA)
    for step in MIGRATIONS[1:version]:
        for statement in step:
            old.execute(statement)
    old.execute(f"PRAGMA user_version = {version}")
    old.commit()
    old.close()


def test_the_real_record_round_trips_with_millisecond_times(store: CdrStore) -> None:
    """Every timestamp and duration comes back in integer ms; text, flags and offers too."""
    store.add(RECORD)
    [row] = store.rows()
    assert (row.arrived_ms, row.announced_ms, row.queued_ms, row.answered_ms, row.ended_ms) == (
        1795419742482, 1795419746442, 1795419746442, 1795419746955, 1795419750462)
    assert (row.wait_ms, row.ring_ms, row.talk_ms, row.hold_ms, row.total_ms) == (
        513, 513, 3507, None, 7981)
    assert (row.call_id, row.sip_call_id, row.caller, row.dialed) == (
        RECORD["call_id"], RECORD["sip_call_id"], "caller", "100")
    assert (row.queue, row.group, row.agent_id, row.outcome) == (
        "support", "inhouse", "alice", "answered")
    assert (row.route, row.vendor, row.overflow_reason, row.node) == ("inhouse", None, None, None)
    assert row.qa_notice_played is True and row.short_abandon is False
    assert row.short_abandon_threshold_ms == 5000
    assert row.recording_path == RECORD["recording"]["path"] and row.recording_error is None
    assert [dict(o) for o in row.offers] == RECORD["offers"]


def test_extra_keys_for_vendors_and_failed_recordings_are_stored(store: CdrStore) -> None:
    """route, vendor, overflow_reason, hold, node and recording_error land in their columns."""
    store.add({**RECORD, "route": "vendor", "vendor": "acme", "overflow_reason": "wait_exceeds",
               "outcome": "answered_vendor", "hold": 12.25, "node": "ccs-2",
               "recording_path": "/elsewhere.wav", "recording_error": "disk full"})
    [row] = store.rows()
    assert (row.route, row.vendor, row.overflow_reason, row.outcome) == (
        "vendor", "acme", "wait_exceeds", "answered_vendor")
    assert (row.hold_ms, row.node) == (12250, "ccs-2")
    assert (row.recording_path, row.recording_error) == ("/elsewhere.wav", "disk full")


def test_holds_and_their_total_are_stored(store: CdrStore) -> None:
    """The record's holds land in the holds JSON column and their total in hold_ms."""
    holds = [{"party": "agent", "who": "alice", "start": 1795419747.0,
              "start_iso": "2026-11-23T08:22:27.000Z", "end": 1795419749.5,
              "end_iso": "2026-11-23T08:22:29.500Z"}]
    store.add({**RECORD, "hold": 2.5, "holds": holds})
    [row] = store.rows()
    assert row.hold_ms == 2500 and [dict(h) for h in row.holds] == holds


def test_a_database_at_revision_0005_gains_holds_keeping_its_rows(
        cdr_target: Target) -> None:
    """A database at 0005 (before holds) is migrated on open: its call has no holds."""
    engine = _engine(cdr_target)
    with engine.begin() as connection:
        config = AlembicConfig()
        config.set_main_option("script_location", str(store_module.MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        connection.execute(sqlalchemy.text(
            "INSERT INTO calls (call_id, caller, dialed, queue, grp, route, outcome, "
            "arrived_ms, ended_ms, total_ms, short_abandon, qa_notice_played, offers_json) "
            "VALUES ('old', '1', '100', 'support', 'g', 'inhouse', 'answered_inhouse', "
            "1, 2, 1, false, false, '[]')"))
    engine.dispose()
    store = CdrStore(cdr_target)
    try:
        assert store.revision == HEAD == "0007"
        [row] = store.rows()
        assert (row.call_id, row.holds, row.hold_ms) == ("old", (), None)
    finally:
        store.close()


def test_holds_that_are_not_a_list_of_objects_are_refused(store: CdrStore) -> None:
    """A record whose holds is not a list of objects is refused and writes nothing."""
    with pytest.raises(CdrError):
        store.add({**RECORD, "holds": "on hold"})
    assert store.count() == 0


def test_a_named_vendor_without_a_route_means_the_vendor_route(store: CdrStore) -> None:
    """route defaults to 'vendor' when a vendor is named (else 'inhouse')."""
    store.add({**RECORD, "vendor": "acme"})
    assert next(store.rows()).route == "vendor"


def test_a_new_sqlite_database_is_in_wal_mode_at_the_head_revision(tmp_path: Path) -> None:
    """WAL lets reports read while the service writes; Alembic's revision is the schema."""
    store = CdrStore(tmp_path / "cdr.sqlite")
    store.add(RECORD)
    other = sqlite3.connect(tmp_path / "cdr.sqlite")
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        other.close()
    assert store.revision == HEAD and store.dialect == "sqlite"


def test_a_postgresql_url_opens_a_postgresql_store(cdr_target: Target) -> None:
    """A URL target is PostgreSQL, a path SQLite; both start at the head revision."""
    store = CdrStore(cdr_target)
    assert store.dialect == ("sqlite" if isinstance(cdr_target, Path) else "postgresql")
    assert store.revision == HEAD
    store.close()


def test_the_migrated_database_matches_the_schema_module(store: CdrStore,
                                                         cdr_target: Target) -> None:
    """Alembic's revisions build exactly the tables of schema.py: nothing is missing."""
    engine = _engine(cdr_target)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert differences == []


def test_the_indexes_for_time_queue_and_caller_exist(store: CdrStore, cdr_target: Target) -> None:
    """rows() by time, by queue and time, and repeat-caller lookups are indexed."""
    engine = _engine(cdr_target)
    indexes = sqlalchemy.inspect(engine).get_indexes("calls")
    engine.dispose()
    assert {("arrived_ms",), ("queue", "arrived_ms"), ("caller",)} <= {
        tuple(index["column_names"]) for index in indexes}


def test_adding_the_same_call_twice_keeps_one_row(store: CdrStore) -> None:
    """A replayed record replaces the earlier copy: no duplicates."""
    store.add(RECORD)
    store.add(RECORD)
    store.add({**RECORD, "agent_id": "bob"})
    assert store.count() == 1
    assert next(store.rows()).agent_id == "bob"


@pytest.mark.parametrize("broken, reason", [
    ({"call_id": None}, "call_id"),
    ({"call_id": ""}, "call_id"),
    ({"arrived_at": "yesterday"}, "arrived_at"),
    ({"arrived_at": -1.0}, "arrived_at"),
    ({"answered_at": math.nan}, "answered_at"),
    ({"wait": math.inf}, "wait"),
    ({"ended_at": None}, "ended_at"),
    ({"ended_at": 1795419700.0}, "before"),
    ({"total": True}, "total"),
    ({"offers": "none"}, "offers"),
    ({"offers": [{"when": object()}]}, "offers"),
    ({"caller": 42}, "caller"),
    ({"caller": "a\x00b"}, "caller"),  # PostgreSQL text cannot hold NUL
    ({"queue": ""}, "queue"),
    ({"outcome": None}, "outcome"),
    ({"outcome": "Answered!"}, "outcome"),
    ({"short_abandon": "no"}, "short_abandon"),
    ({"vendor": ""}, "vendor"),
])
def test_invalid_records_are_refused_and_write_nothing(
        store: CdrStore, broken: dict[str, Any], reason: str) -> None:
    """A bad record raises CdrError naming the problem; no row is written."""
    with pytest.raises(CdrError, match=reason):
        store.add({**RECORD, **broken})
    assert store.count() == 0


def test_a_bad_replay_leaves_the_stored_copy_untouched(store: CdrStore) -> None:
    """An invalid record for a stored call id neither replaces nor damages the row."""
    store.add(RECORD)
    with pytest.raises(CdrError):
        store.add({**RECORD, "agent_id": "bob", "talk": -3})
    [row] = store.rows()
    assert row.agent_id == "alice" and row.talk_ms == 3507


def test_a_record_that_is_not_a_mapping_is_refused(store: CdrStore) -> None:
    """Passing something other than a dict is a CdrError, not an AttributeError."""
    with pytest.raises(CdrError, match="mapping"):
        store.add([("call_id", "x")])  # type: ignore[arg-type]


def test_cdr_error_is_part_of_the_ccswitch_error_tree() -> None:
    """Operators see CDR problems as CCSwitchErrors with a stable id."""
    assert issubclass(CdrError, CCSwitchError) and CdrError.error_id == "cdr.error"


def test_a_v1_database_is_migrated_forward_keeping_its_rows(tmp_path: Path) -> None:
    """A database made by the first schema gets the later steps and Alembic's baseline."""
    path = tmp_path / "cdr.sqlite"
    _legacy_file(path, 1)
    store = CdrStore(path)
    assert store.revision == HEAD
    [row] = store.rows()
    assert (row.call_id, row.short_abandon, row.short_abandon_threshold_ms) == (
        "old-call", True, None)
    store.add(RECORD)
    assert store.count() == 2
    assert next(store.rows(since_ms=1795419742482)).short_abandon_threshold_ms == 5000


def test_a_v4_database_is_stamped_without_being_rebuilt(tmp_path: Path) -> None:
    """The last pre-Alembic schema keeps its rows and calls table: stamped, then migrated on."""
    path = tmp_path / "cdr.sqlite"
    _legacy_file(path, LEGACY_VERSION)
    store = CdrStore(path)
    assert store.revision == HEAD
    assert [(r.call_id, r.outcome) for r in store.rows()] == [("old-call", "short_abandon")]
    store.add({**RECORD, "recording_started_at": 1795419747.0})
    assert store.get(RECORD["call_id"]).recording_started_ms == 1795419747000  # type: ignore[union-attr]
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == LEGACY_VERSION


# Databases written by the released stores themselves (the first CDR store, commit
# 05a0f41, schema 1; the last pre-Alembic one, schema 4) from RECORD and variants, each
# with its own `export-cdr` output of the time beside it.
DATA = Path(__file__).resolve().parents[1] / "data" / "cdr"


def _exported(store: CdrStore) -> list[dict[str, Any]]:
    out = io.StringIO()
    store.export_jsonl(out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_database_written_by_the_v4_release_keeps_every_row_exactly(tmp_path: Path) -> None:
    """v4-release.sqlite (made by the last pre-Alembic store): the export is unchanged but
    for the holds list revision 0007 added, empty for those calls."""
    path = tmp_path / "cdr.sqlite"
    shutil.copyfile(DATA / "v4-release.sqlite", path)
    store = CdrStore(path)
    expected = [json.loads(line) for line in (DATA / "v4-release.jsonl").read_text().splitlines()]
    assert store.revision == HEAD
    assert _exported(store) == [{**row, "holds": []} for row in expected]
    assert len(expected) == 3
    store.close()


def test_a_database_written_by_the_v1_release_gains_the_new_columns_and_outcomes(
        tmp_path: Path) -> None:
    """v1-release.sqlite (made by the first CDR store): rows kept, outcomes mapped."""
    path = tmp_path / "cdr.sqlite"
    shutil.copyfile(DATA / "v1-release.sqlite", path)
    store = CdrStore(path)
    before = [json.loads(line) for line in (DATA / "v1-release.jsonl").read_text().splitlines()]
    new_columns = {"short_abandon_threshold_ms": None, "overflowed_ms": None,
                   "recording_started_ms": None, "holds": []}
    mapped = {"answered": "answered_inhouse", "abandoned": "abandoned_ringing"}
    assert _exported(store) == [{**row, **new_columns, "outcome": mapped[row["outcome"]]}
                                for row in before]
    store.close()


def test_v3_migration_maps_old_outcomes_to_the_outcome_list(tmp_path: Path) -> None:
    """answered/abandoned rows from before vendors get the outcome list's values."""
    path = tmp_path / "cdr.sqlite"
    old = sqlite3.connect(path)
    old.executescript(V1_SCHEMA)
    cancelled = '[{"agent_id": "alice", "result": "cancelled"}]'
    for call_id, outcome, short, route, offers in (
            ("a-in", "answered", 0, "inhouse", "[]"), ("a-v", "answered", 0, "vendor", "[]"),
            ("ab-q", "abandoned", 0, "inhouse", "[]"),
            ("ab-r", "abandoned", 0, "inhouse", cancelled)):
        old.execute("INSERT INTO calls (call_id, caller, dialed, queue, grp, route, outcome, "
                    "arrived_ms, ended_ms, total_ms, short_abandon, qa_notice_played, "
                    "offers_json) VALUES (?, '1', '100', 'support', 'g', ?, ?, 1, 2, 1, ?, 1, ?)",
                    (call_id, route, outcome, short, offers))
    old.commit()
    old.close()
    outcomes = {row.call_id: row.outcome for row in CdrStore(path).rows()}
    assert outcomes == {"old-call": "short_abandon", "a-in": "answered_inhouse",
                        "a-v": "answered_vendor", "ab-q": "abandoned_queue",
                        "ab-r": "abandoned_ringing"}


def test_vendor_fields_are_stored(store: CdrStore) -> None:
    """route, vendor, overflow reason and the overflow time (ms) are kept."""
    store.add({**RECORD, "outcome": "answered_vendor", "route": "vendor", "vendor": "acme",
               "agent_id": None, "overflow_reason": "wait_exceeds",
               "overflowed_at": 1795419746.5})
    [row] = store.rows()
    assert (row.route, row.vendor, row.overflow_reason, row.overflowed_ms) == (
        "vendor", "acme", "wait_exceeds", 1795419746500)


def test_reopening_a_migrated_database_changes_nothing(cdr_target: Target) -> None:
    """Reopening runs no migration again (no 'table exists' error) and keeps the rows."""
    CdrStore(cdr_target).add(RECORD)
    again = CdrStore(cdr_target)
    assert again.revision == HEAD and again.count() == 1
    again.close()


def test_a_sqlite_file_from_a_newer_ccswitch_is_refused_untouched(tmp_path: Path) -> None:
    """A user_version above the last pre-Alembic one is not guessed at; the file is kept."""
    path = tmp_path / "cdr.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {LEGACY_VERSION + 1}")
    db.close()
    with pytest.raises(CdrError, match=f"schema version {LEGACY_VERSION + 1}, newer"):
        CdrStore(path)
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        db.close()


def test_a_database_at_an_unknown_revision_is_refused(cdr_target: Target) -> None:
    """A revision this ccswitch does not ship comes from a newer one: a clear error."""
    CdrStore(cdr_target).close()
    engine = _engine(cdr_target)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = 'f00d'"))
    engine.dispose()
    with pytest.raises(CdrError, match="revision f00d, newer"):
        CdrStore(cdr_target)


def test_a_file_that_is_not_a_database_is_a_cdr_error(tmp_path: Path) -> None:
    """Garbage at the database path fails with CdrError, not sqlite's own exception."""
    path = tmp_path / "cdr.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CdrError, match="cannot open"):
        CdrStore(path)


def test_an_unopenable_path_is_a_cdr_error(tmp_path: Path) -> None:
    """A database path that is a directory fails with CdrError."""
    (tmp_path / "db").mkdir()
    with pytest.raises(CdrError, match="cannot open"):
        CdrStore(tmp_path / "db")


def test_rows_filter_by_arrival_time_and_queue(store: CdrStore) -> None:
    """rows() keeps arrivals in [since, until) and one queue when asked, oldest first."""
    for n, queue in enumerate(["support", "sales", "support"]):
        store.add({**RECORD, "call_id": f"c{n}", "queue": queue,
                   "arrived_at": 1000.0 + n, "ended_at": 1010.0 + n})
    assert [r.call_id for r in store.rows(since_ms=1_001_000)] == ["c1", "c2"]
    assert [r.call_id for r in store.rows(until_ms=1_001_000)] == ["c0"]
    assert [r.call_id for r in store.rows(since_ms=1_000_500, until_ms=1_002_000)] == ["c1"]
    assert [r.call_id for r in store.rows(queue="support")] == ["c0", "c2"]
    assert [r.call_id for r in store.rows(queue="support", since_ms=1_001_000)] == ["c2"]


def test_rows_pages_through_more_calls_than_one_query_fetches(
        store: CdrStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paging by (arrival, call id) returns every call once, even with equal arrival times."""
    monkeypatch.setattr(store_module, "_PAGE", 3)
    for n in range(10):
        store.add({**RECORD, "call_id": f"c{n:02d}", "arrived_at": 1000.0 + n // 4,
                   "ended_at": 1100.0})
    assert [r.call_id for r in store.rows()] == [f"c{n:02d}" for n in range(10)]


def test_rows_refuses_a_time_that_is_not_integer_ms(store: CdrStore) -> None:
    """since_ms/until_ms are epoch ms ints; seconds as a float are a mistake caught early."""
    with pytest.raises(CdrError, match="since_ms"):
        list(store.rows(since_ms=1000.5))  # type: ignore[arg-type]


def test_export_jsonl_writes_one_parseable_object_per_call(store: CdrStore) -> None:
    """The JSON-lines export has every call in range, with the row's fields."""
    store.add(RECORD)
    store.add({**RECORD, "call_id": "later", "arrived_at": 1795419800.0,
               "ended_at": 1795419900.0})
    out = io.StringIO()
    assert store.export_jsonl(out) == 2
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["call_id"] for line in lines] == [RECORD["call_id"], "later"]
    assert lines[0]["talk_ms"] == 3507 and lines[0]["offers"][0]["result"] == "answered"
    assert lines[0]["group"] == "inhouse" and lines[0]["recording_error"] is None
    one = io.StringIO()
    assert store.export_jsonl(one, since_ms=1795419800000) == 1
    assert json.loads(one.getvalue())["call_id"] == "later"


def test_records_survive_reopening(cdr_target: Target) -> None:
    """What one process wrote, the next one (a restart, or the report) reads."""
    first = CdrStore(cdr_target)
    first.add(RECORD)
    first.close()
    first.close()  # closing twice is harmless
    assert CdrStore(cdr_target).count() == 1


def test_writes_from_several_threads_all_land(store: CdrStore) -> None:
    """One store serves several threads: concurrent adds neither fail nor get lost."""
    errors: list[BaseException] = []

    def writer(prefix: str) -> None:
        try:
            for n in range(50):
                store.add({**RECORD, "call_id": f"{prefix}-{n}"})
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors and store.count() == 200


def test_a_closed_store_refuses_writes_with_a_cdr_error(store: CdrStore) -> None:
    """Writing after close is a CdrError (logged and counted by the caller), not a crash."""
    store.close()
    with pytest.raises(CdrError, match="cannot store"):
        store.add(RECORD)


def test_json_lines_sink_appends(tmp_path: Path) -> None:
    """The optional JSON-lines copy appends one line per record across reopenings."""
    path = tmp_path / "cdr.jsonl"
    for call_id in ("a", "b"):
        sink = JsonLinesSink(path)
        sink.add({**RECORD, "call_id": call_id})
        sink.close()
    assert [json.loads(x)["call_id"] for x in path.read_text().splitlines()] == ["a", "b"]


def test_json_lines_sink_refuses_a_record_that_is_not_json(tmp_path: Path) -> None:
    """A record JSON cannot hold raises CdrError and appends nothing."""
    sink = JsonLinesSink(tmp_path / "cdr.jsonl")
    with pytest.raises(CdrError, match="not JSON"):
        sink.add({**RECORD, "bad": object()})
    sink.close()
    assert (tmp_path / "cdr.jsonl").read_text() == ""


def test_an_unreachable_postgresql_is_cdr_unavailable(tmp_path: Path) -> None:
    """No server on the port: CdrUnavailable (worth a retry), naming the URL, no password."""
    from tests.phones.client import free_tcp_port

    url = f"postgresql://ccswitch:secret@127.0.0.1:{free_tcp_port()}/cdr"
    with pytest.raises(CdrUnavailable, match=r"postgresql://ccswitch:\*\*\*@127") as caught:
        CdrStore(url)
    assert "secret" not in str(caught.value)


def test_a_url_that_is_not_postgresql_is_refused() -> None:
    """Another scheme is a CdrError at open, not an attempt with some other driver."""
    with pytest.raises(CdrError, match="unknown database scheme 'mysql'"):
        CdrStore("mysql://root@127.0.0.1/cdr")



def test_nodes_opening_a_new_database_together_migrate_it_once(cdr_target: Target) -> None:
    """Four processes opening one empty database at once all open it; one migrates."""
    script = ("import sys; from pathlib import Path; from ccswitch.cdr.store import CdrStore; "
              "t = sys.argv[1]; CdrStore(Path(t) if '://' not in t else t).close()")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(cdr_target)],
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in procs]
    assert [code for code, _ in results] == [0] * 4, results
    assert CdrStore(cdr_target).revision == HEAD


def test_threads_opening_a_new_database_together_all_open_it(cdr_target: Target) -> None:
    """In one process too (Alembic's context is process-wide): every open succeeds."""
    opened: list[CdrStore] = []
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait(timeout=10)
        try:
            opened.append(CdrStore(cdr_target))
        except BaseException as e:  # pragma: no cover - reported below
            failures.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == [] and len(opened) == 4
    for store in opened:
        store.close()
