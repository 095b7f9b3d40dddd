"""The call detail record the engine keeps for every call and hands out when it ends."""

from __future__ import annotations

import datetime
import enum
import re
from typing import Any, Iterable

import attrs

from ccswitch.routing.target import CALLER, Caller, Target

OFFER_RESULT = re.compile(r"answered|no_answer|cancelled|unreachable|failed:[1-6][0-9][0-9]")


class Outcome(enum.StrEnum):
    """How a call ended, one per call (the value is the ``outcome`` metric label).

    A call that was sent to a vendor is never counted as abandoned: if nobody
    answered it, it is ``overflow_failed``.
    """

    ANSWERED_INHOUSE = "answered_inhouse"
    ANSWERED_VENDOR = "answered_vendor"
    ABANDONED_QUEUE = "abandoned_queue"  # caller left while waiting (or hearing the notice)
    ABANDONED_RINGING = "abandoned_ringing"  # caller left while an in-house agent rang
    SHORT_ABANDON = "short_abandon"  # caller left within the queue's short_abandon seconds
    OVERFLOW_FAILED = "overflow_failed"  # sent to a vendor, answered by nobody
    TIMEOUT = "timeout"  # the queue's max_wait ran out: final announcement and hang-up
    REJECTED = "rejected"  # refused before it reached the queue (unusable SDP, no ports)
    MEDIA_TIMEOUT = "media_timeout"  # a party sent no RTP for rtp.timeout seconds
    VENDOR_LOST = "vendor_lost"  # the answered vendor leg died (RTP stopped, dialog gone)
    INTERRUPTED = "interrupted"  # ccswitch stopped during the call (found on restart)

    @property
    def answered(self) -> bool:
        return self in (Outcome.ANSWERED_INHOUSE, Outcome.ANSWERED_VENDOR)


class Route(enum.StrEnum):
    """Where a call went: in-house agents, or a vendor (the ``route`` metric label)."""

    INHOUSE = "inhouse"
    VENDOR = "vendor"


def _result(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, str) or OFFER_RESULT.fullmatch(value) is None:
        raise ValueError(f"offer result must be answered, no_answer, cancelled, "
                         f"unreachable or failed:<status>, got {value!r}")


def _one_target(instance: "Offer", attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if (instance.agent_id is None) == (instance.vendor is None):
        raise ValueError("an offer goes to exactly one agent or one vendor")
    if instance.vendor is not None and not instance.trunk:
        raise ValueError("a vendor offer names the trunk it went to")


@attrs.frozen(kw_only=True)
class Offer:
    """One finished offer of a call to one agent, or to one trunk of a vendor.

    ``result`` is ``"answered"``, ``"no_answer"`` (ring timeout), ``"failed:<status>"``
    (the far side answered an error), ``"unreachable"`` (the agent's phone sent no
    response in time, or its address was unreachable) or ``"cancelled"`` (someone
    else answered, or the caller hung up). Offers are recorded once they end, so ``ended_at`` is
    always set.
    """

    agent_id: str | None = None
    vendor: str | None = None
    trunk: str | None = attrs.field(default=None, validator=_one_target)
    offered_at: float
    ended_at: float
    result: str = attrs.field(validator=_result)

    @property
    def ring(self) -> float:
        """Seconds the agent's phone was offered the call."""
        return self.ended_at - self.offered_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id, "vendor": self.vendor, "trunk": self.trunk,
            "offered_at": epoch(self.offered_at), "offered_at_iso": iso_utc(self.offered_at),
            "ended_at": epoch(self.ended_at), "ended_at_iso": iso_utc(self.ended_at),
            "ring": epoch(self.ring),
            "result": self.result,
        }


@attrs.frozen(kw_only=True)
class Segment:
    """A stretch of the call bridged to one party (an agent or a vendor), from its
    answer to the end of that stretch (None while it goes on). Today a call has at
    most one; a transfer would end one and start the next."""

    target: Target = attrs.field(validator=attrs.validators.instance_of(Target))
    answered_at: float
    ended_at: float | None = None


