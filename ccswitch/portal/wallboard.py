"""The wallboard's picture of the center at one moment (pure).

:class:`Wallboard` turns the routing engine's view plus today's KPIs into one
JSON-ready dict, per queue, agent and vendor. The engine does not keep when an agent
entered its state, so the wallboard notes when it first saw each agent's state and
reports the time since (from portal start at the earliest).

With shared state the engine's view already holds every agent of the center (an agent
busy on another node is ``remote``); vendor channels in use on all nodes come from the
state store (``channels``); the callers waiting on the other nodes come from their
operator API (``peers``, see ``ccswitch.portal.peers``) and add to this node's. A wait
is counted from the caller's arrival (announcement included), as the API gives it.

``reason`` says why an agent is not being offered a call: its state when it is not
ready ("on a call on another node" for ``remote``), else "no caller waiting" when no queue of its groups has one, "missed N offers"
when it has recent misses, else "next offer".
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ccswitch.portal.kpi import RouteKpi
from ccswitch.portal.peers import PeerState
from ccswitch.routing.states import AgentState, CallState
from ccswitch.routing.view import EngineView

_WAITING = (CallState.ANNOUNCING, CallState.QUEUED, CallState.RINGING, CallState.OVERFLOW)


class Wallboard:
    def __init__(self) -> None:
        self._since: dict[str, tuple[str, float]] = {}

    def snapshot(self, view: EngineView, now: float, *, queues_today: Mapping[str, RouteKpi],
                 vendors_today: Mapping[str, RouteKpi],
                 abandoned_today: Mapping[str, int],
                 channels: Mapping[str, int] | None = None,
                 peers: Sequence[PeerState] = ()) -> dict[str, Any]:
        """The wallboard at ``now`` (epoch seconds); ``channels``: vendor -> channels in
        use on every node, when a shared state store says so; ``peers``: the other
        nodes' last answers."""
        waits: dict[str, list[float]] = {name: [] for name in view.queues}
        for call in view.calls.values():
            if call.state in _WAITING and call.queue in waits:
                waits[call.queue].append(max(0.0, now - call.record.arrived_at))
        remote: dict[str, int] = {}
        for peer in peers:
            for queue, seconds in peer.waiting:
                if queue in waits:  # the center's nodes share their dialplans
                    waits[queue].append(seconds)
                    remote[queue] = remote.get(queue, 0) + 1
        queues = []
        for name, q in sorted(view.queues.items()):
            today = queues_today.get(name)
            queues.append({
                "name": name, "group": q.group, "waiting": q.depth + remote.get(name, 0),
                "longest_wait": round(max(waits[name]), 1) if waits[name] else 0.0,
                "sl_today": None if today is None else today.service_level,
                "asa_today": None if today is None else today.asa,
                "abandoned_today": abandoned_today.get(name, 0)})
        busy_groups = {q.group for q in view.queues.values() if q.depth}
        agents = []
        for agent_id, a in sorted(view.agents.items()):
            seen = self._since.get(agent_id)
            if seen is None or seen[0] != a.state.value:
                seen = (a.state.value, now)
                self._since[agent_id] = seen
            agents.append({"id": agent_id, "state": a.state.value,
                           "in_state": round(now - seen[1]), "groups": list(a.groups),
                           "reason": _reason(a.state, a.misses, a.groups, busy_groups)})
        for gone in set(self._since) - set(view.agents):
            del self._since[gone]
        vendors = []
        for name, v in sorted(view.vendors.items()):
            today = vendors_today.get(name)
            in_use = v.in_use if channels is None else channels.get(name, v.in_use)
            vendors.append({"name": name, "in_use": in_use, "max": v.max_channels,
                            "up": v.health.value == "up",
                            "sl_today": None if today is None else today.service_level})
        return {"at": round(now, 3), "queues": queues, "agents": agents, "vendors": vendors,
                "peers": [{"url": p.url, "up": p.up} for p in peers]}


def _reason(state: AgentState, misses: int, groups: tuple[str, ...],
            busy_groups: set[str]) -> str:
    if state is AgentState.REMOTE:
        return "on a call on another node"
    if state is not AgentState.READY:
        return state.value.replace("_", " ")
    if not busy_groups.intersection(groups):
        return "no caller waiting"
    if misses:
        return f"missed {misses} offer{'s' if misses > 1 else ''}"
    return "next offer"
