"""The finished call record: a frozen value, with the parties bridged as segments."""

from __future__ import annotations

import attrs
import pytest

from ccswitch.model import Condition, OverflowRule
from ccswitch.routing.record import Segment
from ccswitch.routing.target import Target

from .driver import T0, Driver, make_dialplan, make_queue, make_vendor


def test_a_finished_record_is_frozen() -> None:
    """CallFinished hands over a record nobody can change, offers included."""
    d = Driver(make_dialplan())
    d.queued("c1")
    d.answer("c1", "alice")
    d.caller_hangup("c1")
    [record] = d.records
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        record.agent_id = "bob"  # type: ignore[misc]
    assert isinstance(record.offers, tuple)
    assert hash(record) == hash(attrs.evolve(record))


def test_an_answered_call_has_one_segment_with_its_agent() -> None:
    """The bridged stretch is one segment: the agent, from the answer to the hang-up."""
    d = Driver(make_dialplan())
    d.queued("c1")
    d.advance(2)
    d.answer("c1", "alice")
    d.advance(30)
    d.caller_hangup("c1")
    [record] = d.records
    assert record.segments == (Segment(target=Target.agent("alice"), answered_at=T0 + 2,
                                       ended_at=T0 + 32),)


def test_a_vendor_call_has_a_vendor_segment_and_an_unanswered_call_none() -> None:
    """A vendor that answers is the segment's target; a call nobody answered has none."""
    rule = OverflowRule(condition=Condition.NO_AGENTS_LOGGED_IN, vendors=("acme",))
    d = Driver(make_dialplan(logged_out=("alice", "bob"), vendors=[make_vendor("acme")],
                             queues=[make_queue(overflow=(rule,))]))
    d.queued("c1")
    d.vendor_answer("c1", "acme")
    d.vendor_hangup("c1", "acme")
    d.queued("c2")
    d.caller_hangup("c2")
    answered, abandoned = d.records
    assert [s.target for s in answered.segments] == [Target.vendor("acme")]
    assert abandoned.segments == ()


def test_the_cdr_dict_is_unchanged_by_segments() -> None:
    """to_dict() carries no segments: the CDR keeps its columns."""
    d = Driver(make_dialplan())
    d.queued("c1")
    d.answer("c1", "alice")
    d.caller_hangup("c1")
    assert "segments" not in d.records[0].to_dict()
