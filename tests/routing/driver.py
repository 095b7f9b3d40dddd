"""A small stand-in for the call runtime: feeds the engine and runs its timers on a
task.Clock with the runtime's own :class:`~ccswitch.calls.timers.TimerRunner`."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from twisted.internet import task

from ccswitch.calls.timers import TimerRunner
from ccswitch.model import Agent, Dialplan, Group, Queue, RecordingStart, Strategy, Vendor
from ccswitch.routing.calendar import Calendar
from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing import timers as tm
from ccswitch.routing.engine import RoutingEngine
from ccswitch.routing.record import CallRecord
from ccswitch.routing.target import Target

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
GROUP = "support-inhouse"
QUEUE = "support"
ANNOUNCEMENT = "/sounds/qa_notice.wav"
MOH = "/sounds/moh.wav"


def uri(agent_id: str) -> str:
    return f"sip:{agent_id}@127.0.0.1:5090"


def make_queue(name: str = QUEUE, group: str = GROUP, **options: object) -> Queue:
    fields: dict[str, object] = {
        "strategy": Strategy.LONGEST_IDLE, "announcement": Path(ANNOUNCEMENT),
        "music_on_hold": Path(MOH), "ring_timeout": 15.0, "max_misses": 3,
        "wrap_up": 5.0, "short_abandon": 5.0,
    }
    fields.update(options)
    return Queue(name=name, group=group, **fields)  # type: ignore[arg-type]


def trunk(vendor: str, n: int = 1) -> str:
    return f"sip:{vendor}{n}@127.0.0.1:5070"


def make_vendor(name: str, *, trunks: int = 1, **options: object) -> Vendor:
    fields: dict[str, object] = {"max_channels": 10, "probe_interval": 0.0}
    fields.update(options)
    return Vendor(name=name, trunks=tuple(trunk(name, n) for n in range(1, trunks + 1)),
                  **fields)  # type: ignore[arg-type]


def make_dialplan(agents: Iterable[str] = ("alice", "bob"), *, logged_out: Iterable[str] = (),
                  groups: dict[str, tuple[str, ...]] | None = None,
                  queues: Iterable[Queue] | None = None, vendors: Iterable[Vendor] = (),
                  calendars: Iterable[Calendar] = (), no_response: float = 0.0,
                  probe_interval: float = 10.0, **options: object) -> Dialplan:
    """One group and one queue by default; ``options`` go to the default queue. Agents
    have no no-response check unless ``no_response`` is given."""
    agent_ids = tuple(agents)
    out = set(logged_out)
    if groups is None:
        groups = {GROUP: agent_ids}
    if queues is None:
        queues = [make_queue(QUEUE, GROUP, **options)]
    return Dialplan(
        agents={a: Agent(id=a, uri=uri(a), logged_in=a not in out,
                         no_response_timeout=no_response, probe_interval=probe_interval)
                for a in agent_ids},
        groups={name: Group(name=name, agents=members) for name, members in groups.items()},
        queues={q.name: q for q in queues},
        vendors={v.name: v for v in vendors},
        calendars={c.name: c for c in calendars},
        routes=(),
    )


class Driver:
    """Feeds events, runs StartTimer/CancelTimer on a task.Clock, keeps every action.

    Notes (the engine's log lines) go to ``notes``, as the call runtime sends them to its
    log; the actions returned and kept in ``log`` are the others.
    """

    def __init__(self, dialplan: Dialplan, start: float = T0, *,
                 recording_start: RecordingStart = RecordingStart.AFTER_NOTICE,
                 reservations: bool = False) -> None:
        self.clock = task.Clock()
        self.clock.advance(start)
        self.engine = RoutingEngine(dialplan, clock=self.clock, recording_start=recording_start,
                                    reservations=reservations)
        self.timers = TimerRunner(self.clock, self.feed)
        self.log: list[act.Action] = []
        self.records: list[CallRecord] = []
        self.notes: list[act.Note] = []

    def feed(self, event: ev.Event) -> list[act.Action]:
        return self._run(self.engine.handle(event))

    def reload(self, dialplan: Dialplan) -> list[act.Action]:
        return self._run(self.engine.reload(dialplan))

    def advance(self, seconds: float) -> list[act.Action]:
        """Let time pass; returns the actions produced by timers that fired."""
        start = len(self.log)
        self.clock.advance(seconds)
        return self.log[start:]

    @property
    def now(self) -> float:
        return self.clock.seconds()

    def pending_timers(self) -> dict[tm.TimerId, float]:
        return self.timers.pending()

    # shorthands ------------------------------------------------------------

    def arrive(self, call_id: str, queue: str = QUEUE, caller: str = "5551234",
               dialed: str = "100") -> list[act.Action]:
        return self.feed(ev.CallArrived(call_id=call_id, caller=caller, dialed=dialed,
                                        queue=queue))

    def announce(self, call_id: str) -> list[act.Action]:
        return self.feed(ev.AnnouncementFinished(call_id=call_id))

    def queued(self, call_id: str, queue: str = QUEUE) -> list[act.Action]:
        """Arrive and finish the announcement; returns the second step's actions."""
        self.arrive(call_id, queue)
        return self.announce(call_id)

    def answer(self, call_id: str, agent_id: str) -> list[act.Action]:
        return self.feed(ev.LegAnswered(call_id=call_id, target=Target.agent(agent_id)))

    def fail(self, call_id: str, agent_id: str, status: int = 486) -> list[act.Action]:
        return self.feed(ev.LegFailed(call_id=call_id, target=Target.agent(agent_id),
                                      status=status))

    def caller_hangup(self, call_id: str) -> list[act.Action]:
        return self.feed(ev.CallerHungUp(call_id=call_id))

    def agent_hangup(self, call_id: str, agent_id: str) -> list[act.Action]:
        return self.feed(ev.LegHungUp(call_id=call_id, target=Target.agent(agent_id)))

    def vendor_answer(self, call_id: str, vendor: str) -> list[act.Action]:
        return self.feed(ev.LegAnswered(call_id=call_id, target=Target.vendor(vendor)))

    def vendor_fail(self, call_id: str, vendor: str, status: int = 503) -> list[act.Action]:
        return self.feed(ev.LegFailed(call_id=call_id, target=Target.vendor(vendor), status=status))

    def vendor_hangup(self, call_id: str, vendor: str) -> list[act.Action]:
        return self.feed(ev.LegHungUp(call_id=call_id, target=Target.vendor(vendor)))

    def decide(self, call_id: str, target: Target, granted: bool) -> list[act.Action]:
        return self.feed(ev.ReservationDecided(call_id=call_id, target=target,
                                               granted=granted))

    def rung(self, call_id: str) -> list[act.Ring]:
        """Every Ring of a vendor for a call so far, in order."""
        return [a for a in self.log if isinstance(a, act.Ring) and not a.target.is_agent
                and a.call_id == call_id]

    # the adapter's side ------------------------------------------------------

    def _run(self, actions: list[act.Action]) -> list[act.Action]:
        """Carry out ``actions``; returns them without the notes."""
        done: list[act.Action] = []
        for action in actions:
            if isinstance(action, act.Note):
                self.notes.append(action)
                continue
            done.append(action)
            self.log.append(action)
            if isinstance(action, act.CallFinished):
                self.records.append(action.record)
            else:
                self.timers.carry_out(action)
        return done


def rung(actions: Iterable[act.Action]) -> list[str]:
    """Agents rung by these actions, in order."""
    return [a.target.id for a in actions if isinstance(a, act.Ring) and a.target.is_agent]


def cancelled(actions: Iterable[act.Action]) -> list[str]:
    return [a.target.id for a in actions if isinstance(a, act.Cancel) and a.target.is_agent]


def changes(actions: Iterable[act.Action]) -> list[tuple[str, str, str]]:
    """(agent, old, new) for each AgentStateChanged, as state values."""
    return [(a.agent_id, a.old.value, a.new.value) for a in actions
            if isinstance(a, act.AgentStateChanged)]
