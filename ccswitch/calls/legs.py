"""A call and its legs, as the call runtime keeps them, and the table that finds them.

A :class:`Call` has one caller leg (we are the UAS) and, while it is offered to
agents or a vendor, one :class:`OutLeg` per offer (we are the UAC), keyed by the
offer's target. :class:`CallTable` finds a call by its routing id or by the SIP
Call-ID of any of its legs. The helpers at the end turn SIP values into the
values the routing engine speaks.
"""

from __future__ import annotations

import secrets

import attrs

from ccswitch.media.engine import MediaLeg
from ccswitch.model import Queue
from ccswitch.recording.note import CallNote
from ccswitch.recording.recorder import CallRecorder
from ccswitch.routing import events as ev
from ccswitch.routing.target import Target, TargetKind
from ccswitch.sip.dialog import Dialog
from ccswitch.sip.message import NameAddr, Request, SipURI
from ccswitch.sip.sdp import MediaFormat, Negotiated
from ccswitch.sip.transaction import ClientTransaction, ServerTransaction

AGENT = "agent"
VENDOR = "vendor"


@attrs.define(kw_only=True, eq=False)
class CallerLeg:
    invite: Request
    tx: ServerTransaction
    media: MediaLeg
    negotiated: Negotiated
    dialog: Dialog
    sdp: bytes
    ended: bool = False
    on_hold: bool = False  # the caller's last re-INVITE said sendonly or inactive


@attrs.define(kw_only=True, eq=False)
class OutLeg:
    """A leg we place: to an in-house agent (``kind`` agent) or a vendor trunk (vendor)."""

    kind: str
    target: str  # the agent id or the vendor name
    invite: Request
    media: MediaLeg
    tx: ClientTransaction | None = None
    dialog: Dialog | None = None
    state: str = "calling"  # calling -> ringing -> answered -> ended | cancelled
    authenticated: bool = False  # the INVITE was resent with credentials once
    responded: bool = False  # the far end sent some response (it is alive)
    answered_at: float = 0.0

    @property
    def key(self) -> str:
        return leg_key(self.kind, self.target)


def leg_key(kind: str, target: str) -> str:
    """Where a call keeps a leg: agent ids as they are, vendors as ``vendor:<name>``."""
    return target if kind == AGENT else f"{VENDOR}:{target}"


@attrs.define(kw_only=True, eq=False)
class Call:
    id: str
    queue: Queue
    started: float
    caller: CallerLeg
    legs: dict[str, OutLeg] = attrs.Factory(dict)
    recorder: CallRecorder | None = None
    recording_error: str | None = None
    recording_pauses: list[list[float | None]] = attrs.Factory(list)  # [from, to] epoch s
    recording_started: float | None = None
    note: CallNote | None = None  # what a crash recovery needs, from the 200 OK on

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
        call.legs[leg.key] = leg
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


def action_key(target: Target) -> str:
    return leg_key(target.kind, target.id)


def leg_target(leg: OutLeg) -> Target:
    return Target(TargetKind(leg.kind), leg.target)


def leg_event(call: Call, leg: OutLeg, what: str) -> ev.Event:
    """The engine event for ``what`` (ringing, answered, hung_up) happening on a leg."""
    events: dict[str, type[ev.LegRinging | ev.LegAnswered | ev.LegHungUp]] = {
        "ringing": ev.LegRinging, "answered": ev.LegAnswered, "hung_up": ev.LegHungUp}
    return events[what](call_id=call.id, target=leg_target(leg))


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
