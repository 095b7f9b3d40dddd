"""Agent selection strategies: pure functions from READY agents to the ones to ring.

A strategy gets the READY agents of the queue's group (``candidates``, each an
:class:`AgentView`) and the ids already offered this call (``tried``), and
returns the ids to ring now, in ringing order. Returning ``[]`` leaves the call
waiting. The engine only ever passes READY agents and ignores returned ids that
are not among the candidates.

Adding a strategy is one function and one registry line. For example, once
``model.Strategy`` gains ``ROUND_ROBIN``::

    def round_robin(candidates: Sequence[AgentView], tried: frozenset[str]) -> list[str]:
        \"\"\"The first agent in group order not yet tried on this call (wrapping).\"\"\"
        ordered = sorted(candidates, key=lambda a: a.order)
        fresh = [a for a in ordered if a.id not in tried] or ordered
        return [fresh[0].id] if fresh else []

    STRATEGIES[Strategy.ROUND_ROBIN] = round_robin
"""

from __future__ import annotations

from typing import Callable, Sequence

import attrs

from ccswitch.model import Strategy


@attrs.frozen(kw_only=True)
class AgentView:
    """What a strategy may know about a READY agent."""

    id: str
    idle_since: float  # when the agent last became free (epoch seconds)
    misses: int  # offers missed in a row
    order: int  # position in the queue's group, 0 first


SelectFn = Callable[[Sequence[AgentView], frozenset[str]], list[str]]


def longest_idle(candidates: Sequence[AgentView], tried: frozenset[str]) -> list[str]:
    """The agent idle longest (ties: group order), preferring agents not yet tried.

    When every candidate was already offered this call, all of them are eligible again.
    """
    fresh = [a for a in candidates if a.id not in tried] or list(candidates)
    if not fresh:
        return []
    best = min(fresh, key=lambda a: (a.idle_since, a.order))
    return [best.id]


def ring_all(candidates: Sequence[AgentView], tried: frozenset[str]) -> list[str]:
    """Every candidate, in group order; the first to answer wins."""
    return [a.id for a in sorted(candidates, key=lambda a: a.order)]


STRATEGIES: dict[Strategy, SelectFn] = {
    Strategy.LONGEST_IDLE: longest_idle,
    Strategy.RING_ALL: ring_all,
}
