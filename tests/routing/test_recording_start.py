"""The engine decides when a call's recording starts (recordings.start), once per call."""

from __future__ import annotations

from ccswitch.model import RecordingStart
from ccswitch.routing import actions as act
from tests.routing.driver import ANNOUNCEMENT, Driver, make_dialplan


def starts(actions: list[act.Action]) -> list[str]:
    return [a.call_id for a in actions if isinstance(a, act.StartRecording)]


def test_after_notice_starts_once_the_announcement_was_heard() -> None:
    """By default nothing is recorded on arrival; the recording starts as the call queues."""
    d = Driver(make_dialplan())
    assert starts(d.arrive("c1")) == []
    assert starts(d.announce("c1")) == ["c1"]


def test_answer_starts_right_after_the_answer() -> None:
    """With recordings.start answer, StartRecording follows AnswerCaller, before the notice."""
    d = Driver(make_dialplan(), recording_start=RecordingStart.ANSWER)
    assert d.arrive("c1") == [act.AnswerCaller(call_id="c1"), act.StartRecording(call_id="c1"),
                              act.PlayAnnouncement(call_id="c1", path=ANNOUNCEMENT)]
    assert starts(d.announce("c1")) == []


def test_caller_leaving_during_the_notice_is_never_recorded() -> None:
    """After_notice: a caller who hangs up during the announcement gets no recording."""
    d = Driver(make_dialplan())
    d.arrive("c1")
    d.advance(2)
    d.caller_hangup("c1")
    assert starts(d.log) == []


def test_recording_starts_once_per_call() -> None:
    """A whole answered call has exactly one StartRecording."""
    d = Driver(make_dialplan())
    d.queued("c1")
    d.answer("c1", "alice")
    d.agent_hangup("c1", "alice")
    assert starts(d.log) == ["c1"]
