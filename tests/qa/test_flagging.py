"""Flagging at call end: the node's flagger against a real database, time from task.Clock."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.logger import LogEvent, globalLogPublisher

from ccswitch.cdr.store import Target
from ccswitch.model import SamplingRules
from ccswitch.qa.flagging import SampleFlagger
from ccswitch.qa.store import QaStore
from tests.phones.client import free_tcp_port
from tests.qa.test_store import call

ALL = SamplingRules(seed="s", percent=100)


def _flagger(target: Target, rules: SamplingRules | None) -> SampleFlagger:
    clock = Clock()
    clock.advance(1_800_000_000)
    return SampleFlagger(open_store=lambda: QaStore(target), rules=rules, clock=clock)


def _logged() -> tuple[list[LogEvent], Any]:
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    return events, events.append


def test_a_finished_call_the_rules_pick_is_flagged(qa: QaStore, cdr_target: Target) -> None:
    """After the CDR row is written, the flagger marks the call sampled with its reason."""
    qa.add(call("c1"))
    _flagger(cdr_target, ALL)(call("c1"))
    sample = qa.sample("c1")
    assert sample is not None and (sample.sampled, sample.reason) == (True, "random")


def test_without_sampling_rules_nothing_is_flagged(qa: QaStore, cdr_target: Target) -> None:
    """A dialplan without qa.sampling flags no call."""
    qa.add(call("c1"))
    _flagger(cdr_target, None)(call("c1"))
    assert qa.sample("c1") is None


def test_reloaded_rules_apply_to_the_next_call(qa: QaStore, cdr_target: Target) -> None:
    """Replacing ``rules`` (a config reload) changes the decision for later calls."""
    flagger = _flagger(cdr_target, SamplingRules(seed="s"))
    qa.add(call("before"))
    flagger(call("before"))
    flagger.rules = ALL
    qa.add(call("after"))
    flagger(call("after"))
    assert [s.call_id for s in qa.samples()] == ["after"]


def test_a_record_not_yet_stored_is_logged_not_raised(qa: QaStore, cdr_target: Target) -> None:
    """A call whose row is still spooled is left unflagged, with a warning naming it."""
    events, observer = _logged()
    try:
        _flagger(cdr_target, ALL)(call("spooled"))
    finally:
        globalLogPublisher.removeObserver(observer)
    assert any(e.get("call_id") == "spooled" and "spooled" in e["log_format"] for e in events)
    assert qa.samples() == []


def test_an_unreachable_database_is_logged_not_raised() -> None:
    """No database: the flagger logs an error for the call and returns."""
    url = f"postgresql://ccswitch:secret@127.0.0.1:{free_tcp_port()}/cdr"
    events, observer = _logged()
    try:
        _flagger(url, ALL)(call("c1"))
    finally:
        globalLogPublisher.removeObserver(observer)
    errors = [e for e in events if e.get("call_id") == "c1" and "not sampled" in e["log_format"]]
    assert errors and "secret" not in str(errors[0].get("error"))
