"""Call records written while the CDR database is down are spooled and land when it is back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.logger import LogEvent, globalLogPublisher

from ccswitch.cdr.errors import CdrError
from ccswitch.cdr.spool import SpoolingWriter
from ccswitch.cdr.store import CdrStore, Target, describe
from ccswitch.metrics.registry import Metrics
from tests.cdr.test_store import RECORD
from tests.pgd import PostgresServer


def _writer(target: Target, spool: Path, metrics: Metrics) -> SpoolingWriter:
    return SpoolingWriter(open_store=lambda: CdrStore(target), name=describe(target),
                          spool=spool, metrics=metrics)


def _gauges(metrics: Metrics) -> tuple[float | None, float | None]:
    return (metrics.registry.get_sample_value("ccswitch_cdr_backend_up"),
            metrics.registry.get_sample_value("ccswitch_cdr_spooled_records"))


def _count(target: Target) -> int:
    store = CdrStore(target)
    try:
        return store.count()
    finally:
        store.close()


@pytest.fixture
def outage(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """The session's PostgreSQL, restarted at the end if the test left it stopped."""
    try:
        yield postgres_server
    finally:
        try:
            postgres_server.start()
        except Exception:
            pass  # still running


@pytest.fixture
def errors() -> Iterator[list[LogEvent]]:
    """Error-level log events emitted during the test."""
    seen: list[LogEvent] = []

    def observe(event: LogEvent) -> None:
        if event.get("log_level") is not None and event["log_level"].name in ("error",
                                                                            "critical"):
            seen.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        yield seen
    finally:
        globalLogPublisher.removeObserver(observe)


def test_records_spooled_during_an_outage_land_once_it_is_back(
        outage: PostgresServer, tmp_path: Path) -> None:
    """Server stopped: records go to the spool; started again: replayed, one row per call."""
    url = outage.new_database()
    metrics = Metrics()
    writer = _writer(url, tmp_path / "cdr-spool.jsonl", metrics)
    writer.add({**RECORD, "call_id": "before"})
    outage.stop()
    for call_id in ("a", "b", "c"):
        writer.add({**RECORD, "call_id": call_id})
    assert _gauges(metrics) == (0, 3)
    assert len((tmp_path / "cdr-spool.jsonl").read_text().splitlines()) == 3
    assert writer.replay() == 0  # still down: nothing lost, nothing written
    outage.start()
    assert writer.replay() == 3
    assert _gauges(metrics) == (1, 0) and not (tmp_path / "cdr-spool.jsonl").exists()
    writer.add({**RECORD, "call_id": "a"})  # a replay of one of them: still one row
    assert _count(url) == 4
    writer.close()


def test_an_outage_is_logged_once_not_per_record(
        outage: PostgresServer, tmp_path: Path, errors: list[LogEvent]) -> None:
    """Ten records during one outage make one error line, and one more after recovery none."""
    url = outage.new_database()
    writer = _writer(url, tmp_path / "spool.jsonl", Metrics())
    outage.stop()
    for n in range(10):
        writer.add({**RECORD, "call_id": f"c{n}"})
    writer.replay()
    assert len(errors) == 1 and "unreachable" in errors[0]["log_format"]
    writer.close()


def test_a_node_started_during_an_outage_spools_and_catches_up(
        outage: PostgresServer, tmp_path: Path) -> None:
    """The database down at start does not stop the writer: it spools, then writes."""
    url = outage.new_database()
    outage.stop()
    metrics = Metrics()
    writer = _writer(url, tmp_path / "spool.jsonl", metrics)
    assert _gauges(metrics) == (0, 0)
    writer.add(RECORD)
    outage.start()
    assert writer.replay() == 1 and _count(url) == 1
    writer.close()


def test_a_later_copy_of_a_call_spooled_after_an_earlier_one_wins(
        outage: PostgresServer, tmp_path: Path) -> None:
    """While records wait, new ones queue behind them even if the database is back."""
    url = outage.new_database()
    writer = _writer(url, tmp_path / "spool.jsonl", Metrics())
    outage.stop()
    writer.add({**RECORD, "agent_id": "alice"})
    outage.start()
    writer.add({**RECORD, "agent_id": "bob"})  # spooled too: the first must land first
    assert writer.replay() == 2
    store = CdrStore(url)
    assert store.get(RECORD["call_id"]).agent_id == "bob"  # type: ignore[union-attr]
    store.close()
    writer.close()


def test_an_invalid_record_is_refused_not_spooled(outage: PostgresServer,
                                                  tmp_path: Path) -> None:
    """Even during an outage a bad record fails at once (logged by the caller)."""
    writer = _writer(outage.new_database(), tmp_path / "spool.jsonl", Metrics())
    outage.stop()
    with pytest.raises(CdrError, match="ended_at"):
        writer.add({**RECORD, "ended_at": None})
    assert not (tmp_path / "spool.jsonl").exists()
    writer.close()


def test_a_spool_left_by_a_previous_run_is_replayed(cdr_target: Target,
                                                    tmp_path: Path) -> None:
    """Records spooled before a restart are counted at start and written on replay; a
    torn line is dropped without blocking the ones after it."""
    spool = tmp_path / "left-over.jsonl"
    lines = [json.dumps({**RECORD, "call_id": "x"}), '{"call_id": "torn',
             json.dumps({**RECORD, "call_id": "y"})]
    spool.write_text("".join(f"{line}\n" for line in lines))
    metrics = Metrics()
    writer = _writer(cdr_target, spool, metrics)
    assert _gauges(metrics) == (1, 3)
    writer.add({**RECORD, "call_id": "z"})  # behind the spooled ones
    assert writer.replay() == 3
    assert _gauges(metrics) == (1, 0) and _count(cdr_target) == 3
    writer.close()


def test_a_spool_that_cannot_be_written_is_a_cdr_error(outage: PostgresServer,
                                                      tmp_path: Path) -> None:
    """No spool possible (a directory in the way): CdrError, so the caller logs the record."""
    (tmp_path / "spool.jsonl").mkdir()
    writer = _writer(outage.new_database(), tmp_path / "spool.jsonl", Metrics())
    outage.stop()
    record: dict[str, Any] = dict(RECORD)
    with pytest.raises(CdrError, match="cannot spool"):
        writer.add(record)
    writer.close()


def test_an_outage_and_its_end_show_even_without_calls(outage: PostgresServer,
                                                       tmp_path: Path) -> None:
    """The periodic replay checks the database: the gauge follows it with no record."""
    metrics = Metrics()
    writer = _writer(outage.new_database(), tmp_path / "spool.jsonl", metrics)
    outage.stop()
    assert writer.replay() == 0 and _gauges(metrics) == (0, 0)
    outage.start()
    assert writer.replay() == 0 and _gauges(metrics) == (1, 0)
    writer.close()


def test_a_database_that_answers_but_cannot_be_used_stops_the_start(tmp_path: Path) -> None:
    """Not an outage (a file that is no database): CdrError at once, nothing spooled."""
    path = tmp_path / "cdr.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CdrError, match="cannot open"):
        _writer(path, tmp_path / "spool.jsonl", Metrics())
    assert not (tmp_path / "spool.jsonl").exists()
