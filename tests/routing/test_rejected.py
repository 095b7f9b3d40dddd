"""CallRejected: a call refused before it was set up gets its record from the engine at once."""

from __future__ import annotations

import pytest

from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing.record import Outcome
from ccswitch.routing.runtime import UnknownQueue
from tests.routing.driver import GROUP, QUEUE, T0, Driver, make_dialplan


def rejected(call_id: str = "r1", queue: str = QUEUE) -> ev.CallRejected:
    return ev.CallRejected(call_id=call_id, caller="5551234", dialed="100", queue=queue,
                           reason="Service Unavailable (call limit)")


def test_rejected_call_finishes_at_once_with_outcome_rejected() -> None:
    """The engine answers CallRejected with the call's record: rejected, arrived and ended now."""
    d = Driver(make_dialplan())
    d.feed(rejected())
    [record] = d.records
    assert (record.call_id, record.outcome, record.queue, record.group) == (
        "r1", Outcome.REJECTED, QUEUE, GROUP)
    assert record.arrived_at == record.ended_at == T0 and record.queued_at is None


def test_rejected_call_is_never_live() -> None:
    """A rejected call rings nobody and is not among the calls in progress."""
    d = Driver(make_dialplan())
    actions = d.feed(rejected())
    assert [type(a) for a in actions] == [act.CallFinished]
    assert "r1" not in d.engine.view.calls


def test_rejected_call_for_an_unknown_queue_raises() -> None:
    """A queue the dialplan does not know is refused and nothing is recorded."""
    d = Driver(make_dialplan())
    with pytest.raises(UnknownQueue):
        d.feed(rejected(queue="nope"))
    assert d.records == []


def test_rejection_reason_goes_to_the_log() -> None:
    """Why the call was refused is in the engine's note for the log."""
    d = Driver(make_dialplan())
    d.feed(rejected())
    assert ("reason", "Service Unavailable (call limit)") in d.notes[-1].fields
