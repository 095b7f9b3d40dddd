"""Agent selection strategies: pure choices over READY agents."""

from __future__ import annotations

import attrs
import pytest

from ccswitch.model import Strategy
from ccswitch.routing.strategies import STRATEGIES, AgentView, longest_idle, ring_all


def view(agent_id: str, idle_since: float, order: int, misses: int = 0) -> AgentView:
    return AgentView(id=agent_id, idle_since=idle_since, misses=misses, order=order)


def test_registry_covers_every_model_strategy() -> None:
    """Every model.Strategy has a selection function."""
    assert set(STRATEGIES) == set(Strategy)
    assert STRATEGIES[Strategy.LONGEST_IDLE] is longest_idle
    assert STRATEGIES[Strategy.RING_ALL] is ring_all


def test_longest_idle_picks_the_oldest_idle_since() -> None:
    """longest_idle offers the one agent idle the longest."""
    agents = [view("alice", 30.0, 0), view("bob", 10.0, 1), view("carol", 20.0, 2)]
    assert longest_idle(agents, frozenset()) == ["bob"]


def test_longest_idle_breaks_ties_by_group_order() -> None:
    """Equal idle times go to the agent listed first in the group."""
    agents = [view("carol", 5.0, 2), view("bob", 5.0, 1), view("alice", 9.0, 0)]
    assert longest_idle(agents, frozenset()) == ["bob"]


def test_longest_idle_prefers_agents_not_tried_on_this_call() -> None:
    """An agent already offered this call is skipped while others remain."""
    agents = [view("alice", 1.0, 0), view("bob", 50.0, 1)]
    assert longest_idle(agents, frozenset({"alice"})) == ["bob"]


def test_longest_idle_starts_over_when_everyone_was_tried() -> None:
    """When every READY agent was tried, the longest idle of all is picked again."""
    agents = [view("alice", 7.0, 0), view("bob", 3.0, 1)]
    assert longest_idle(agents, frozenset({"alice", "bob"})) == ["bob"]


def test_longest_idle_with_no_candidates_picks_nobody() -> None:
    """No READY agent: nobody is offered the call."""
    assert longest_idle([], frozenset({"alice"})) == []


def test_ring_all_offers_every_candidate_in_group_order() -> None:
    """ring_all rings every READY agent, in group order, tried or not."""
    agents = [view("carol", 1.0, 2), view("alice", 9.0, 0), view("bob", 5.0, 1)]
    assert ring_all(agents, frozenset({"bob"})) == ["alice", "bob", "carol"]


def test_ring_all_with_no_candidates_picks_nobody() -> None:
    """ring_all with nobody READY returns nothing."""
    assert ring_all([], frozenset()) == []


def test_agent_view_is_frozen_and_keyword_only() -> None:
    """AgentView is an immutable keyword-only value."""
    agent = view("alice", 1.0, 0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        agent.misses = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        AgentView("alice", 1.0, 0, 0)  # type: ignore[call-arg]
