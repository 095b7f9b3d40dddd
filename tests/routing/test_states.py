"""The agent and call state machines: every legal transition, and illegal ones refused."""

from __future__ import annotations

import itertools

import pytest

from ccswitch.errors import CCSwitchError, IllegalTransition
from ccswitch.routing.states import (
    AGENT_TRANSITIONS, CALL_TRANSITIONS, VENDOR_TRANSITIONS, AgentState, CallState, VendorHealth,
    transition,
)

AGENT_EVENTS = sorted({event for _, event in AGENT_TRANSITIONS})
CALL_EVENTS = sorted({event for _, event in CALL_TRANSITIONS})

AGENT_ILLEGAL = [(s, e) for s, e in itertools.product(AgentState, AGENT_EVENTS)
                 if (s, e) not in AGENT_TRANSITIONS]
CALL_ILLEGAL = [(s, e) for s, e in itertools.product(CallState, CALL_EVENTS)
                if (s, e) not in CALL_TRANSITIONS]
VENDOR_EVENTS = sorted({event for _, event in VENDOR_TRANSITIONS})
VENDOR_ILLEGAL = [(s, e) for s, e in itertools.product(VendorHealth, VENDOR_EVENTS)
                  if (s, e) not in VENDOR_TRANSITIONS]

EXPECTED_AGENT = {
    (AgentState.LOGGED_OUT, "AgentLogin"): AgentState.READY,
    (AgentState.NOT_READY, "AgentLogin"): AgentState.READY,
    (AgentState.LOGGED_OUT, "AgentReady"): AgentState.READY,
    (AgentState.NOT_READY, "AgentReady"): AgentState.READY,
    (AgentState.WRAP_UP, "AgentReady"): AgentState.READY,
    (AgentState.RESERVED, "AgentReady"): AgentState.RESERVED,
    (AgentState.ON_CALL, "AgentReady"): AgentState.ON_CALL,
    (AgentState.READY, "AgentPause"): AgentState.NOT_READY,
    (AgentState.RESERVED, "AgentPause"): AgentState.RESERVED,
    (AgentState.ON_CALL, "AgentPause"): AgentState.ON_CALL,
    (AgentState.WRAP_UP, "AgentPause"): AgentState.WRAP_UP,
    (AgentState.READY, "AgentLogout"): AgentState.LOGGED_OUT,
    (AgentState.NOT_READY, "AgentLogout"): AgentState.LOGGED_OUT,
    (AgentState.RESERVED, "AgentLogout"): AgentState.RESERVED,
    (AgentState.ON_CALL, "AgentLogout"): AgentState.ON_CALL,
    (AgentState.WRAP_UP, "AgentLogout"): AgentState.WRAP_UP,
    (AgentState.READY, "offer"): AgentState.RESERVED,
    (AgentState.RESERVED, "AgentAnswered"): AgentState.ON_CALL,
    (AgentState.RESERVED, "cancel"): AgentState.READY,
    (AgentState.RESERVED, "miss"): AgentState.READY,
    (AgentState.RESERVED, "miss_limit"): AgentState.NOT_READY,
    (AgentState.ON_CALL, "call_end"): AgentState.WRAP_UP,
    (AgentState.ON_CALL, "call_end_no_wrap_up"): AgentState.READY,
    (AgentState.WRAP_UP, "wrap_up_done"): AgentState.READY,
    (AgentState.READY, "remote_busy"): AgentState.REMOTE,
    (AgentState.RESERVED, "taken"): AgentState.REMOTE,
    (AgentState.REMOTE, "remote_free"): AgentState.READY,
    (AgentState.REMOTE, "AgentLogin"): AgentState.REMOTE,
    (AgentState.REMOTE, "AgentReady"): AgentState.REMOTE,
    (AgentState.REMOTE, "AgentPause"): AgentState.REMOTE,
    (AgentState.REMOTE, "AgentLogout"): AgentState.REMOTE,
    (AgentState.RESERVED, "unreachable"): AgentState.UNREACHABLE,
    (AgentState.READY, "unreachable"): AgentState.UNREACHABLE,
    (AgentState.UNREACHABLE, "reachable"): AgentState.READY,
    (AgentState.UNREACHABLE, "AgentLogin"): AgentState.UNREACHABLE,
    (AgentState.UNREACHABLE, "AgentReady"): AgentState.UNREACHABLE,
    (AgentState.UNREACHABLE, "AgentPause"): AgentState.NOT_READY,
    (AgentState.UNREACHABLE, "AgentLogout"): AgentState.LOGGED_OUT,
}

