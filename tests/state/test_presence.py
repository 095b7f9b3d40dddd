"""Agent presence across restarts: the engine's view, the file, restoring it, and the
keeper that saves it."""

from __future__ import annotations

from pathlib import Path

from twisted.internet.task import Clock

from ccswitch.routing import events as ev
from ccswitch.routing.states import AgentState
from ccswitch.state.presence import PresenceFile, PresenceKeeper
from tests.routing.driver import Driver, make_dialplan


def test_presence_is_where_each_agent_returns_once_free() -> None:
    """Busy agents count as ready, unless a pause or logout waits for the call's end."""
    d = Driver(make_dialplan(("alice", "bob", "carol", "dave"), logged_out=("dave",)))
    d.queued("c1")
    d.answer("c1", "alice")
    d.queued("c2")
    d.answer("c2", "bob")
    d.feed(ev.AgentPause(agent_id="bob"))
    d.feed(ev.AgentPause(agent_id="carol"))
    assert d.engine.view.presence() == {"alice": ("ready", True), "bob": ("not_ready", True),
                                   "carol": ("not_ready", True), "dave": ("logged_out", False)}


def test_restore_puts_agents_back_and_the_dialplan_wins_when_it_changed() -> None:
    """Saved presence is applied on a fresh engine, except for agents whose logged_in in the
    dialplan differs from the saved one, or that are gone."""
    d = Driver(make_dialplan(("alice", "bob", "carol"), logged_out=("alice", "carol")))
    d.engine.restore({"alice": ("ready", False), "bob": ("not_ready", True),
                      "carol": ("ready", True), "zed": ("ready", True)})
    assert [d.engine.view.agents[a].state for a in ("alice", "bob", "carol")] == [
        AgentState.READY, AgentState.NOT_READY, AgentState.LOGGED_OUT]


def test_restore_of_not_ready_for_a_logged_out_agent_logs_in_then_pauses() -> None:
    """A logged-out (by default) agent saved as not_ready comes back not ready."""
    d = Driver(make_dialplan(("alice",), logged_out=("alice",)))
    d.engine.restore({"alice": ("not_ready", False)})
    assert d.engine.view.agents["alice"].state is AgentState.NOT_READY


def test_the_file_round_trips_and_is_replaced_whole(tmp_path: Path) -> None:
    """save then load gives the same mapping; no temp file is left; mode 0600."""
    store = PresenceFile(tmp_path / "state" / "agents.json")
    store.save({"alice": ("ready", False), "bob": ("logged_out", True)})
    assert store.load() == {"alice": ("ready", False), "bob": ("logged_out", True)}
    assert [p.name for p in store.path.parent.iterdir()] == ["agents.json"]
    assert store.path.stat().st_mode & 0o777 == 0o600


def test_a_missing_or_corrupt_file_means_the_dialplan_decides(tmp_path: Path) -> None:
    """No file, broken JSON or bad entries: nothing (or only the good entries) is loaded."""
    store = PresenceFile(tmp_path / "agents.json")
    assert store.load() == {}
    store.path.write_text("{not json")
    assert store.load() == {}
    store.path.write_text('{"agents": {"a": {"presence": "dancing", "logged_in": true},'
                          ' "b": {"presence": "ready", "logged_in": true}}}')
    assert store.load() == {"b": ("ready", True)}


def keeper_on(clock: Clock, presence: dict[str, tuple[str, bool]], path: Path | None,
              pushed: list[dict[str, tuple[str, bool]]]) -> PresenceKeeper:
    keeper = PresenceKeeper(clock=clock, current=lambda: dict(presence),
                            store=PresenceFile(path) if path is not None else None)
    keeper.share(lambda p: pushed.append(dict(p)))
    return keeper


def test_keeper_saves_once_after_a_burst_of_changes(tmp_path: Path) -> None:
    """Three changes in one reactor turn make one save and one push, on the next turn."""
    clock, presence, pushed = Clock(), {"alice": ("ready", True)}, []
    keeper = keeper_on(clock, presence, tmp_path / "presence.json", pushed)
    for _ in range(3):
        keeper.changed()
    assert pushed == [] and not (tmp_path / "presence.json").exists()
    clock.advance(0)
    assert pushed == [{"alice": ("ready", True)}]
    assert PresenceFile(tmp_path / "presence.json").load() == {"alice": ("ready", True)}


def test_keeper_skips_a_presence_that_did_not_change(tmp_path: Path) -> None:
    """A change that leaves every agent where it was is neither pushed nor saved again."""
    clock, presence, pushed = Clock(), {"alice": ("ready", True)}, []
    keeper = keeper_on(clock, presence, None, pushed)
    keeper.changed()
    clock.advance(0)
    keeper.changed()
    clock.advance(0)
    presence["alice"] = ("not_ready", True)
    keeper.changed()
    clock.advance(0)
    assert pushed == [{"alice": ("ready", True)}, {"alice": ("not_ready", True)}]


def test_keeper_without_file_or_shared_state_schedules_nothing() -> None:
    """With nowhere to keep presence, a change schedules no save."""
    clock = Clock()
    PresenceKeeper(clock=clock, current=dict, store=None).changed()
    assert clock.getDelayedCalls() == []
