"""Other nodes' holds as one node last saw them, so they can expire here when the
store cannot be reached.

In the store a hold lives ``hold_ttl`` seconds past its node's last refresh. While the
store is unreachable nobody can see refreshes, so a node would keep the agents another
node held ``remote`` for the whole outage. :class:`RemoteHolds` notes when each such hold
was last seen live and lets it run out ``ttl`` seconds later, as it would in the store
had its node stopped refreshing. Pure: the time is passed in.
"""

from __future__ import annotations

from typing import Iterable


class RemoteHolds:
    """When each agent held by another node was last seen held (see the module doc)."""

    def __init__(self, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, got {ttl!r}")
        self._ttl = ttl
        self._seen: dict[str, float] = {}

    def seen(self, agent: str, now: float) -> None:
        """Another node held ``agent`` at ``now`` (an event, or the store's holders)."""
        self._seen[agent] = now

    def expired(self, remote: Iterable[str], now: float) -> list[str]:
        """Of the agents ``remote`` here (held by another node), those whose hold was last
        seen more than ``ttl`` ago, sorted; they are forgotten. A remote agent never seen
        held counts from ``now``; agents no longer remote are forgotten."""
        remote = set(remote)
        for agent in [a for a in self._seen if a not in remote]:
            del self._seen[agent]
        out = []
        for agent in sorted(remote):
            last = self._seen.setdefault(agent, now)
            if now - last > self._ttl:
                del self._seen[agent]
                out.append(agent)
        return out
