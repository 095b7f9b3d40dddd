"""A call and its legs, as the call runtime keeps them, and the table that finds them.

A :class:`Call` is a set of legs: one caller leg (we are the UAS) and any number
of other legs keyed by their :class:`Target` (we are the UAC): the agents and the
vendor it is offered to; transfer targets and supervisors later. Each leg has its
own dialog, media endpoint, :class:`LegRole` and :class:`LegState`; the state moves
only along :data:`TRANSITIONS`. :class:`CallTable` finds a call by its routing id or by the SIP
Call-ID of any of its legs. The helpers at the end turn SIP values into the
values the routing engine speaks.
"""

from __future__ import annotations

import enum
import secrets

import attrs

from ccswitch.errors import CCSwitchError
from ccswitch.media.engine import MediaLeg
from ccswitch.model import Queue
from ccswitch.recording.note import CallNote
from ccswitch.recording.session import RecordingSession
from ccswitch.routing import events as ev
from ccswitch.routing.target import CALLER, Caller, Target
from ccswitch.sip.dialog import Dialog
from ccswitch.sip.message import NameAddr, Request, SipURI
from ccswitch.sip.sdp import MediaFormat, Negotiated
from ccswitch.sip.transaction import ClientTransaction, ServerTransaction

class LegRole(enum.StrEnum):
    """What a leg is to its call. Transfer targets and supervisors join as new roles."""

    CALLER = "caller"
    AGENT = "agent"
    VENDOR = "vendor"


class LegState(enum.StrEnum):
    """Where a leg's INVITE dialog stands."""

    CALLING = "calling"  # the INVITE is out (or, for the caller, in) and unanswered
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"  # hung up, failed, or (the caller) cancelled
    CANCELLED = "cancelled"  # we withdrew the offer


_CALLING, _RINGING, _ANSWERED = LegState.CALLING, LegState.RINGING, LegState.ANSWERED
_ENDED, _CANCELLED = LegState.ENDED, LegState.CANCELLED

#: Every legal move of a leg's state. A withdrawn offer may already be answered: the
#: engine's Cancel can cross the 200 OK that is on its way to it as LegAnswered.
TRANSITIONS: dict[LegState, frozenset[LegState]] = {
    _CALLING: frozenset({_RINGING, _ANSWERED, _ENDED, _CANCELLED}),
    _RINGING: frozenset({_ANSWERED, _ENDED, _CANCELLED}),
    _ANSWERED: frozenset({_ENDED, _CANCELLED}),
    _ENDED: frozenset(),
    _CANCELLED: frozenset(),
}


class IllegalLegTransition(CCSwitchError):
    """A leg was asked to move to a state it cannot reach from where it is."""

    error_id = "calls.illegal_leg_transition"

    def __init__(self, role: LegRole, old: LegState, new: LegState) -> None:
        self.role, self.old, self.new = role, old, new
        super().__init__(f"{role} leg cannot go from {old} to {new}")


@attrs.define(kw_only=True, eq=False)
class Leg:
    """One party of a call: its INVITE, its media endpoint, its role and state."""

    role: LegRole
    invite: Request
    media: MediaLeg
    state: LegState = LegState.CALLING
    on_hold: bool = False  # its last offer said sendonly, inactive or c=0.0.0.0
    #: When it last held or resumed: silence checks count from here at the earliest, so
    #: a party that resumes is not taken for silent before its first packet is due.
    hold_changed_at: float | None = None

    def silent_since(self, fallback: float) -> float:
        """Since when this party counts as silent: its last packet, or ``fallback`` if it
        sent none, and never before its last hold or resume."""
        last = self.media.last_packet_at or fallback
        return last if self.hold_changed_at is None else max(last, self.hold_changed_at)

    @property
    def ended(self) -> bool:
        return self.state in (LegState.ENDED, LegState.CANCELLED)

    def move(self, new: LegState) -> None:
        """Go to ``new``; an illegal move raises and leaves the state as it was."""
        if new not in TRANSITIONS[self.state]:
            raise IllegalLegTransition(self.role, self.state, new)
        self.state = new


