"""Events the routing engine consumes: frozen, keyword-only values checked when built.

Adapters (the call runtime, the agent API, the shared state) translate the outside
world into these; the engine never sees SIP messages or sockets.
"""

from __future__ import annotations

from typing import Any

import attrs

from ccswitch.routing.target import CALLER, Caller, Target
from ccswitch.routing.timers import TIMER_KINDS, TimerId


def _non_empty(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string, got {value!r}")


def _text(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a string, got {value!r}")


def _sip_status(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 699:
        raise ValueError(f"{attribute.name} must be a SIP status code (100-699), got {value!r}")


@attrs.frozen(kw_only=True)
class Event:
    """Base of every routing event."""


# -- call events (from the caller's leg and the agents' and vendors' legs) ---


@attrs.frozen(kw_only=True)
class CallRejected(Event):
    """A caller routed to ``queue`` was refused before it got there (over the call
    limits, no SDP offer, no media port): the engine returns its record at once, outcome
    ``rejected``. ``reason`` says why, for the log."""

    call_id: str = attrs.field(validator=_non_empty)
    caller: str = attrs.field(validator=_text)
    dialed: str = attrs.field(validator=_text)
    queue: str = attrs.field(validator=_non_empty)
    reason: str = attrs.field(validator=_non_empty)


@attrs.frozen(kw_only=True)
class CallArrived(Event):
    """A caller was accepted for ``queue`` (the dialplan already matched ``dialed``)."""

    call_id: str = attrs.field(validator=_non_empty)
    caller: str = attrs.field(validator=_text)
    dialed: str = attrs.field(validator=_text)
    queue: str = attrs.field(validator=_non_empty)


@attrs.frozen(kw_only=True)
class AnnouncementFinished(Event):
    """The caller heard the whole announcement (the QA notice)."""

    call_id: str = attrs.field(validator=_non_empty)


@attrs.frozen(kw_only=True)
class CallerHungUp(Event):
    """The caller left (BYE, CANCEL, or no ACK)."""

    call_id: str = attrs.field(validator=_non_empty)


def _party(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, Target) and value != CALLER:
        raise ValueError(f"{attribute.name} must be a Target or {CALLER!r}, got {value!r}")


@attrs.frozen(kw_only=True)
class MediaTimedOut(Event):
    """A party of the call (``leg``: the caller, or an agent or vendor) sent no RTP for
    too long."""

    call_id: str = attrs.field(validator=_non_empty)
    leg: Target | Caller = attrs.field(validator=_party)


@attrs.frozen(kw_only=True)
class LegHeld(Event):
    """A party of the call (``party``: the caller, or an agent or vendor) put the other
    side on hold (a re-INVITE or UPDATE offering sendonly, inactive or c=0.0.0.0)."""

    call_id: str = attrs.field(validator=_non_empty)
    party: Target | Caller = attrs.field(validator=_party)


@attrs.frozen(kw_only=True)
class LegResumed(Event):
    """The party that held the call took it back (an offer to receive media again)."""

    call_id: str = attrs.field(validator=_non_empty)
    party: Target | Caller = attrs.field(validator=_party)


@attrs.frozen(kw_only=True)
class LegEvent(Event):
    """Something happened on the leg of a call offered to ``target`` (agent or vendor)."""

    call_id: str = attrs.field(validator=_non_empty)
    target: Target = attrs.field(validator=attrs.validators.instance_of(Target))


@attrs.frozen(kw_only=True)
class LegRinging(LegEvent):
    """The offered agent's phone or vendor trunk is ringing (a 18x arrived)."""


@attrs.frozen(kw_only=True)
class LegAnswered(LegEvent):
    """The offered agent or vendor answered (2xx with usable media)."""


@attrs.frozen(kw_only=True)
class LegFailed(LegEvent):
    """An offer ended without an answer: a final error status from the target's side
    (a vendor trunk that never answered: 408)."""

    status: int = attrs.field(validator=_sip_status)


@attrs.frozen(kw_only=True)
class LegHungUp(LegEvent):
    """The bridged agent or vendor hung up."""


@attrs.frozen(kw_only=True)
class AgentResponded(Event):
    """The agent's phone sent a SIP response (any status, to an offer or a probe): its
    contact is alive."""

    agent_id: str = attrs.field(validator=_non_empty)


@attrs.frozen(kw_only=True)
class AgentSendFailed(Event):
    """An offer's INVITE could not be sent to the agent's phone (no route, bad address,
    socket error)."""

    agent_id: str = attrs.field(validator=_non_empty)


# -- timers ---------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TimerFired(Event):
    """A timer the engine asked for (``StartTimer``) expired."""

    timer_id: TimerId = attrs.field(validator=attrs.validators.instance_of(TIMER_KINDS))


# -- agent presence -------------------------------------------------------


@attrs.frozen(kw_only=True)
class AgentLogin(Event):
    """An agent logs in and is ready for calls."""

    agent_id: str = attrs.field(validator=_non_empty)


@attrs.frozen(kw_only=True)
class AgentLogout(Event):
    """An agent logs out (deferred until a call in progress is over)."""

    agent_id: str = attrs.field(validator=_non_empty)


@attrs.frozen(kw_only=True)
class AgentReady(Event):
    """An agent is ready again (from not-ready, or ends wrap-up early)."""

    agent_id: str = attrs.field(validator=_non_empty)


@attrs.frozen(kw_only=True)
class AgentPause(Event):
    """An agent goes not-ready (deferred until a call in progress is over)."""

    agent_id: str = attrs.field(validator=_non_empty)


# -- vendors (outsourced groups behind SIP trunks) ----------------------------


@attrs.frozen(kw_only=True)
class VendorProbed(Event):
    """An OPTIONS probe round of a vendor's trunks ended: ``ok`` if any trunk is alive;
    ``answered`` False if no trunk answered anything within the vendor's probe_timeout."""

    vendor: str = attrs.field(validator=_non_empty)
    ok: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    answered: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))

    def __attrs_post_init__(self) -> None:
        if self.ok and not self.answered:
            raise ValueError("a probe round nobody answered cannot be ok")


@attrs.frozen(kw_only=True)
class VendorLegLost(Event):
    """The answered vendor leg of a call is dead (``cause``: why the adapter thinks so,
    e.g. ``dead_media``: it was sending RTP and stopped)."""

    call_id: str = attrs.field(validator=_non_empty)
    vendor: str = attrs.field(validator=_non_empty)
    cause: str = attrs.field(validator=_non_empty)


# -- shared state (several nodes) ---------------------------------------------


@attrs.frozen(kw_only=True)
class PresenceSet(Event):
    """Another node (or the saved state) says where the agent should be: logged_out,
    ready or not_ready; applied through login/pause/logout (deferred while busy)."""

    agent_id: str = attrs.field(validator=_non_empty)
    presence: str = attrs.field(validator=attrs.validators.in_(
        ("logged_out", "ready", "not_ready")))


@attrs.frozen(kw_only=True)
class AgentBusyElsewhere(Event):
    """Another node reserved the agent: do not offer it here until it is free."""

    agent_id: str = attrs.field(validator=_non_empty)


@attrs.frozen(kw_only=True)
class AgentFreeElsewhere(Event):
    """The other node's hold on the agent ended (released, or expired with its node)."""

    agent_id: str = attrs.field(validator=_non_empty)
    idle_since: float | None = None


@attrs.frozen(kw_only=True)
class ReservationDecided(Event):
    """The shared store's answer to a ``Reserve``: granted (ring now) or refused (the
    agent is taken, or the vendor is full over all nodes)."""

    call_id: str = attrs.field(validator=_non_empty)
    target: Target = attrs.field(validator=attrs.validators.instance_of(Target))
    granted: bool = attrs.field(validator=attrs.validators.instance_of(bool))


@attrs.frozen(kw_only=True)
class AgentTaken(Event):
    """The shared store refused our reservation of an offered agent (another node holds
    it, or an older caller elsewhere is owed it): the offer is withdrawn, not missed."""

    call_id: str = attrs.field(validator=_non_empty)
    agent_id: str = attrs.field(validator=_non_empty)


@attrs.frozen(kw_only=True)
class VendorFull(Event):
    """The shared store refused a vendor channel (max_channels reached over all nodes)."""

    call_id: str = attrs.field(validator=_non_empty)
    vendor: str = attrs.field(validator=_non_empty)


@attrs.frozen(kw_only=True)
class NodeStarted(Event):
    """The node is up and can send SIP: start the vendor probes."""
