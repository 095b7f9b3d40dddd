"""The engine's log lines come out as Note actions, and the package does no logging."""

from __future__ import annotations

from pathlib import Path

from ccswitch.model import Condition, OverflowRule
from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing.actions import NoteLevel

from .driver import QUEUE, Driver, make_dialplan, make_queue, make_vendor


def test_reaching_max_misses_is_noted_with_agent_and_queue() -> None:
    """The miss that sets an agent not ready is an info Note naming agent, misses and queue."""
    d = Driver(make_dialplan(("alice",), max_misses=2))
    d.queued("c1")
    d.advance(15)
    d.advance(15)
    assert d.notes == [act.note(NoteLevel.INFO,
                                "agent {agent} missed {misses} offers in a row: not ready",
                                agent="alice", misses=2, queue=QUEUE)]


def test_an_overflow_is_noted_before_the_action_it_explains() -> None:
    """Sending a call to a vendor yields an info Note with call, vendor, reason and queue."""
    rule = OverflowRule(condition=Condition.NO_AGENTS_LOGGED_IN, vendors=("acme",))
    d = Driver(make_dialplan(logged_out=("alice", "bob"), vendors=[make_vendor("acme")],
                             queues=[make_queue(overflow=(rule,))]))
    d.arrive("c1")
    actions = d.engine.handle(ev.AnnouncementFinished(call_id="c1"))
    notes = [a for a in actions if isinstance(a, act.Note)]
    assert notes == [act.note(NoteLevel.INFO, "call {call_id} overflows to vendor {vendor}: "
                              "{reason}", call_id="c1", vendor="acme",
                              reason="no_agents_logged_in", queue=QUEUE)]
    assert isinstance(actions[actions.index(notes[0]) + 1], act.OverflowFired)


def test_a_media_timeout_is_a_warning() -> None:
    """A silent party is noted as a warning naming the call and the silent leg."""
    d = Driver(make_dialplan())
    d.queued("c1")
    d.feed(ev.MediaTimedOut(call_id="c1", leg="caller"))
    [warning] = d.notes
    assert warning.level is NoteLevel.WARN
    assert dict(warning.fields) == {"call_id": "c1", "leg": "caller"}


def test_the_routing_package_imports_nothing_from_twisted() -> None:
    """The engine is a pure core: no module of ccswitch.routing imports twisted."""
    package = Path(act.__file__).parent
    imports = [(p.name, line) for p in package.glob("*.py")
               for line in p.read_text().splitlines()
               if line.lstrip().startswith(("import twisted", "from twisted"))]
    assert imports == []
