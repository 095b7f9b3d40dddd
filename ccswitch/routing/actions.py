"""Actions the routing engine asks its adapter to perform: frozen, keyword-only values.

Call actions (subclasses of :class:`CallAction`) act on a call's legs or media;
the others (timers, :class:`CallFinished`, state changes, vendor probes, the
overflow notices and the engine's log lines, :class:`Note`) are not about a live
leg, and the adapter handles each of them by type before it looks for a call.

:data:`Action` is the closed union of every concrete action rather than a base
class, so a type checker narrows it: once the non-call actions are ruled out by
``isinstance``, what is left has ``call_id``. Every action also derives from
:class:`BaseAction`, the class to use in ``isinstance`` checks for "any action".
"""

from __future__ import annotations

import enum
from typing import Any, TypeAlias, Union

import attrs

from ccswitch.routing.record import CallRecord, check_party
from ccswitch.routing.states import AgentState, VendorHealth
from ccswitch.routing.target import Caller, Target
from ccswitch.routing.timers import TIMER_KINDS, TimerId

_instance_of = attrs.validators.instance_of


def _non_empty(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string, got {value!r}")


def _delay(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{attribute.name} must be a number >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class BaseAction:
    """Base class of every routing action."""


# -- call actions ---------------------------------------------------------


@attrs.frozen(kw_only=True)
class CallAction(BaseAction):
    """An action on one call's legs or media."""

    call_id: str = attrs.field(validator=_non_empty)


@attrs.frozen(kw_only=True)
class AnswerCaller(CallAction):
    """Answer the caller's INVITE (200 OK)."""


@attrs.frozen(kw_only=True)
class StartRecording(CallAction):
    """Start recording the call (once): right after ``AnswerCaller`` with
    ``recordings.start: answer``, else (``after_notice``, the default) once the caller
    heard the whole announcement and is queued."""


@attrs.frozen(kw_only=True)
class PlayAnnouncement(CallAction):
    """Play the queue announcement once; its end comes back as AnnouncementFinished."""

    path: str = attrs.field(validator=_non_empty)


@attrs.frozen(kw_only=True)
class StartMusicOnHold(CallAction):
    """Loop music on hold to the caller (``path`` None: silence)."""

    path: str | None = attrs.field(
        validator=attrs.validators.optional(_non_empty))


@attrs.frozen(kw_only=True)
class StopMusicOnHold(CallAction):
    """Stop whatever the caller hears."""


@attrs.frozen(kw_only=True)
class StartHoldMusic(CallAction):
    """Loop music on hold (``path`` None: silence) to ``party`` (the caller, or the
    bridged agent or vendor), whom the other side holds; nothing is relayed to it
    meanwhile."""

    party: Target | Caller = attrs.field(validator=check_party)
    path: str | None = attrs.field(validator=attrs.validators.optional(_non_empty))


@attrs.frozen(kw_only=True)
class StopHoldMusic(CallAction):
    """The hold of ``party`` is over: stop its music and relay to it again."""

    party: Target | Caller = attrs.field(validator=check_party)


@attrs.frozen(kw_only=True)
class LegAction(CallAction):
    """An action on the leg of a call offered to ``target`` (an agent or a vendor)."""

    target: Target = attrs.field(validator=_instance_of(Target))


@attrs.frozen(kw_only=True)
class Ring(LegAction):
    """Offer the call to the target: INVITE ``uri`` (an agent's phone, a vendor's trunk)."""

    uri: str = attrs.field(validator=_non_empty)


@attrs.frozen(kw_only=True)
class Reserve(LegAction):
    """With shared state: hold the agent (or one of the vendor's channels) for the call
    in the shared store before ringing it; the answer comes back as
    ``ReservationDecided``, and the ``Ring`` only then."""


@attrs.frozen(kw_only=True)
class Cancel(LegAction):
    """Withdraw an offer that is still ringing (CANCEL)."""


@attrs.frozen(kw_only=True)
class Bridge(LegAction):
    """Connect the caller's media to the answering target's."""


@attrs.frozen(kw_only=True)
class Hangup(LegAction):
    """Hang up the bridged target (BYE)."""


@attrs.frozen(kw_only=True)
class HangupCaller(CallAction):
    """Hang up the caller (BYE)."""


# -- other actions --------------------------------------------------------


@attrs.frozen(kw_only=True)
class ProbeVendor(BaseAction):
    """Send OPTIONS to each trunk; the result comes back as VendorProbed, at the latest
    ``timeout`` seconds later (a trunk silent by then counts as not answering)."""

    vendor: str = attrs.field(validator=_non_empty)
    uris: tuple[str, ...] = attrs.field(validator=attrs.validators.min_len(1))
    timeout: float = attrs.field(validator=attrs.validators.gt(0))


@attrs.frozen(kw_only=True)
class ProbeAgent(BaseAction):
    """Send OPTIONS to an unreachable agent's phone; any response comes back as
    AgentResponded."""

    agent_id: str = attrs.field(validator=_non_empty)
    uri: str = attrs.field(validator=_non_empty)


@attrs.frozen(kw_only=True)
class VendorHealthChanged(BaseAction):
    """A vendor went in or out of rotation."""

    vendor: str = attrs.field(validator=_non_empty)
    old: VendorHealth = attrs.field(validator=_instance_of(VendorHealth))
    new: VendorHealth = attrs.field(validator=_instance_of(VendorHealth))


@attrs.frozen(kw_only=True)
class OverflowFired(BaseAction):
    """An overflow rule sent a call to a vendor (once per call and vendor). ``first``: the
    call's first overflow, whose ``reason`` is the record's ``overflow_reason``."""

    call_id: str = attrs.field(validator=_non_empty)
    queue: str = attrs.field(validator=_non_empty)
    vendor: str = attrs.field(validator=_non_empty)
    reason: str = attrs.field(validator=_non_empty)
    first: bool = attrs.field(validator=_instance_of(bool))


@attrs.frozen(kw_only=True)
class OverflowUnavailable(BaseAction):
    """A rule wanted a vendor that could not take the call: ``cause`` is full, down,
    closed or failed (counted once per call, vendor and cause)."""

    call_id: str = attrs.field(validator=_non_empty)
    queue: str = attrs.field(validator=_non_empty)
    vendor: str = attrs.field(validator=_non_empty)
    cause: str = attrs.field(validator=attrs.validators.in_(("full", "down", "closed",
                                                               "failed")))



@attrs.frozen(kw_only=True)
class StartTimer(BaseAction):
    """Fire ``TimerFired(timer_id)`` after ``delay`` seconds (replaces a timer of that id)."""

    timer_id: TimerId = attrs.field(validator=_instance_of(TIMER_KINDS))
    delay: float = attrs.field(validator=_delay)


@attrs.frozen(kw_only=True)
class CancelTimer(BaseAction):
    """Cancel a timer if it is still pending."""

    timer_id: TimerId = attrs.field(validator=_instance_of(TIMER_KINDS))


@attrs.frozen(kw_only=True)
class CallFinished(BaseAction):
    """The call is over and forgotten by the engine; ``record`` is final (frozen)."""

    record: CallRecord = attrs.field(validator=_instance_of(CallRecord))


@attrs.frozen(kw_only=True)
class AgentStateChanged(BaseAction):
    """An agent changed state; one action per group the agent belongs to."""

    agent_id: str = attrs.field(validator=_non_empty)
    group: str = attrs.field(validator=_non_empty)
    old: AgentState = attrs.field(validator=_instance_of(AgentState))
    new: AgentState = attrs.field(validator=_instance_of(AgentState))


class NoteLevel(enum.StrEnum):
    """How much a :class:`Note` matters (the names of twisted.logger's levels)."""

    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


@attrs.frozen(kw_only=True)
class Note(BaseAction):
    """A line for the adapter's log: the engine does no I/O, so it hands its log lines
    over as data. ``format`` is a twisted.logger format over ``fields`` (name, value)
    pairs (``call_id``, ``queue``, ``agent``, ``vendor``, ...)."""

    level: NoteLevel = attrs.field(validator=_instance_of(NoteLevel))
    format: str = attrs.field(validator=_non_empty)
    fields: tuple[tuple[str, Any], ...] = ()


def note(level: NoteLevel, format: str, **fields: Any) -> Note:
    """A :class:`Note` with ``fields`` given as keywords."""
    return Note(level=level, format=format, fields=tuple(fields.items()))


Action: TypeAlias = Union[
    AnswerCaller, StartRecording, PlayAnnouncement, StartMusicOnHold, StopMusicOnHold,
    StartHoldMusic, StopHoldMusic, Ring, Reserve, Cancel, Bridge, Hangup, HangupCaller,
    StartTimer, CancelTimer, CallFinished, AgentStateChanged,
    ProbeVendor, ProbeAgent, VendorHealthChanged, OverflowFired, OverflowUnavailable, Note,
]