EXPECTED_CALL = {
    (CallState.ANNOUNCING, "AnnouncementFinished"): CallState.QUEUED,
    (CallState.QUEUED, "offer"): CallState.RINGING,
    (CallState.RINGING, "AgentRinging"): CallState.RINGING,
    (CallState.RINGING, "AgentFailed"): CallState.RINGING,
    (CallState.RINGING, "unreachable"): CallState.RINGING,
    (CallState.OVERFLOW, "unreachable"): CallState.OVERFLOW,
    (CallState.RINGING, "round_over"): CallState.QUEUED,
    (CallState.RINGING, "ring_timeout"): CallState.QUEUED,
    (CallState.RINGING, "AgentAnswered"): CallState.BRIDGED,
    (CallState.ANNOUNCING, "CallerHungUp"): CallState.ENDED,
    (CallState.QUEUED, "CallerHungUp"): CallState.ENDED,
    (CallState.RINGING, "CallerHungUp"): CallState.ENDED,
    (CallState.BRIDGED, "CallerHungUp"): CallState.ENDED,
    (CallState.BRIDGED, "AgentHungUp"): CallState.ENDED,
    # vendors
    (CallState.QUEUED, "overflow"): CallState.OVERFLOW,
    (CallState.RINGING, "overflow"): CallState.OVERFLOW,
    (CallState.OVERFLOW, "offer"): CallState.OVERFLOW,
    (CallState.OVERFLOW, "AgentRinging"): CallState.OVERFLOW,
    (CallState.OVERFLOW, "AgentFailed"): CallState.OVERFLOW,
    (CallState.OVERFLOW, "round_over"): CallState.OVERFLOW,
    (CallState.OVERFLOW, "ring_timeout"): CallState.OVERFLOW,
    (CallState.OVERFLOW, "AgentAnswered"): CallState.BRIDGED,
    (CallState.OVERFLOW, "VendorRinging"): CallState.OVERFLOW,
    (CallState.OVERFLOW, "VendorFailed"): CallState.OVERFLOW,
    (CallState.OVERFLOW, "VendorAnswered"): CallState.BRIDGED,
    (CallState.OVERFLOW, "vendors_exhausted"): CallState.QUEUED,
    (CallState.OVERFLOW, "vendors_exhausted_ringing"): CallState.RINGING,
    (CallState.OVERFLOW, "CallerHungUp"): CallState.ENDED,
    (CallState.BRIDGED, "VendorHungUp"): CallState.ENDED,
    # max wait
    (CallState.QUEUED, "close"): CallState.CLOSING,
    (CallState.RINGING, "close"): CallState.CLOSING,
    (CallState.OVERFLOW, "close"): CallState.CLOSING,
    (CallState.CLOSING, "AnnouncementFinished"): CallState.ENDED,
    (CallState.CLOSING, "CallerHungUp"): CallState.ENDED,
}

EXPECTED_VENDOR = {
    (VendorHealth.UP, "success"): VendorHealth.UP,
    (VendorHealth.UP, "failure"): VendorHealth.UP,
    (VendorHealth.UP, "failure_limit"): VendorHealth.DOWN,
    (VendorHealth.DOWN, "success"): VendorHealth.DOWN,
    (VendorHealth.DOWN, "failure"): VendorHealth.DOWN,
    (VendorHealth.DOWN, "failure_limit"): VendorHealth.DOWN,
    (VendorHealth.DOWN, "cooldown_over"): VendorHealth.PROBING,
    (VendorHealth.DOWN, "cooldown_over_no_probes"): VendorHealth.UP,
    (VendorHealth.PROBING, "success"): VendorHealth.UP,
    (VendorHealth.PROBING, "failure"): VendorHealth.DOWN,
    (VendorHealth.PROBING, "failure_limit"): VendorHealth.DOWN,
    (VendorHealth.UP, "lost"): VendorHealth.DOWN,
    (VendorHealth.PROBING, "lost"): VendorHealth.DOWN,
}


