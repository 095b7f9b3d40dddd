"""The agent and call state machines, as data.

Each table maps ``(state, event name) -> new state``. External triggers use the
event's name, with the leg's kind for leg events (``"AgentAnswered"`` for a
``LegAnswered`` of an agent, ``"VendorFailed"`` for a ``LegFailed`` of a vendor);
triggers the engine raises itself use lower-case names (``"offer"``, ``"miss"``,
``"round_over"``). ``transition``
looks an entry up and raises :class:`IllegalTransition` when there is none, so
the caller's state is never touched by a refused event.
"""

from __future__ import annotations

import enum
from typing import Mapping, TypeVar

from ccswitch.errors import IllegalTransition


class AgentState(enum.StrEnum):
    """Where an in-house agent stands (the values are metric labels)."""

    LOGGED_OUT = "logged_out"
    READY = "ready"
    RESERVED = "reserved"  # being offered a call: their phone rings
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    NOT_READY = "not_ready"
    REMOTE = "remote"  # reserved or busy on another node (shared state store)
    UNREACHABLE = "unreachable"  # its phone sent no response: out of rotation, probed


class CallState(enum.StrEnum):
    """Where a customer call stands."""

    ANNOUNCING = "announcing"
    QUEUED = "queued"
    RINGING = "ringing"  # offered to in-house agents
    OVERFLOW = "overflow"  # offered to a vendor trunk (and maybe in-house agents too)
    BRIDGED = "bridged"
    CLOSING = "closing"  # max wait ran out: final announcement, then hang-up
    ENDED = "ended"


class VendorHealth(enum.StrEnum):
    """Whether a vendor is in rotation."""

    UP = "up"
    DOWN = "down"  # out of rotation, cooling down
    PROBING = "probing"  # cool-down over, out of rotation until an OPTIONS probe succeeds


S = TypeVar("S", AgentState, CallState, VendorHealth)

A = AgentState
C = CallState

#: Agent presence and offers. Pause/logout while busy (reserved, on a call,
#: wrapping up) keep the state: the engine remembers them and applies them when
#: the agent frees up. ``AgentReady`` while reserved or on a call also keeps the
#: state and forgets such a remembered pause/logout; while wrapping up it ends
#: the wrap-up at once.
AGENT_TRANSITIONS: Mapping[tuple[AgentState, str], AgentState] = {
    (A.LOGGED_OUT, "AgentLogin"): A.READY,
    (A.NOT_READY, "AgentLogin"): A.READY,
    (A.LOGGED_OUT, "AgentReady"): A.READY,
    (A.NOT_READY, "AgentReady"): A.READY,
    (A.WRAP_UP, "AgentReady"): A.READY,
    (A.RESERVED, "AgentReady"): A.RESERVED,
    (A.ON_CALL, "AgentReady"): A.ON_CALL,
    (A.READY, "AgentPause"): A.NOT_READY,
    (A.RESERVED, "AgentPause"): A.RESERVED,
    (A.ON_CALL, "AgentPause"): A.ON_CALL,
    (A.WRAP_UP, "AgentPause"): A.WRAP_UP,
    (A.READY, "AgentLogout"): A.LOGGED_OUT,
    (A.NOT_READY, "AgentLogout"): A.LOGGED_OUT,
    (A.RESERVED, "AgentLogout"): A.RESERVED,
    (A.ON_CALL, "AgentLogout"): A.ON_CALL,
    (A.WRAP_UP, "AgentLogout"): A.WRAP_UP,
    (A.READY, "offer"): A.RESERVED,
    (A.RESERVED, "AgentAnswered"): A.ON_CALL,
    (A.RESERVED, "cancel"): A.READY,  # another agent answered, or the caller left
    (A.RESERVED, "miss"): A.READY,  # no answer or failed: to the back of the line
    (A.RESERVED, "miss_limit"): A.NOT_READY,  # max_misses offers missed in a row
    (A.ON_CALL, "call_end"): A.WRAP_UP,
    (A.ON_CALL, "call_end_no_wrap_up"): A.READY,  # queue has wrap_up 0
    (A.WRAP_UP, "wrap_up_done"): A.READY,
    # Shared state: another node holds the agent. Presence changes meanwhile wait, as
    # for an agent busy here, and apply when the other node frees it.
    (A.READY, "remote_busy"): A.REMOTE,
    (A.RESERVED, "taken"): A.REMOTE,  # our reservation was refused: another node has it
    (A.REMOTE, "remote_free"): A.READY,
    (A.REMOTE, "AgentLogin"): A.REMOTE,
    (A.REMOTE, "AgentReady"): A.REMOTE,
    (A.REMOTE, "AgentPause"): A.REMOTE,
    (A.REMOTE, "AgentLogout"): A.REMOTE,
    # A dead contact: no response to an offer in time, or its INVITE could not be sent. From READY
    # when the offer was already cancelled (the caller left) before the check ran. Ready
    # and login keep it out of rotation (the phone is still dead); pause and logout apply.
    (A.RESERVED, "unreachable"): A.UNREACHABLE,
    (A.READY, "unreachable"): A.UNREACHABLE,
    (A.UNREACHABLE, "reachable"): A.READY,  # the phone answered something (a probe)
    (A.UNREACHABLE, "AgentLogin"): A.UNREACHABLE,
    (A.UNREACHABLE, "AgentReady"): A.UNREACHABLE,
    (A.UNREACHABLE, "AgentPause"): A.NOT_READY,
    (A.UNREACHABLE, "AgentLogout"): A.LOGGED_OUT,
}

