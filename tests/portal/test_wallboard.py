"""The wallboard's snapshot of an engine view (pure)."""

from __future__ import annotations

from typing import Any, Mapping

from ccswitch.portal.wallboard import Wallboard
from ccswitch.routing.states import AgentState, VendorHealth
from ccswitch.routing.view import AgentInfo, EngineView, QueueInfo, VendorInfo


def agent(name: str, state: AgentState, misses: int = 0) -> AgentInfo:
    return AgentInfo(id=name, state=state, groups=("g",), presence="ready", logged_in=True,
                     idle_since=0.0, misses=misses, call_id=None, pending=None, removed=False)


def view(agents: list[AgentInfo], depth: int = 0) -> EngineView:
    return EngineView(
        agents={a.id: a for a in agents}, calls={},
        queues={"sales": QueueInfo(name="sales", group="g", depth=depth)},
        vendors={"acme": VendorInfo(name="acme", health=VendorHealth.UP, failures=0,
                                    in_use=1, max_channels=10)},
        groups={"g": tuple(a.id for a in agents)}, share_credit={}, shares={},
        overflow_rules={})


def snap(board: Wallboard, v: EngineView, now: float,
         channels: Mapping[str, int] | None = None) -> dict[str, Any]:
    return board.snapshot(v, now, queues_today={}, vendors_today={}, abandoned_today={},
                          channels=channels)


def test_time_in_state_counts_from_the_change() -> None:
    """An agent's time in state restarts when its state changes."""
    board = Wallboard()
    snap(board, view([agent("ann", AgentState.READY)]), 100.0)
    assert snap(board, view([agent("ann", AgentState.READY)]), 130.0)["agents"][0][
        "in_state"] == 30
    assert snap(board, view([agent("ann", AgentState.ON_CALL)]), 140.0)["agents"][0][
        "in_state"] == 0


def test_ready_agent_without_waiting_callers_says_so() -> None:
    """A ready agent whose queues have nobody waiting: "no caller waiting"."""
    [a] = snap(Wallboard(), view([agent("ann", AgentState.READY)]), 1.0)["agents"]
    assert a["reason"] == "no caller waiting"


def test_ready_agent_with_misses_while_callers_wait() -> None:
    """A ready agent with missed offers while callers wait shows its misses."""
    [a] = snap(Wallboard(), view([agent("ann", AgentState.READY, misses=2)], depth=1),
               1.0)["agents"]
    assert a["reason"] == "missed 2 offers"


def test_remote_agent_is_on_another_node() -> None:
    """An agent busy on another node (shared state) is explained as such."""
    [a] = snap(Wallboard(), view([agent("ann", AgentState.REMOTE)]), 1.0)["agents"]
    assert a["reason"] == "on a call on another node"


def test_cluster_channel_count_replaces_the_nodes_own() -> None:
    """Vendor channels in use come from the shared store when given."""
    board = Wallboard()
    assert snap(board, view([]), 1.0)["vendors"][0]["in_use"] == 1
    assert snap(board, view([]), 1.0, channels={"acme": 7})["vendors"][0]["in_use"] == 7
