"""The call runtime on a task.Clock between fake SIP peers: whole calls, end to end inside
the node (SIP in, engine, media, recording, record, metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer

from ccswitch.model import Condition, OverflowRule, Vendor
from ccswitch.routing.record import Outcome
from tests.calls.fakes import SDP_ANSWER, dialplan, runtime


def test_answered_call_from_invite_to_record_and_metrics(tmp_path: Path) -> None:
    """INVITE, 200, notice, queue, ring alice, 180, 200, bridge, caller BYE: alice gets a
    BYE and the call's record (with its recording) and metrics come out."""
    rt = runtime(tmp_path, dialplan())
    caller = rt.call()
    assert caller.responses == [200]
    rt.hear_notice()
    [ring] = rt.layer.invites()
    assert ring.request.uri.user == "alice"
    ring.answer(180)
    ring.answer(200, SDP_ANSWER, tag="alice")
    assert len(rt.layer.acks) == 1
    assert rt.engine.view.agents["alice"].call_id is not None
    rt.advance(5)
    assert rt.caller_bye().responses == [200]
    assert [b.request.call_id for b in rt.layer.byes()] == [ring.request.call_id]
    [finished] = rt.records
    assert finished.record.outcome is Outcome.ANSWERED_INHOUSE
    assert finished.record.agent_id == "alice" and finished.sip_call_id == "call-1"
    assert finished.recording is not None and finished.recording.path is not None
    assert Path(finished.recording.path).is_file()
    assert rt.sample("ccswitch_calls_total", queue="support", outcome="answered_inhouse",
                     route="inhouse", vendor="") == 1.0
    assert rt.controller.active_calls == 0


def test_caller_leaving_in_the_queue_is_an_abandon(tmp_path: Path) -> None:
    """A caller who hangs up while queued (no agent free) is abandoned in the queue."""
    rt = runtime(tmp_path, dialplan(agents=()))
    caller = rt.call()
    rt.hear_notice()
    rt.advance(10)
    rt.caller_bye()
    assert caller.responses == [200]
    [finished] = rt.records
    assert finished.record.outcome is Outcome.ABANDONED_QUEUE


def test_cancel_while_ringing_cancels_the_agent_offer(tmp_path: Path) -> None:
    """The caller's CANCEL (the engine answered; alice rings) ends the call and CANCELs
    alice's INVITE."""
    rt = runtime(tmp_path, dialplan())
    caller = rt.call()
    rt.hear_notice()
    [ring] = rt.layer.invites()
    ring.answer(180)
    rt.advance(6)
    rt.cancel(caller)
    assert ring.cancelled and caller.responses == [200]  # answered already: no 487
    assert [f.record.outcome for f in rt.records] == [Outcome.ABANDONED_RINGING]


def test_ring_timeout_withdraws_the_offer(tmp_path: Path) -> None:
    """An agent who never answers within ring_timeout is cancelled; the call stays queued."""
    rt = runtime(tmp_path, dialplan(ring_timeout=5.0))
    rt.call()
    rt.hear_notice()
    [ring] = rt.layer.invites()
    ring.answer(180)
    rt.advance(6)
    assert ring.cancelled
    assert rt.records == [] and rt.controller.active_calls == 1


def test_vendor_trunk_failover_then_answer(tmp_path: Path) -> None:
    """A vendor's first trunk answering 503 moves the offer to its second trunk, which
    answers: the call ends answered by the vendor."""
    acme = Vendor(name="acme", trunks=("sip:acme1@127.0.0.1:5070", "sip:acme2@127.0.0.1:5071"),
                  max_channels=5, probe_interval=0.0)
    rule = OverflowRule(condition=Condition.NO_AGENTS_LOGGED_IN, vendors=("acme",))
    rt = runtime(tmp_path, dialplan(agents=(), vendors=(acme,), overflow=(rule,)))
    rt.call()
    rt.hear_notice()
    [first] = rt.layer.invites()
    first.answer(503)
    second = rt.layer.invites()[1]
    assert (first.request.uri.user, second.request.uri.user) == ("acme1", "acme2")
    second.answer(200, SDP_ANSWER, tag="acme")
    rt.advance(3)
    rt.caller_bye()
    [finished] = rt.records
    assert (finished.record.outcome, finished.record.vendor) == (Outcome.ANSWERED_VENDOR, "acme")


class RefusingStore:
    """Shared state that refuses every agent reservation (another node holds them)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def reserve(self, call_id: str, agent_id: str, queue: str) -> defer.Deferred[Any]:
        self.asked.append(agent_id)
        return defer.succeed(False)

    def changed(self) -> None:
        return None

    def presence_changed(self, presence: Any) -> None:
        return None

    def start(self) -> None:
        return None


def test_refused_reservation_rings_nobody_and_tries_the_next_agent(tmp_path: Path) -> None:
    """With shared state refusing alice, no INVITE goes to her and bob is reserved next."""
    store = RefusingStore()
    rt = runtime(tmp_path, dialplan(agents=("alice", "bob")), reservations=True, shared=store)
    rt.call()
    rt.hear_notice()
    assert store.asked == ["alice", "bob"]
    assert rt.layer.invites() == []

