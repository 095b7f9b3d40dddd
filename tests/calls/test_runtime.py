"""The call runtime on a task.Clock between fake SIP peers: whole calls, end to end inside
the node (SIP in, engine, media, recording, record, metrics)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from twisted.internet import defer

from ccswitch.model import Condition, OverflowRule, Vendor
from ccswitch.routing.record import Outcome
from ccswitch.routing.states import VendorHealth
from tests.calls.fakes import SDP_ANSWER, Runtime, SentRequest, dialplan, runtime


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



# -- dead vendor trunks -------------------------------------------------------------


def rtp_packet(seq: int) -> bytes:
    """A PCMU RTP packet (20 ms of silence)."""
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 7) + b"\xff" * 160


def bridged_to_acme(tmp_path: Path, **vendor: Any) -> Runtime:
    """A call overflowed to vendor acme, which answered (its RTP comes from 127.0.0.1:40002)."""
    acme = Vendor(name="acme", trunks=("sip:acme@127.0.0.1:5070",), max_channels=5,
                  probe_interval=0.0, **vendor)
    rule = OverflowRule(condition=Condition.NO_AGENTS_LOGGED_IN, vendors=("acme",))
    rt = runtime(tmp_path, dialplan(agents=(), vendors=(acme,), overflow=(rule,)))
    rt.call()
    rt.hear_notice()
    [ring] = rt.layer.invites()
    ring.answer(200, SDP_ANSWER, tag="acme")
    return rt


def vendor_sends(rt: Runtime, seconds: float) -> None:
    """The vendor sends RTP every 20 ms for ``seconds`` (the clock moves with it)."""
    [call] = rt.controller._calls.calls.values()
    [leg] = call.legs.values()
    for seq in range(int(seconds * 50)):
        leg.media.datagramReceived(rtp_packet(seq), ("127.0.0.1", 40002))
        rt.clock.advance(0.02)


def test_a_vendor_leg_that_stops_sending_ends_the_call_as_vendor_lost(tmp_path: Path) -> None:
    """Vendor RTP stops: after dead_media_timeout (+ the 1 s watch) both sides get a BYE,
    the outcome is vendor_lost and acme is out of rotation."""
    rt = bridged_to_acme(tmp_path, dead_media_timeout=2.0)
    vendor_sends(rt, 1.0)
    rt.advance(2.0)
    assert rt.records == []
    rt.advance(1.1)
    [finished] = rt.records
    assert (finished.record.outcome, finished.record.vendor) == (Outcome.VENDOR_LOST, "acme")
    assert len(rt.layer.byes()) == 2  # the vendor leg and the caller
    assert rt.engine.view.vendors["acme"].health is VendorHealth.DOWN


def test_a_vendor_leg_that_never_sent_is_not_reported_lost(tmp_path: Path) -> None:
    """No RTP at all from the vendor is left to rtp.timeout, not to dead_media_timeout."""
    rt = bridged_to_acme(tmp_path, dead_media_timeout=2.0)
    rt.advance(5.0)
    assert rt.records == []
    assert rt.engine.view.vendors["acme"].health is VendorHealth.UP


def test_a_vendor_on_hold_is_not_taken_for_dead_nor_at_once_after_it_resumes(
        tmp_path: Path) -> None:
    """A vendor that holds (inactive) stops sending on purpose: past dead_media_timeout the
    call goes on, and after the resume the check counts from the resume, not from the
    vendor's last packet before the hold."""
    rt = bridged_to_acme(tmp_path, dead_media_timeout=2.0)
    [ring] = rt.layer.invites()
    vendor_sends(rt, 1.0)
    hold = SDP_ANSWER.replace(b"o=- 1 1", b"o=- 1 2") + b"a=inactive\r\n"
    assert rt.agent_request(ring, "INVITE", hold, cseq=1).responses == [200]
    rt.advance(5.0)
    resume = SDP_ANSWER.replace(b"o=- 1 1", b"o=- 1 3")
    assert rt.agent_request(ring, "INVITE", resume, cseq=2).responses == [200]
    rt.advance(1.5)
    assert rt.records == []
    assert rt.engine.view.vendors["acme"].health is VendorHealth.UP


