"""In-house agents for the routing engine: bookkeeping, presence, misses, wrap-up, release.

:class:`Agents` keeps every agent's state (through ``AGENT_TRANSITIONS``), the
groups it belongs to, how long it has been idle and how many offers in a row it
missed. Its methods return the actions their changes call for
(``AgentStateChanged`` once per group of the agent, wrap-up timers, notes); it
knows calls only by id.

* Agents with ``logged_in: true`` start READY, idle since the engine was built
  (ties go by group order); the others start LOGGED_OUT.
* A missed offer counts against the agent: back to READY at the end of the line,
  or NOT_READY once ``max_misses`` offers in a row were missed. An answer,
  ``AgentLogin`` or ``AgentReady`` resets the count. A cancelled offer keeps the
  agent's place in line.
* ``AgentPause``/``AgentLogout`` while an agent is reserved, on a call or in wrap-up
  are remembered and applied when the agent frees up; ``AgentReady`` meanwhile
  forgets them (and, in wrap-up, ends the wrap-up at once).
* A dead phone is not a miss: an offer the phone sends no response to at all (not
  even 100 Trying) within the agent's ``no_response_timeout``, or whose INVITE
  cannot be sent (``AgentSendFailed``), ends at once (in
  :mod:`~ccswitch.routing.calls`) and the next agent is offered the call. The agent
  goes UNREACHABLE (out of rotation) and gets ``ProbeAgent`` every ``probe_interval``
  until its phone answers anything (``AgentResponded``: even a 4xx proves it alive),
  then READY at the back of the line. An offer cancelled before the phone responded
  (the caller left) keeps the check running: a phone still silent when it runs out
  goes UNREACHABLE from READY. ``AgentReady``/``AgentLogin`` while UNREACHABLE probe
  at once and keep it out of rotation.
"""

from __future__ import annotations

import attrs

from ccswitch.errors import IllegalTransition
from ccswitch.model import Agent, Dialplan, Queue
from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing import timers as tm
from ccswitch.routing.actions import NoteLevel
from ccswitch.routing.runtime import UnknownAgent
from ccswitch.routing.states import AGENT_TRANSITIONS, AgentState, transition
from ccswitch.routing.strategies import AgentView

PresenceEvent = ev.AgentLogin | ev.AgentLogout | ev.AgentReady | ev.AgentPause

#: Agent states a dead contact is taken out of: offered a call, or free to be.
IN_ROTATION = frozenset((AgentState.RESERVED, AgentState.READY))


@attrs.define(kw_only=True, eq=False)
class AgentSlot:
    """One agent as the engine tracks it."""

    agent: Agent
    groups: tuple[str, ...]
    state: AgentState
    idle_since: float
    misses: int = 0
    call_id: str | None = None  # the call it is reserved for, on, or wrapping up
    pending: str | None = None  # "AgentPause"/"AgentLogout" to apply once free
    removed: bool = False  # dropped from the dialplan by a reload: forget it once free
    unheard: tm.NoResponseTimer | None = None  # offered, no response from its phone since

    @property
    def id(self) -> str:
        return self.agent.id

    @property
    def presence(self) -> str:
        """Where the agent returns to once free: logged_out, ready or not_ready."""
        if self.state in (AgentState.LOGGED_OUT, AgentState.NOT_READY):
            return self.state.value
        if self.pending == "AgentLogout":
            return AgentState.LOGGED_OUT.value
        if self.pending == "AgentPause":
            return AgentState.NOT_READY.value
        return AgentState.READY.value