#: A customer call, from answer to the end. While a vendor has the call
#: (OVERFLOW), in-house agents may be offered it too (the queue's
#: ``inhouse_takeover``); whoever answers first gets it.
CALL_TRANSITIONS: Mapping[tuple[CallState, str], CallState] = {
    (C.ANNOUNCING, "AnnouncementFinished"): C.QUEUED,
    (C.QUEUED, "offer"): C.RINGING,
    (C.QUEUED, "overflow"): C.OVERFLOW,
    (C.RINGING, "overflow"): C.OVERFLOW,  # max wait: the in-house offers are withdrawn first
    (C.OVERFLOW, "offer"): C.OVERFLOW,
    (C.OVERFLOW, "AgentRinging"): C.OVERFLOW,
    (C.OVERFLOW, "AgentFailed"): C.OVERFLOW,
    (C.OVERFLOW, "round_over"): C.OVERFLOW,
    (C.OVERFLOW, "ring_timeout"): C.OVERFLOW,
    (C.OVERFLOW, "AgentAnswered"): C.BRIDGED,
    (C.OVERFLOW, "VendorRinging"): C.OVERFLOW,
    (C.OVERFLOW, "VendorFailed"): C.OVERFLOW,  # the next trunk or vendor is tried
    (C.OVERFLOW, "VendorAnswered"): C.BRIDGED,
    (C.OVERFLOW, "vendors_exhausted"): C.QUEUED,  # back to waiting for in-house agents
    (C.OVERFLOW, "vendors_exhausted_ringing"): C.RINGING,  # ... who are already ringing
    (C.QUEUED, "close"): C.CLOSING,
    (C.RINGING, "close"): C.CLOSING,
    (C.OVERFLOW, "close"): C.CLOSING,
    (C.CLOSING, "AnnouncementFinished"): C.ENDED,
    (C.RINGING, "AgentRinging"): C.RINGING,
    (C.RINGING, "AgentFailed"): C.RINGING,  # one offer of the round ended
    (C.RINGING, "unreachable"): C.RINGING,  # ... or its phone is dead
    (C.OVERFLOW, "unreachable"): C.OVERFLOW,
    (C.RINGING, "round_over"): C.QUEUED,  # every offer of the round ended unanswered
    (C.RINGING, "ring_timeout"): C.QUEUED,
    (C.RINGING, "AgentAnswered"): C.BRIDGED,
    (C.ANNOUNCING, "CallerHungUp"): C.ENDED,
    (C.QUEUED, "CallerHungUp"): C.ENDED,
    (C.RINGING, "CallerHungUp"): C.ENDED,
    (C.OVERFLOW, "CallerHungUp"): C.ENDED,
    (C.CLOSING, "CallerHungUp"): C.ENDED,
    (C.BRIDGED, "CallerHungUp"): C.ENDED,
    (C.BRIDGED, "AgentHungUp"): C.ENDED,
    (C.BRIDGED, "VendorHungUp"): C.ENDED,
}

V = VendorHealth

#: A vendor's health. ``failure`` is a failed call attempt (5xx, 408, ring
#: timeout) or a failed OPTIONS probe; ``failure_limit`` is the one that reaches
#: the vendor's ``failures`` in a row.
VENDOR_TRANSITIONS: Mapping[tuple[VendorHealth, str], VendorHealth] = {
    (V.UP, "success"): V.UP,
    (V.UP, "failure"): V.UP,
    (V.UP, "failure_limit"): V.DOWN,
    (V.DOWN, "success"): V.DOWN,  # a late answer does not cut the cool-down short
    (V.DOWN, "failure"): V.DOWN,
    (V.DOWN, "failure_limit"): V.DOWN,
    (V.DOWN, "cooldown_over"): V.PROBING,
    (V.DOWN, "cooldown_over_no_probes"): V.UP,
    (V.PROBING, "success"): V.UP,
    (V.PROBING, "failure"): V.DOWN,
    (V.PROBING, "failure_limit"): V.DOWN,
    # Evidence the trunks are dead (a dead answered leg, a probe round nobody answered);
    # a vendor already DOWN is not told again (Vendors.lost)
    (V.UP, "lost"): V.DOWN,
    (V.PROBING, "lost"): V.DOWN,
}


def transition(machine: str, table: Mapping[tuple[S, str], S], state: S, event: str) -> S:
    """The state ``event`` leads to from ``state``; raises IllegalTransition if none."""
    try:
        return table[(state, event)]
    except KeyError:
        raise IllegalTransition(machine, state.value, event) from None

