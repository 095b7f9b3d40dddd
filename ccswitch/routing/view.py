"""A read-only picture of the routing engine, for its adapters (the call runtime, shared state,
operator API, metrics).

:class:`EngineView` holds frozen values in read-only mappings: agents, calls (in
arrival order), queues and vendors. The engine builds one on the first read after
a change and hands out the same object until the next ``handle()`` or
``reload()``, so adapters can read it on hot paths; a view they keep does not
change under them.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

import attrs

from ccswitch.routing.record import CallRecord
from ccswitch.routing.states import AgentState, CallState, VendorHealth

_BUSY = (AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAP_UP)


@attrs.frozen(kw_only=True)
class AgentInfo:
    """One agent. ``presence`` is where it returns once free (logged_out, ready or
    not_ready); ``removed``: dropped by a reload, finishing its call."""

    id: str
    state: AgentState
    groups: tuple[str, ...]
    presence: str
    logged_in: bool
    idle_since: float
    misses: int
    call_id: str | None
    pending: str | None
    removed: bool

    @property
    def busy_with(self) -> str | None:
        """The call this node holds the agent for (reserved, on it, wrapping up)."""
        return self.call_id if self.state in _BUSY else None


@attrs.frozen(kw_only=True)
class CallInfo:
    """One call in progress: ``ringing`` agents in ringing order, ``vendor`` offered or
    bridged now, and its record so far."""

    id: str
    state: CallState
    queue: str
    ringing: tuple[str, ...]
    tried: tuple[str, ...]
    vendor: str | None
    record: CallRecord


@attrs.frozen(kw_only=True)
class QueueInfo:
    """One queue of the dialplan in force; ``depth`` counts callers waiting in it
    (queued, or offered to agents or a vendor)."""

    name: str
    group: str
    depth: int


@attrs.frozen(kw_only=True)
class VendorInfo:
    """One vendor of the dialplan in force."""

    name: str
    health: VendorHealth
    failures: int
    in_use: int
    max_channels: int


@attrs.frozen(kw_only=True)
class ShareInfo:
    """One share rule of the dialplan in force: its ``percent``, and since this node
    started (or the rule was added), the ``calls`` that entered the queue and the share
    calls the vendor answered (``taken``)."""

    queue: str
    vendor: str
    percent: float
    calls: int
    taken: int


def _frozen_mapping(value: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class EngineView:
    """The engine's state at one moment; see the module docstring."""

    agents: Mapping[str, AgentInfo] = attrs.field(converter=_frozen_mapping)
    calls: Mapping[str, CallInfo] = attrs.field(converter=_frozen_mapping)
    queues: Mapping[str, QueueInfo] = attrs.field(converter=_frozen_mapping)
    vendors: Mapping[str, VendorInfo] = attrs.field(converter=_frozen_mapping)
    groups: Mapping[str, tuple[str, ...]] = attrs.field(converter=_frozen_mapping)
    share_credit: Mapping[tuple[str, str], float] = attrs.field(converter=_frozen_mapping)
    shares: Mapping[tuple[str, str], ShareInfo] = attrs.field(converter=_frozen_mapping)
    #: (queue, rule name) -> whether the overflow rule is on (``Queue.rule_names``)
    overflow_rules: Mapping[tuple[str, str], bool] = attrs.field(converter=_frozen_mapping)

    def presence(self) -> dict[str, tuple[str, bool]]:
        """Per agent still in the dialplan: (presence, dialplan ``logged_in``), what the
        presence store saves."""
        return {a.id: (a.presence, a.logged_in) for a in self.agents.values() if not a.removed}

    def busy_agents(self) -> dict[str, str]:
        """agent -> call of the agents this node holds."""
        return {a.id: a.busy_with for a in self.agents.values() if a.busy_with is not None}

    def waiting(self) -> list[tuple[str, str, float]]:
        """(queue, call, queued_at) of the calls waiting for an agent and not ringing one."""
        return [(c.queue, c.id, c.record.queued_at) for c in self.calls.values()
                if c.state is CallState.QUEUED and c.record.queued_at is not None]

    def agent_counts(self) -> dict[tuple[str, str], int]:
        """Agents per (group, state value), for every group and state, zeros included."""
        counts = {(group, state.value): 0 for group in self.groups for state in AgentState}
        for agent in self.agents.values():
            for group in agent.groups:
                counts[(group, agent.state.value)] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (for debugging and tests)."""
        return {
            "calls": {
                call_id: {
                    "state": c.state.value, "queue": c.queue, "ringing": list(c.ringing),
                    "tried": list(c.tried), "vendor": c.vendor, "record": c.record.to_dict(),
                }
                for call_id, c in self.calls.items()
            },
            "agents": {
                agent_id: {
                    "state": a.state.value, "idle_since": a.idle_since, "misses": a.misses,
                    "call_id": a.call_id, "pending": a.pending,
                }
                for agent_id, a in self.agents.items()
            },
            "vendors": {
                name: {"health": v.health.value, "failures": v.failures, "in_use": v.in_use}
                for name, v in self.vendors.items()
            },
            "share_credit": {f"{q}/{v}": c for (q, v), c in self.share_credit.items()},
        }
