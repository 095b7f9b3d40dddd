"""Other nodes' holds expiring locally while the store is unreachable (pure)."""

from __future__ import annotations

import pytest

from ccswitch.state.remote import RemoteHolds

T0 = 1_700_000_000.0


def test_a_hold_expires_ttl_after_it_was_last_seen() -> None:
    """Seen at T0 with ttl 3: still held at T0+3, expired just after."""
    holds = RemoteHolds(3.0)
    holds.seen("alice", T0)
    assert holds.expired(["alice"], T0 + 3.0) == []
    assert holds.expired(["alice"], T0 + 3.1) == ["alice"]


def test_seeing_the_hold_again_pushes_its_expiry_back() -> None:
    """A hold seen live again (a refresh) lives ttl from then."""
    holds = RemoteHolds(3.0)
    holds.seen("alice", T0)
    holds.seen("alice", T0 + 2.0)
    assert holds.expired(["alice"], T0 + 4.0) == []
    assert holds.expired(["alice"], T0 + 5.1) == ["alice"]


def test_a_remote_agent_never_seen_held_counts_from_its_first_check() -> None:
    """An agent remote here with no sighting (refused reservation) expires ttl after the
    first check."""
    holds = RemoteHolds(3.0)
    assert holds.expired(["bob"], T0) == []
    assert holds.expired(["bob"], T0 + 3.1) == ["bob"]


def test_an_expired_agent_is_reported_once() -> None:
    """Once reported, the agent is forgotten: a later check starts afresh."""
    holds = RemoteHolds(3.0)
    holds.seen("alice", T0)
    assert holds.expired(["alice"], T0 + 4.0) == ["alice"]
    assert holds.expired(["alice"], T0 + 4.5) == []


def test_an_agent_no_longer_remote_is_forgotten() -> None:
    """Freed meanwhile (an event): its old sighting does not carry over to a new hold."""
    holds = RemoteHolds(3.0)
    holds.seen("alice", T0)
    assert holds.expired([], T0 + 1.0) == []
    assert holds.expired(["alice"], T0 + 4.0) == []


def test_a_ttl_that_is_not_positive_is_refused() -> None:
    """RemoteHolds(0) raises ValueError naming the ttl."""
    with pytest.raises(ValueError, match="ttl"):
        RemoteHolds(0)