@attrs.define(kw_only=True, eq=False)
class CallerLeg(Leg):
    """The customer's leg: we are the UAS."""

    role: LegRole = LegRole.CALLER
    tx: ServerTransaction
    negotiated: Negotiated
    dialog: Dialog
    sdp: bytes  # the SDP we last sent on its dialog


@attrs.define(kw_only=True, eq=False)
class OutLeg(Leg):
    """A leg we place, to ``target`` (an in-house agent or a vendor trunk): we are the UAC."""

    target: Target
    tx: ClientTransaction | None = None
    dialog: Dialog | None = None
    authenticated: bool = False  # the INVITE was resent with credentials once
    responded: bool = False  # the far end sent some response (it is alive)
    answered_at: float = 0.0
    negotiated: Negotiated | None = None  # the codec agreed, once answered
    sdp: bytes = b""  # once answered, the SDP we last sent on its dialog (our offer at first)

    @classmethod
    def to(cls, target: Target, *, invite: Request, media: MediaLeg) -> OutLeg:
        return cls(role=LegRole(target.kind.value), target=target, invite=invite, media=media)


@attrs.define(kw_only=True, eq=False)
class Call:
    id: str
    queue: Queue
    started: float
    caller: CallerLeg
    legs: dict[Target, OutLeg] = attrs.Factory(dict)  # the offers and answered parties
    recording: RecordingSession = attrs.field(
        default=attrs.Factory(lambda self: RecordingSession(self.id), takes_self=True))
    note: CallNote | None = None  # what a crash recovery needs, from the 200 OK on

    def party_media(self, party: Target | Caller) -> MediaLeg | None:
        """The media endpoint of ``party`` (the caller, or the leg to a target), if it
        is still in the call."""
        if party == CALLER:
            return self.caller.media
        leg = self.legs.get(party) if isinstance(party, Target) else None
        return None if leg is None or leg.ended else leg.media

    def out_leg(self, sip_call_id: str) -> OutLeg | None:
        """The agent or vendor leg whose dialog has ``sip_call_id``, if any."""
        for leg in self.legs.values():
            if leg.invite.call_id == sip_call_id:
                return leg
        return None


class CallTable:
    """The calls in progress, by routing id and by the SIP Call-ID of each leg."""

    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}
        self.dialogs: dict[str, Call] = {}  # SIP Call-ID (caller's or ours) -> call

    def __len__(self) -> int:
        return len(self.calls)

    def add(self, call: Call) -> None:
        self.calls[call.id] = call
        self.dialogs[call.caller.invite.call_id] = call

    def add_leg(self, call: Call, leg: OutLeg) -> None:
        call.legs[leg.target] = leg
        self.dialogs[leg.invite.call_id] = call

    def remove(self, call_id: str) -> Call | None:
        """Forget a call and every dialog of its legs; None if it was not here."""
        call = self.calls.pop(call_id, None)
        if call is not None:
            for sip_call_id in [call.caller.invite.call_id, *(
                    leg.invite.call_id for leg in call.legs.values())]:
                self.dialogs.pop(sip_call_id, None)
        return call

    def current(self, call: Call) -> bool:
        """Whether ``call`` is still in progress (not ended, not replaced)."""
        return self.calls.get(call.id) is call


def leg_event(call: Call, leg: OutLeg, what: str) -> ev.Event:
    """The engine event for ``what`` (ringing, answered, hung_up) happening on a leg."""
    events: dict[str, type[ev.LegRinging | ev.LegAnswered | ev.LegHungUp]] = {
        "ringing": ev.LegRinging, "answered": ev.LegAnswered, "hung_up": ev.LegHungUp}
    return events[what](call_id=call.id, target=leg.target)


def routing_call_id(now: float) -> str:
    return f"{int(now * 1000):x}-{secrets.token_hex(4)}"


def caller_id(name_addr: NameAddr) -> str:
    uri = name_addr.uri
    if isinstance(uri, SipURI):
        return uri.user or uri.host
    return uri.user or str(uri)  # a tel: From gives its number, another scheme the URI


def payload_type(fmt: MediaFormat | None) -> int | None:
    return None if fmt is None else fmt.payload_type


def uri_host(host: str) -> str:
    """``host`` as it goes in a SIP URI: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
