"""The call note: one JSON line per fact, from the 200 OK until the record is stored."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
from twisted.logger import LogLevel, capturedLogs

from ccswitch.recording.note import CallNote, accepted, fact_for, read_note
from ccswitch.routing import actions as act
from ccswitch.routing.record import CallRecord
from ccswitch.routing.target import Target

ARRIVED = 1_700_000_000.0


def record() -> CallRecord:
    return CallRecord(call_id="c/1", caller="+3312", dialed="100", queue="sales",
                      group="inhouse", arrived_at=ARRIVED, short_abandon_threshold=5.0)


def open_note(directory: Path) -> CallNote:
    note = CallNote.open(directory, "c/1", ARRIVED, accepted(record(), "sip-1"))
    assert note is not None
    return note


def test_the_note_is_in_incomplete_under_a_safe_name(tmp_path: Path) -> None:
    """The note of call ``c/1`` is ``.incomplete/<safe id>.call``, first line ``accepted``."""
    note = open_note(tmp_path)
    assert note.path.parent == tmp_path / ".incomplete"
    assert note.path.suffix == ".call" and "/" not in note.path.stem
    [line] = note.path.read_text().splitlines()
    assert json.loads(line)["fact"] == "accepted"


def test_each_fact_is_one_appended_line(tmp_path: Path) -> None:
    """Every add appends exactly one JSON line, in order."""
    note = open_note(tmp_path)
    note.add("recording", ARRIVED + 4, wav="x.wav")
    note.add("paused", ARRIVED + 5)
    facts = [json.loads(line)["fact"] for line in note.path.read_text().splitlines()]
    assert facts == ["accepted", "recording", "paused"]


def test_a_second_note_of_the_same_call_id_gets_its_own_file(tmp_path: Path) -> None:
    """Names are taken exclusively: a leftover note is never appended to."""
    assert open_note(tmp_path).path != open_note(tmp_path).path


def test_discard_removes_the_note(tmp_path: Path) -> None:
    """Once the record is stored the note is gone."""
    note = open_note(tmp_path)
    note.discard()
    assert list((tmp_path / ".incomplete").iterdir()) == []


def test_a_refused_note_is_logged_and_the_call_goes_on(tmp_path: Path) -> None:
    """No note can be made (recordings directory is a file): None, one error log line."""
    blocked = tmp_path / "recordings"
    blocked.write_text("not a directory")
    with capturedLogs() as events:
        assert CallNote.open(blocked, "c/1", ARRIVED, accepted(record(), "sip-1")) is None
    assert [(e["log_level"], e["call_id"]) for e in events] == [(LogLevel.error, "c/1")]


def test_read_note_merges_the_latest_progress(tmp_path: Path) -> None:
    """A later fact's record fields override an earlier one's; accepted fields stay."""
    note = open_note(tmp_path)
    live = attrs.evolve(record(), queued_at=ARRIVED + 4)
    for action in (act.StartMusicOnHold(call_id="c/1", path=None),
                   act.Ring(call_id="c/1", target=Target.agent("bob"), uri="sip:bob@h")):
        fact = fact_for(action, live)
        assert fact is not None
        note.add(fact[0], ARRIVED + 5, **fact[1])
    facts = read_note(note.path)
    assert (facts.call_id, facts.record["caller"], facts.record["queued_at"]) == (
        "c/1", "+3312", ARRIVED + 4)
    assert [(o.agent_id, o.at) for o in facts.offers] == [("bob", ARRIVED + 5)]


def test_actions_that_change_nothing_worth_keeping_add_no_fact() -> None:
    """Cancelling, hanging up and stopping music are not facts."""
    for action in (act.Cancel(call_id="c/1", target=Target.agent("bob")),
                   act.HangupCaller(call_id="c/1"), act.StopMusicOnHold(call_id="c/1")):
        assert fact_for(action, record()) is None