def test_agent_state_values_are_the_metric_labels() -> None:
    """AgentState values are the strings exported as the `state` label."""
    assert [s.value for s in AgentState] == [
        "logged_out", "ready", "reserved", "on_call", "wrap_up", "not_ready", "remote",
        "unreachable"]
    assert str(AgentState.ON_CALL) == "on_call"


def test_call_state_values() -> None:
    """CallState has the seven call phases, with lower-case string values."""
    assert [s.value for s in CallState] == [
        "announcing", "queued", "ringing", "overflow", "bridged", "closing", "ended"]


def test_agent_table_is_exactly_the_documented_one() -> None:
    """The agent table holds exactly the documented transitions (nothing more)."""
    assert dict(AGENT_TRANSITIONS) == EXPECTED_AGENT


def test_call_table_is_exactly_the_documented_one() -> None:
    """The call table holds exactly the documented transitions (nothing more)."""
    assert dict(CALL_TRANSITIONS) == EXPECTED_CALL


def test_vendor_table_is_exactly_the_documented_one() -> None:
    """The vendor health table holds exactly the documented transitions."""
    assert dict(VENDOR_TRANSITIONS) == EXPECTED_VENDOR


@pytest.mark.parametrize(("state", "event"), VENDOR_ILLEGAL)
def test_illegal_vendor_transition_raises_and_keeps_state(state: VendorHealth,
                                                          event: str) -> None:
    """A trigger the vendor machine does not accept (probing needs no cool-down) raises."""
    current = state
    with pytest.raises(IllegalTransition):
        current = transition("vendor acme", VENDOR_TRANSITIONS, current, event)
    assert current is state


@pytest.mark.parametrize(("state", "event"), list(EXPECTED_AGENT))
def test_every_legal_agent_transition(state: AgentState, event: str) -> None:
    """transition() follows each legal agent transition."""
    assert transition("agent", AGENT_TRANSITIONS, state, event) is EXPECTED_AGENT[(state, event)]


@pytest.mark.parametrize(("state", "event"), list(EXPECTED_CALL))
def test_every_legal_call_transition(state: CallState, event: str) -> None:
    """transition() follows each legal call transition."""
    assert transition("call", CALL_TRANSITIONS, state, event) is EXPECTED_CALL[(state, event)]


@pytest.mark.parametrize(("state", "event"), AGENT_ILLEGAL)
def test_illegal_agent_transition_raises_and_keeps_state(state: AgentState, event: str) -> None:
    """An event the agent machine does not accept raises and the state stays."""
    current = state
    with pytest.raises(IllegalTransition) as info:
        current = transition("agent alice", AGENT_TRANSITIONS, current, event)
    assert current is state
    assert (info.value.machine, info.value.state, info.value.event) == (
        "agent alice", state.value, event)


@pytest.mark.parametrize(("state", "event"), CALL_ILLEGAL)
def test_illegal_call_transition_raises_and_keeps_state(state: CallState, event: str) -> None:
    """An event the call machine does not accept raises and the state stays."""
    current = state
    with pytest.raises(IllegalTransition) as info:
        current = transition("call c1", CALL_TRANSITIONS, current, event)
    assert current is state
    assert (info.value.machine, info.value.state, info.value.event) == (
        "call c1", state.value, event)


def test_ended_call_accepts_nothing() -> None:
    """ENDED is terminal: no event leaves it."""
    assert not [e for (s, e) in CALL_TRANSITIONS if s is CallState.ENDED]


def test_unknown_event_name_is_illegal() -> None:
    """A name no table knows is refused, as a CCSwitchError."""
    with pytest.raises(CCSwitchError):
        transition("agent", AGENT_TRANSITIONS, AgentState.READY, "Teleport")


def test_only_ready_agents_can_be_offered() -> None:
    """Only READY agents are offered a call."""
    assert [s for s in AgentState if (s, "offer") in AGENT_TRANSITIONS] == [AgentState.READY]
