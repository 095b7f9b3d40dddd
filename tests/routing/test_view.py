"""The engine's view: one frozen picture of agents, calls, queues and vendors."""

from __future__ import annotations

import attrs
import pytest

from ccswitch.routing.states import AgentState, CallState

from .driver import QUEUE, Driver, make_dialplan


def test_the_view_is_immutable() -> None:
    """Neither the view, its mappings nor the values in them can be changed."""
    view = Driver(make_dialplan()).engine.view
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        view.agents = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        view.agents["alice"] = view.agents["bob"]  # type: ignore[index]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        view.agents["alice"].state = AgentState.NOT_READY  # type: ignore[misc]


def test_the_view_is_cached_until_the_next_event() -> None:
    """Reading twice without a change gives the same object; an event gives a new one."""
    d = Driver(make_dialplan())
    first = d.engine.view
    assert d.engine.view is first
    d.arrive("c1")
    assert d.engine.view is not first


def test_the_view_reflects_changes_and_a_kept_view_does_not() -> None:
    """A new view shows the call ringing alice; one taken before still shows her ready."""
    d = Driver(make_dialplan())
    before = d.engine.view
    d.queued("c1")
    after = d.engine.view
    assert before.agents["alice"].state is AgentState.READY and before.calls == {}
    assert after.agents["alice"].state is AgentState.RESERVED
    assert after.agents["alice"].busy_with == "c1"
    assert after.calls["c1"].state is CallState.RINGING
    assert after.calls["c1"].ringing == ("alice",)
    assert after.queues[QUEUE].depth == 1


def test_a_call_record_in_the_view_is_a_copy() -> None:
    """The record in a view stays as it was when the engine goes on with the call."""
    d = Driver(make_dialplan())
    d.queued("c1")
    record = d.engine.view.calls["c1"].record
    d.answer("c1", "alice")
    assert record.answered_at is None and record.offers == ()
    assert d.engine.view.calls["c1"].record.answered_at == d.now