class Agents:
    """Every agent of the dialplan in force (and removed ones still finishing a call)."""

    def __init__(self, dialplan: Dialplan, now: float) -> None:
        self.members, member_of = _memberships(dialplan)
        self.slots: dict[str, AgentSlot] = {
            agent_id: _new_agent(agent, member_of[agent_id], now)
            for agent_id, agent in dialplan.agents.items()
        }

    def get(self, agent_id: str) -> AgentSlot:
        """The agent; raises UnknownAgent."""
        agent = self.slots.get(agent_id)
        if agent is None:
            raise UnknownAgent(agent_id)
        return agent

    def reload(self, old_plan: Dialplan, dialplan: Dialplan, now: float) -> list[act.Action]:
        """New agents start as their ``logged_in`` says; existing ones keep their state,
        except that a change of ``logged_in`` is applied as a login or logout; removed
        ones are dropped at once when idle, else once free."""
        self.members, member_of = _memberships(dialplan)
        actions: list[act.Action] = []
        for agent_id, gone in list(self.slots.items()):
            if agent_id in dialplan.agents:
                continue
            gone.groups = ()
            if gone.state in (AgentState.READY, AgentState.NOT_READY, AgentState.LOGGED_OUT,
                              AgentState.UNREACHABLE):
                del self.slots[agent_id]
            else:
                gone.removed = True
        for agent_id, spec in dialplan.agents.items():
            agent = self.slots.get(agent_id)
            if agent is None:
                self.slots[agent_id] = _new_agent(spec, member_of[agent_id], now)
                continue
            agent.agent = spec
            agent.groups = tuple(member_of[agent_id])
            agent.removed = False
            before = old_plan.agents.get(agent_id)
            if before is not None and before.logged_in != spec.logged_in:
                presence = ev.AgentLogin if spec.logged_in else ev.AgentLogout
                try:
                    actions.extend(self.presence(presence(agent_id=agent_id), now))
                except IllegalTransition:
                    pass  # already in the state the file asks for
        return actions

    # -- presence -------------------------------------------------------------

    def presence(self, event: PresenceEvent, now: float) -> list[act.Action]:
        """An operator's login, logout, ready or pause."""
        agent = self.get(event.agent_id)
        name = type(event).__name__
        old = agent.state
        new = transition(f"agent {event.agent_id}", AGENT_TRANSITIONS, old, name)
        if old is AgentState.UNREACHABLE and new is old:
            return self.probe(agent)  # ready/login: see whether the phone is back
        if new is old:
            # Busy: remember a pause/logout for later; a ready forgets it.
            agent.pending = None if isinstance(event, ev.AgentReady) else name
            return []
        actions: list[act.Action] = []
        if old is AgentState.WRAP_UP:
            actions.append(act.CancelTimer(timer_id=tm.WrapUpTimer(event.agent_id)))
            agent.call_id = None
        agent.state = new
        agent.pending = None
        if new is AgentState.READY:
            agent.idle_since = now
            agent.misses = 0
        actions.extend(self.changed(agent, old))
        return actions

    def set_presence(self, agent_id: str, presence: str, now: float) -> list[act.Action]:
        """Move an agent towards ``presence`` (a busy one gets it when free); unknown
        agents are ignored (another node's dialplan may differ)."""
        agent = self.slots.get(agent_id)
        if agent is None or agent.removed or agent.presence == presence:
            return []
        actions: list[act.Action] = []
        steps: tuple[type[PresenceEvent], ...]
        if presence == AgentState.LOGGED_OUT.value:
            steps = (ev.AgentLogout,)
        elif presence == AgentState.READY.value:
            steps = (ev.AgentLogin,) if agent.state is AgentState.LOGGED_OUT else (
                ev.AgentReady,)
        elif agent.state is AgentState.LOGGED_OUT:
            steps = (ev.AgentLogin, ev.AgentPause)
        else:
            steps = (ev.AgentPause,)
        for step in steps:
            actions.extend(self.presence(step(agent_id=agent_id), now))
        return actions

    def restore(self, saved: dict[str, tuple[str, bool]], now: float) -> list[act.Action]:
        """Put agents back into a saved presence; the dialplan wins for an agent whose
        ``logged_in`` changed since the save, or that is not in it."""
        actions: list[act.Action] = []
        for agent_id, (presence, logged_in) in saved.items():
            agent = self.slots.get(agent_id)
            if agent is not None and agent.agent.logged_in == logged_in:
                actions.extend(self.set_presence(agent_id, presence, now))
        return actions

    # -- other nodes ------------------------------------------------------------

    def busy_elsewhere(self, event: ev.AgentBusyElsewhere) -> list[act.Action]:
        agent = self.slots.get(event.agent_id)
        if agent is None or agent.state is not AgentState.READY:
            return []  # busy here (our own hold), away, or not in our dialplan
        old = agent.state
        agent.state = transition(f"agent {event.agent_id}", AGENT_TRANSITIONS, old,
                                 "remote_busy")
        return self.changed(agent, old)

    def free_elsewhere(self, event: ev.AgentFreeElsewhere, now: float) -> list[act.Action]:
        agent = self.slots.get(event.agent_id)
        if agent is None or agent.state is not AgentState.REMOTE:
            return []
        actions = self.release(agent, "remote_free", now, fresh=False)
        agent.idle_since = now if event.idle_since is None else event.idle_since
        return actions

    def taken(self, agent: AgentSlot) -> list[act.Action]:
        """Another node holds the agent we offered a call to: not a miss."""
        old = agent.state
        agent.state = transition(f"agent {agent.id}", AGENT_TRANSITIONS, old, "taken")
        agent.call_id = None
        return self.changed(agent, old)

    # -- offers and calls ---------------------------------------------------------

    def ready(self, group: str, since: float | None) -> list[AgentView]:
        """The group's READY agents (idle since after ``since``, if given) for a strategy."""
        return [
            AgentView(id=agent_id, idle_since=agent.idle_since, misses=agent.misses,
                      order=order)
            for order, agent_id in enumerate(self.members.get(group, ()))
            if (agent := self.slots[agent_id]).state is AgentState.READY
            and (since is None or agent.idle_since > since)
        ]

    def all_logged_out(self, group: str) -> bool:
        return all(self.slots[a].state is AgentState.LOGGED_OUT
                   for a in self.members.get(group, ()))

    def offer(self, agent_id: str, call_id: str) -> list[act.Action]:
        """Reserve a READY agent for a call."""
        agent = self.slots[agent_id]
        old = agent.state
        agent.state = transition(f"agent {agent_id}", AGENT_TRANSITIONS, old, "offer")
        agent.call_id = call_id
        return self.changed(agent, old)

    def answered(self, agent: AgentSlot) -> list[act.Action]:
        old = agent.state
        agent.state = transition(f"agent {agent.id}", AGENT_TRANSITIONS, old, "AgentAnswered")
        agent.misses = 0
        return self.changed(agent, old)

    def release(self, agent: AgentSlot, trigger: str, now: float, *,
                fresh: bool) -> list[act.Action]:
        """Free a busy agent with ``trigger``, applying a remembered pause/logout.

        ``fresh``: the agent goes to the back of the line (idle from now).
        """
        old = agent.state
        new = transition(f"agent {agent.id}", AGENT_TRANSITIONS, old, trigger)
        if agent.pending is not None and new in (AgentState.READY, AgentState.NOT_READY):
            new = AGENT_TRANSITIONS.get((new, agent.pending), new)
            agent.pending = None
        agent.state = new
        agent.call_id = None
        if fresh and new is AgentState.READY:
            agent.idle_since = now
        if agent.removed:
            del self.slots[agent.id]
        return self.changed(agent, old)

    def release_cancelled(self, agent_ids: list[str], now: float) -> list[act.Action]:
        """Agents whose offer was cancelled are ready again, keeping their place in line."""
        actions: list[act.Action] = []
        for agent_id in agent_ids:
            actions.extend(self.release(self.slots[agent_id], "cancel", now, fresh=False))
        return actions

    def miss(self, agent: AgentSlot, queue: Queue, now: float) -> list[act.Action]:
        agent.misses += 1
        if agent.misses >= queue.max_misses:
            return [act.note(NoteLevel.INFO,
                             "agent {agent} missed {misses} offers in a row: not ready",
                             agent=agent.id, misses=agent.misses, queue=queue.name),
                    *self.release(agent, "miss_limit", now, fresh=True)]
        return self.release(agent, "miss", now, fresh=True)

    def after_call(self, agent: AgentSlot, queue: Queue, now: float) -> list[act.Action]:
        """The bridged call ended: wrap up, or straight back to READY if wrap_up is 0."""
        if queue.wrap_up <= 0:
            return self.release(agent, "call_end_no_wrap_up", now, fresh=True)
        old = agent.state
        agent.state = transition(f"agent {agent.id}", AGENT_TRANSITIONS, old, "call_end")
        return [*self.changed(agent, old),
                act.StartTimer(timer_id=tm.WrapUpTimer(agent.id), delay=queue.wrap_up)]

    # -- dead phones ---------------------------------------------------------------

    def check_response(self, agent: AgentSlot, call_id: str) -> list[act.Action]:
        """The agent was just rung for ``call_id``: start its no-response check (if it
        has one), replacing a check still running from an earlier offer."""
        if agent.agent.no_response_timeout <= 0:
            return []
        actions = self.heard(agent)
        agent.unheard = tm.NoResponseTimer(call_id, agent.id)
        actions.append(act.StartTimer(timer_id=agent.unheard,
                                      delay=agent.agent.no_response_timeout))
        return actions

    def heard(self, agent: AgentSlot) -> list[act.Action]:
        """The agent's phone responded to its offer: the no-response check is over."""
        if agent.unheard is None:
            return []
        timer_id, agent.unheard = agent.unheard, None
        return [act.CancelTimer(timer_id=timer_id)]

    def responded(self, agent_id: str, now: float) -> list[act.Action]:
        """The agent's phone sent a response (to an offer or a probe): it is alive."""
        agent = self.slots.get(agent_id)
        if agent is None:
            return []  # a late answer from a phone a reload removed
        actions = self.heard(agent)
        if agent.state is AgentState.UNREACHABLE:
            actions.append(act.note(NoteLevel.INFO,
                                    "agent {agent} answered: reachable again, back in rotation",
                                    agent=agent_id))
            actions.append(act.CancelTimer(timer_id=tm.AgentProbeTimer(agent_id)))
            actions.extend(self.release(agent, "reachable", now, fresh=True))
        return actions

    def unreachable(self, agent: AgentSlot, reason: str, now: float) -> list[act.Action]:
        """Take a reserved (its offer already ended) or ready agent out of rotation, and
        probe its phone until it answers."""
        actions = self.release(agent, "unreachable", now, fresh=True)
        if agent.state is AgentState.UNREACHABLE:
            actions.append(act.note(
                NoteLevel.WARN, "agent {agent} unreachable ({reason}): out of rotation, "
                "probed every {interval}s", agent=agent.id, reason=reason,
                interval=agent.agent.probe_interval))
            actions.append(act.StartTimer(timer_id=tm.AgentProbeTimer(agent.id),
                                          delay=agent.agent.probe_interval))
        return actions

    def probe(self, agent: AgentSlot) -> list[act.Action]:
        """OPTIONS to an unreachable agent's phone now, and again after its interval."""
        return [act.ProbeAgent(agent_id=agent.id, uri=agent.agent.uri),
                act.StartTimer(timer_id=tm.AgentProbeTimer(agent.id),
                               delay=agent.agent.probe_interval)]

    def changed(self, agent: AgentSlot, old: AgentState) -> list[act.Action]:
        if agent.state is old:
            return []
        return [act.AgentStateChanged(agent_id=agent.id, group=group, old=old, new=agent.state)
                for group in agent.groups]


def _memberships(dialplan: Dialplan) -> tuple[dict[str, tuple[str, ...]], dict[str, list[str]]]:
    """Members of each group (known agents, listed order) and each agent's groups."""
    members: dict[str, tuple[str, ...]] = {}
    member_of: dict[str, list[str]] = {agent_id: [] for agent_id in dialplan.agents}
    for name, group in dialplan.groups.items():
        ids = tuple(dict.fromkeys(a for a in group.agents if a in dialplan.agents))
        members[name] = ids
        for agent_id in ids:
            member_of[agent_id].append(name)
    return members, member_of


def _new_agent(agent: Agent, groups: list[str], now: float) -> AgentSlot:
    return AgentSlot(agent=agent, groups=tuple(groups), idle_since=now,
                     state=AgentState.READY if agent.logged_in else AgentState.LOGGED_OUT)
