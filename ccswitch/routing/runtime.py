"""The routing engine's private, mutable state of calls in progress, shared by its parts.

A :class:`LiveCall` is one call the engine still routes: its state, the offers
ringing now and those that ended, its offer to a vendor (:class:`VendorTry`) and
its record so far (:class:`CallProgress`, frozen into a ``CallRecord`` for
others to read).
The errors here are the ones the engine raises for names it does not know.
"""

from __future__ import annotations

import attrs

from ccswitch.errors import CCSwitchError
from ccswitch.model import Queue
from ccswitch.routing.record import CallRecord, Hold, Offer, Outcome, Route, Segment
from ccswitch.routing.states import CallState
from ccswitch.routing.target import Caller, Target


class UnknownCall(CCSwitchError):
    """An event names a call the engine does not know (never seen, or already finished)."""

    error_id = "routing.unknown_call"

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        super().__init__(f"unknown call {call_id!r}")


class UnknownAgent(CCSwitchError):
    """An event names an agent the dialplan does not define."""

    error_id = "routing.unknown_agent"

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        super().__init__(f"unknown agent {agent_id!r}")


class UnknownQueue(CCSwitchError):
    """A call arrived for a queue the dialplan does not define."""

    error_id = "routing.unknown_queue"

    def __init__(self, queue: str) -> None:
        self.queue = queue
        super().__init__(f"unknown queue {queue!r}")


@attrs.define(kw_only=True, eq=False)
class CallProgress:
    """A call's record while the engine fills it in: the fields of
    :class:`~ccswitch.routing.record.CallRecord`, mutable, with lists for offers and
    segments."""

    call_id: str
    caller: str
    dialed: str
    queue: str
    group: str
    arrived_at: float
    short_abandon_threshold: float
    agent_id: str | None = None
    outcome: Outcome | None = None
    announced_at: float | None = None
    queued_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    offers: list[Offer] = attrs.Factory(list)
    qa_notice_played: bool = False
    route: Route = Route.INHOUSE
    vendor: str | None = None
    overflow_reason: str | None = None
    overflowed_at: float | None = None
    segments: list[Segment] = attrs.Factory(list)
    holds: list[Hold] = attrs.Factory(list)

    def freeze(self) -> CallRecord:
        """The record as it stands, as a frozen value."""
        return CallRecord(**attrs.asdict(self, recurse=False))

    def bridged(self, target: Target, now: float) -> None:
        """The caller was bridged with ``target``: a new segment starts."""
        self.segments.append(Segment(target=target, answered_at=now))

    def close_segment(self, now: float) -> None:
        """The current segment (if any is open) ends now."""
        if self.segments and self.segments[-1].ended_at is None:
            self.segments[-1] = attrs.evolve(self.segments[-1], ended_at=now)

    def open_hold(self, party: Target | Caller) -> int | None:
        """The index of ``party``'s hold still going on, if any."""
        for i, hold in enumerate(self.holds):
            if hold.party == party and hold.end is None:
                return i
        return None

    def close_holds(self, now: float) -> None:
        """Every hold still going on ends now."""
        self.holds = [h if h.end is not None else attrs.evolve(h, end=now) for h in self.holds]


@attrs.define(kw_only=True, eq=False)
class VendorTry:
    """The call's offer to a vendor: which trunk, why, and who comes next."""

    vendor: str
    reason: str
    fallbacks: tuple[str, ...]
    trunk: int = 0
    seq: int = 0
    offered_at: float = 0.0
    answered: bool = False
    share: bool = False  # sent by a share rule: give the credit back if the vendor does not take it
    prior: tuple[Route, str | None, str | None, float | None] = (Route.INHOUSE, None, None, None)


@attrs.define(kw_only=True, eq=False)
class LiveCall:
    """A call in progress; ``record`` fills in as it goes."""

    seq: int
    queue: Queue
    record: CallProgress
    state: CallState = CallState.ANNOUNCING
    ringing: dict[str, tuple[int, float]] = attrs.Factory(dict)  # agent -> (seq, offered_at)
    ended_offers: list[tuple[int, Offer]] = attrs.Factory(list)
    tried: set[str] = attrs.Factory(set)
    offer_seq: int = 0
    vendor: VendorTry | None = None
    failed_vendors: set[str] = attrs.Factory(set)
    noted: set[tuple[str, str]] = attrs.Factory(set)  # (vendor, cause) already reported
    entering: bool = True  # rules not yet checked since it entered the queue
    final: bool = False  # max_wait ran out: no way back to the queue

    @property
    def call_id(self) -> str:
        return self.record.call_id

    def add_offer(self, seq: int, offer: Offer) -> None:
        """Record an ended offer; the record lists offers in the order they were made."""
        self.ended_offers.append((seq, offer))
        self.ended_offers.sort(key=lambda item: item[0])
        self.record.offers = [offer for _, offer in self.ended_offers]

    def end_agent_offer(self, agent_id: str, result: str, now: float) -> None:
        """The offer to ``agent_id`` (ringing) ended with ``result``."""
        seq, offered_at = self.ringing.pop(agent_id)
        self.add_offer(seq, Offer(agent_id=agent_id, offered_at=offered_at, ended_at=now,
                                  result=result))
