"""The SQLite call-detail-record store."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ccswitch.cdr.store import SCHEMA_VERSION, CdrError, CdrStore, JsonLinesSink

# A real record as the B2BUA hands it over (CallRecord.to_dict() + extras).
RECORD: dict[str, Any] = {
    "agent_id": "alice", "announced_at": 1795419746.442, "answered_at": 1795419746.955,
    "arrived_at": 1795419742.482, "call_id": "1a2075b2110-7f30a3da", "caller": "5551234",
    "dialed": "100", "ended_at": 1795419750.462, "group": "inhouse",
    "offers": [{"agent_id": "alice", "ended_at": 1795419746.955,
                "offered_at": 1795419746.442, "result": "answered", "ring": 0.513}],
    "outcome": "answered", "qa_notice_played": True, "queue": "support",
    "queued_at": 1795419746.442, "ring": 0.513, "short_abandon": False,
    "short_abandon_threshold": 5.0, "sip_call_id": "iOAERuLwbcDSl1ne3HtQZPnotQb-1F7x",
    "talk": 3.507, "total": 7.981, "wait": 0.513,
    "recording_path": "/rec/2026/11/23/1a2075b2110-7f30a3da.wav",
}


@pytest.fixture
def store(tmp_path: Path) -> CdrStore:
    return CdrStore(tmp_path / "cdr.sqlite")


def test_a_record_round_trips_with_millisecond_times(store: CdrStore) -> None:
    """Every timestamp and duration is stored in ms; text fields and offers come back."""
    store.add(RECORD)
    [row] = store.rows()
    assert row.arrived_ms == 1795419742482 and row.ended_ms == 1795419750462
    assert row.answered_ms == 1795419746955 and row.queued_ms == 1795419746442
    assert (row.wait_ms, row.ring_ms, row.talk_ms, row.total_ms) == (513, 513, 3507, 7981)
    assert row.hold_ms is None
    assert row.group == "inhouse" and row.route == "inhouse" and row.vendor is None
    assert row.qa_notice_played is True and row.short_abandon is False
    assert row.recording_path == RECORD["recording_path"]
    assert row.offers[0]["result"] == "answered"


def test_the_database_is_in_wal_mode_at_the_current_schema(store: CdrStore) -> None:
    """WAL lets reports read while the service writes; user_version is the schema."""
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store.schema_version == SCHEMA_VERSION


def test_adding_the_same_call_twice_keeps_one_row(store: CdrStore) -> None:
    """A replayed record replaces the earlier copy: no duplicates."""
    store.add(RECORD)
    store.add({**RECORD, "agent_id": "bob"})
    assert store.count() == 1
    assert next(store.rows()).agent_id == "bob"


@pytest.mark.parametrize("broken, reason", [
    ({"call_id": None}, "call_id"),
    ({"arrived_at": "yesterday"}, "arrived_at"),
    ({"ended_at": None}, "ended_at"),
    ({"offers": "none"}, "offers"),
    ({"caller": 42}, "caller"),
])
def test_invalid_records_are_refused_and_write_nothing(
        store: CdrStore, broken: dict[str, Any], reason: str) -> None:
    """A bad record raises CdrError naming the field; the table stays empty."""
    with pytest.raises(CdrError, match=reason):
        store.add({**RECORD, **broken})
    assert store.count() == 0


def test_rows_filter_by_arrival_time_and_queue(store: CdrStore) -> None:
    """rows() keeps arrivals in [since, until) and one queue when asked, oldest first."""
    for n, queue in enumerate(["support", "sales", "support"]):
        store.add({**RECORD, "call_id": f"c{n}", "queue": queue,
                   "arrived_at": 1000.0 + n, "ended_at": 1010.0 + n})
    assert [r.call_id for r in store.rows(since_ms=1_001_000)] == ["c1", "c2"]
    assert [r.call_id for r in store.rows(until_ms=1_001_000)] == ["c0"]
    assert [r.call_id for r in store.rows(queue="support")] == ["c0", "c2"]


def test_export_jsonl_writes_one_parseable_object_per_call(store: CdrStore) -> None:
    """The JSON-lines export has every call, with the same fields as the rows."""
    store.add(RECORD)
    store.add({**RECORD, "call_id": "other"})
    out = io.StringIO()
    assert store.export_jsonl(out) == 2
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {line["call_id"] for line in lines} == {RECORD["call_id"], "other"}
    assert lines[0]["talk_ms"] == 3507


def test_records_survive_reopening(tmp_path: Path) -> None:
    """What one process wrote, the next one (a restart, or the report) reads."""
    first = CdrStore(tmp_path / "cdr.sqlite")
    first.add(RECORD)
    first.close()
    assert CdrStore(tmp_path / "cdr.sqlite").count() == 1


def test_a_database_from_a_newer_ccswitch_is_refused(tmp_path: Path) -> None:
    """A schema version above ours is not guessed at: a clear error instead."""
    path = tmp_path / "cdr.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(CdrError, match="newer"):
        CdrStore(path)


def test_an_unopenable_path_is_a_cdr_error(tmp_path: Path) -> None:
    """A database path that is a directory fails with CdrError, not sqlite's own error."""
    (tmp_path / "db").mkdir()
    with pytest.raises(CdrError, match="cannot open"):
        CdrStore(tmp_path / "db")


def test_json_lines_sink_appends(tmp_path: Path) -> None:
    """The optional JSON-lines copy appends one line per record across reopenings."""
    path = tmp_path / "cdr.jsonl"
    for call_id in ("a", "b"):
        sink = JsonLinesSink(path)
        sink.add({**RECORD, "call_id": call_id})
        sink.close()
    assert [json.loads(x)["call_id"] for x in path.read_text().splitlines()] == ["a", "b"]
