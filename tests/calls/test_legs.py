"""Leg roles and the leg-state table: legal moves happen, illegal ones raise and change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from ccswitch.calls.legs import (
    TRANSITIONS, IllegalLegTransition, Leg, LegRole, LegState, OutLeg,
)
from ccswitch.errors import CCSwitchError
from ccswitch.routing.target import Target

# The state table never looks at the INVITE or the media endpoint.
NONE: Any = None


def leg(state: LegState = LegState.CALLING, role: LegRole = LegRole.AGENT) -> Leg:
    return Leg(role=role, invite=NONE, media=NONE, state=state)


def test_offer_rings_then_answers_then_ends() -> None:
    """An offer goes calling -> ringing -> answered -> ended."""
    offer = leg()
    for state in (LegState.RINGING, LegState.ANSWERED, LegState.ENDED):
        offer.move(state)
    assert offer.state is LegState.ENDED and offer.ended


def test_illegal_move_raises_and_keeps_the_state() -> None:
    """An ended leg cannot ring again: the move raises and the leg stays ended."""
    ended = leg(LegState.ENDED)
    with pytest.raises(IllegalLegTransition) as raised:
        ended.move(LegState.RINGING)
    assert ended.state is LegState.ENDED
    assert isinstance(raised.value, CCSwitchError)
    assert (raised.value.old, raised.value.new) == (LegState.ENDED, LegState.RINGING)


def test_answered_leg_cannot_ring() -> None:
    """An answered leg cannot go back to ringing; its state is unchanged."""
    answered = leg(LegState.ANSWERED)
    with pytest.raises(IllegalLegTransition):
        answered.move(LegState.RINGING)
    assert answered.state is LegState.ANSWERED


@pytest.mark.parametrize("final", [LegState.ENDED, LegState.CANCELLED])
def test_final_states_have_no_way_out(final: LegState) -> None:
    """Ended and cancelled legs are final: every move from them is illegal."""
    assert TRANSITIONS[final] == frozenset()


def test_every_state_has_a_row() -> None:
    """The table names every leg state."""
    assert set(TRANSITIONS) == set(LegState)


def test_withdrawn_offer_may_already_be_answered() -> None:
    """A Cancel that crosses the 200 OK moves the answered leg to cancelled."""
    crossed = leg(LegState.ANSWERED)
    crossed.move(LegState.CANCELLED)
    assert crossed.state is LegState.CANCELLED


def test_out_leg_role_follows_its_target() -> None:
    """A leg placed to a vendor has the vendor role; one to an agent the agent role."""
    assert OutLeg.to(Target.vendor("acme"), invite=NONE, media=NONE).role is LegRole.VENDOR
    assert OutLeg.to(Target.agent("alice"), invite=NONE, media=NONE).role is LegRole.AGENT