def check_party(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if value != CALLER and not isinstance(value, Target):
        raise ValueError(f"{attribute.name} must be the caller or a target, got {value!r}")


@attrs.frozen(kw_only=True)
class Hold:
    """A stretch of a bridged call that ``party`` (the caller, or the bridged agent or
    vendor) held the other side, from ``start`` to ``end`` (None while it lasts)."""

    party: Target | Caller = attrs.field(validator=check_party)
    start: float
    end: float | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.end is None else self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        party = self.party
        return {"party": party if isinstance(party, str) else party.kind.value,
                "who": None if isinstance(party, str) else party.id,
                "start": epoch(self.start), "start_iso": iso_utc(self.start),
                "end": epoch(self.end), "end_iso": iso_utc(self.end)}


def _offers(value: Iterable[Offer]) -> tuple[Offer, ...]:
    return tuple(value)


def _segments(value: Iterable[Segment]) -> tuple[Segment, ...]:
    return tuple(value)


def _holds(value: Iterable[Hold]) -> tuple[Hold, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class CallRecord:
    """Everything known about one call, frozen; timestamps are epoch seconds.

    ``announced_at`` is when the announcement ended, which is also ``queued_at``.
    ``short_abandon_threshold`` is the queue's ``short_abandon`` at arrival.
    ``route`` is ``vendor`` once the call was sent to a vendor, unless an in-house
    agent answered it in the end; ``vendor`` is the last vendor it went to (None
    on the in-house route). ``overflow_reason`` is the rule that first sent it on.
    ``segments`` are the parties the caller was bridged with, in order (not part of
    the CDR, whose ``agent_id``/``vendor`` name the party of the answered segment).
    ``holds`` are the holds while bridged, in order; ``hold`` their total seconds.
    """

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
    offers: tuple[Offer, ...] = attrs.field(default=(), converter=_offers)
    qa_notice_played: bool = False
    route: Route = Route.INHOUSE
    vendor: str | None = None
    overflow_reason: str | None = None
    overflowed_at: float | None = None
    segments: tuple[Segment, ...] = attrs.field(default=(), converter=_segments)
    holds: tuple[Hold, ...] = attrs.field(default=(), converter=_holds)

    @property
    def hold(self) -> float:
        """Seconds the call spent on hold (holds still open count up to now: none, once
        the call ended, since the engine closes them then)."""
        return sum(h.seconds or 0.0 for h in self.holds)

    @property
    def wait(self) -> float | None:
        """Queue time: queued to answered (or to the end if unanswered); None if never queued."""
        if self.queued_at is None:
            return None
        end = self.answered_at if self.answered_at is not None else self.ended_at
        return None if end is None else end - self.queued_at

    @property
    def ring(self) -> float | None:
        """How long the answering agent's phone (or vendor trunk) rang; None if unanswered."""
        for offer in reversed(self.offers):
            if offer.result == "answered":
                return offer.ring
        return None

    @property
    def vendor_wait(self) -> float | None:
        """On the vendor route: from the first offer to the vendor the call ended with, to
        its answer (or the end if unanswered), the vendor's own speed of answer; else None."""
        if self.route is not Route.VENDOR or self.vendor is None:
            return None
        first = next((o.offered_at for o in self.offers if o.vendor == self.vendor), None)
        end = self.answered_at if self.answered_at is not None else self.ended_at
        return None if first is None or end is None else end - first

    @property
    def talk(self) -> float | None:
        """Answer to hang-up less the time on hold (``hold``), so that talk + hold is the
        handle time; None if unanswered or still going."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.answered_at - self.hold

    @property
    def total(self) -> float | None:
        """Arrival to hang-up; None while the call goes on."""
        return None if self.ended_at is None else self.ended_at - self.arrived_at

    @property
    def short_abandon(self) -> bool:
        """The caller left within the queue's short-abandon threshold (of the whole call)."""
        return self.outcome is Outcome.SHORT_ABANDON

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: ms-precision epoch seconds plus ISO-8601 UTC twins."""
        out: dict[str, Any] = {
            "call_id": self.call_id,
            "caller": self.caller,
            "dialed": self.dialed,
            "queue": self.queue,
            "group": self.group,
            "agent_id": self.agent_id,
            "outcome": None if self.outcome is None else self.outcome.value,
            "route": self.route.value,
            "vendor": self.vendor,
            "overflow_reason": self.overflow_reason,
        }
        for name in ("arrived_at", "announced_at", "queued_at", "overflowed_at", "answered_at",
                     "ended_at"):
            value: float | None = getattr(self, name)
            out[name] = epoch(value)
            out[f"{name}_iso"] = iso_utc(value)
        out.update(
            wait=epoch(self.wait), vendor_wait=epoch(self.vendor_wait), ring=epoch(self.ring),
            talk=epoch(self.talk), total=epoch(self.total),
            short_abandon=self.short_abandon,
            short_abandon_threshold=self.short_abandon_threshold,
            qa_notice_played=self.qa_notice_played,
            offers=[offer.to_dict() for offer in self.offers],
            hold=epoch(self.hold), holds=[h.to_dict() for h in self.holds],
        )
        return out


def epoch(value: float | None) -> float | None:
    """Epoch seconds rounded to the millisecond, as records carry them."""
    return None if value is None else round(value, 3)


def iso_utc(value: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC with milliseconds (``...T08:22:26.442Z``)."""
    if value is None:
        return None
    moment = datetime.datetime.fromtimestamp(round(value, 3), tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