def test_dead_media_timeout_zero_turns_the_check_off(tmp_path: Path) -> None:
    """dead_media_timeout 0: a vendor that stops sending keeps its call."""
    rt = bridged_to_acme(tmp_path, dead_media_timeout=0.0)
    vendor_sends(rt, 1.0)
    rt.advance(10.0)
    assert rt.records == []


def probed_runtime(tmp_path: Path, *trunks: str) -> Runtime:
    """A node with vendor acme (probes every 30 s, probe_timeout 2 s), started."""
    acme = Vendor(name="acme", trunks=trunks, max_channels=5, probe_interval=30.0,
                  probe_timeout=2.0)
    return runtime(tmp_path, dialplan(vendors=(acme,)))


def options_sent(rt: Runtime) -> list[SentRequest]:
    return [s for s in rt.layer.sent if s.request.method == "OPTIONS"]


def test_a_probe_nobody_answers_takes_the_vendor_down_after_probe_timeout(
        tmp_path: Path) -> None:
    """OPTIONS unanswered: the vendor stays up until probe_timeout, then goes DOWN."""
    rt = probed_runtime(tmp_path, "sip:acme@127.0.0.1:5070")
    assert len(options_sent(rt)) == 1
    rt.advance(1.9)
    assert rt.engine.view.vendors["acme"].health is VendorHealth.UP
    rt.advance(0.2)
    assert rt.engine.view.vendors["acme"].health is VendorHealth.DOWN


def test_one_trunk_answering_keeps_the_vendor_up_when_the_other_is_silent(
        tmp_path: Path) -> None:
    """One of two trunks answers 200, the other never: the round is ok at probe_timeout."""
    rt = probed_runtime(tmp_path, "sip:acme1@127.0.0.1:5070", "sip:acme2@127.0.0.1:5071")
    first, _ = options_sent(rt)
    first.answer(200)
    rt.advance(5.0)
    assert rt.engine.view.vendors["acme"].health is VendorHealth.UP


def test_an_answer_after_probe_timeout_is_ignored(tmp_path: Path) -> None:
    """A 200 that comes after the round was reported changes nothing."""
    rt = probed_runtime(tmp_path, "sip:acme@127.0.0.1:5070")
    [probe] = options_sent(rt)
    rt.advance(2.1)
    probe.answer(200)
    assert rt.engine.view.vendors["acme"].health is VendorHealth.DOWN


def keepalives(rt: Runtime) -> list[SentRequest]:
    [ring] = rt.layer.invites()
    return [s for s in options_sent(rt) if s.request.call_id == ring.request.call_id]


def test_answered_vendor_legs_get_in_dialog_options_every_keepalive_interval(
        tmp_path: Path) -> None:
    """keepalive_interval 10: an OPTIONS in the vendor leg's dialog 10 s after the answer,
    not before; a 200 keeps the call."""
    rt = bridged_to_acme(tmp_path, keepalive_interval=10.0, dead_media_timeout=0.0)
    rt.advance(9.0)
    assert keepalives(rt) == []
    rt.advance(2.1)  # the watch runs every second
    [options] = keepalives(rt)
    options.answer(200)
    rt.advance(5.0)
    assert rt.records == []


def test_a_481_to_the_keepalive_ends_the_call_as_vendor_lost(tmp_path: Path) -> None:
    """The vendor no longer knows the dialog (481): the call ends vendor_lost, acme DOWN."""
    rt = bridged_to_acme(tmp_path, keepalive_interval=10.0, dead_media_timeout=0.0)
    rt.advance(11.1)
    [options] = keepalives(rt)
    options.answer(481)
    [finished] = rt.records
    assert finished.record.outcome is Outcome.VENDOR_LOST
    assert rt.engine.view.vendors["acme"].health is VendorHealth.DOWN


def test_an_unanswered_keepalive_loses_the_leg_after_probe_timeout(tmp_path: Path) -> None:
    """No answer to the in-dialog OPTIONS within probe_timeout (2 s): vendor_lost."""
    rt = bridged_to_acme(tmp_path, keepalive_interval=10.0, dead_media_timeout=0.0,
                         probe_timeout=2.0)
    rt.advance(11.1)  # sent within a second of being due
    assert len(keepalives(rt)) == 1
    rt.advance(1.0)
    assert rt.records == []
    rt.advance(1.0)
    [finished] = rt.records
    assert finished.record.outcome is Outcome.VENDOR_LOST
