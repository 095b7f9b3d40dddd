"""The first slice end to end: real SIP phones (pjsua2, SIPp) through a real ccswitch process.

Caller phones send a 440 Hz tone and agent phones a 1000 Hz tone, so each
recording channel can be checked for its own party by content.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.audio import band_power, normalized_xcorr_max, read_wav, tone_present
from tests.e2e.node import (
    AGENT_HZ, ANNOUNCEMENT, ANNOUNCEMENT_S, CALLER_HZ, NodeFactory, agent_uri, dialplan,
)
from tests.phones.client import PhoneFactory, SippFactory, free_udp_port, write_ulaw_tone

pytestmark = pytest.mark.e2e


def sidecar(wav: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(wav.with_suffix(".json").read_text())
    return data


def without_band(samples: np.ndarray, rate: int, low: float, high: float) -> np.ndarray:
    """``samples`` with the [low, high] Hz band removed (FFT brick wall)."""
    samples = np.asarray(samples, dtype=np.float64).reshape(-1)
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(len(samples), 1.0 / rate)
    spectrum[(freqs >= low) & (freqs <= high)] = 0
    return np.fft.irfft(spectrum, len(samples))


def test_answered_call_is_recorded_with_each_party_on_its_own_channel(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """A pjsua2 caller reaches a pjsua2 agent; recordings.start answer: stereo recording with
    the QA notice first, then tones per side."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}),
                        recording_start="answer")
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--answer-delay", "0.5", "--timeout", "40",
                          name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 4.0), "--timeout", "40",
                           name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()
    assert caller.done is not None
    caller_call = caller.done["calls"][0]
    assert caller_call["confirmed"], caller.describe()

    [wav] = node.wait_recordings(1)
    meta = sidecar(wav)
    assert meta["outcome"] == "answered_inhouse"
    assert meta["agent_id"] == "alice"
    assert meta["queue"] == "support" and meta["dialed"] == "100"
    assert meta["qa_notice_played"] is True

    rate, audio = read_wav(wav)
    assert rate == 8000 and audio.ndim == 2 and audio.shape[1] == 2
    length = len(audio) / rate
    assert abs(length - caller_call["connect_s"]) < 0.6, (length, caller_call)

    left, right = audio[:, 0], audio[:, 1]
    # The caller channel opens with the QA notice (the caller's own tone notched out).
    _, notice = read_wav(ANNOUNCEMENT)
    head = without_band(left[: len(notice) + rate], rate, 380, 500)
    assert normalized_xcorr_max(head, without_band(notice, rate, 380, 500)) > 0.9

    # After the agent answered: caller tone left only, agent tone right only.
    answered = meta["answered_at"] - meta["arrived_at"]
    talk = slice(int((answered + 0.5) * rate), int((length - 0.3) * rate))
    assert talk.stop - talk.start > rate, (answered, length)
    assert tone_present(left[talk], rate, CALLER_HZ)
    assert tone_present(right[talk], rate, AGENT_HZ)
    assert band_power(left[talk], rate, AGENT_HZ) < 0.05 * band_power(left[talk], rate, CALLER_HZ)
    assert band_power(right[talk], rate, CALLER_HZ) < 0.05 * band_power(right[talk], rate,
                                                                           AGENT_HZ)
    # Nothing from the agent on the right before the answer.
    before = right[: int(answered * rate)]
    assert band_power(before, rate, AGENT_HZ) < 1e-3 * band_power(right[talk], rate, AGENT_HZ)

    assert node.metric("ccswitch_calls_total", queue="support", outcome="answered_inhouse") == 1
    assert node.metric("ccswitch_queue_wait_seconds_count", queue="support",
                       outcome="answered_inhouse") == 1
    assert node.metric("ccswitch_call_talk_seconds_count", queue="support",
                       group="inhouse") == 1
    assert node.metric("ccswitch_queue_depth", queue="support") == 0
    assert meta["recording_started_at"] == pytest.approx(meta["arrived_at"], abs=0.1)


def test_by_default_recording_starts_only_after_the_qa_notice(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """recordings.start after_notice (the default): nothing before the notice's end is
    recorded, the record shows recording_started_at after announced_at, and a caller who
    hangs up during the notice has no recording but a call record."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}))
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--timeout", "40", name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 4.0), "--timeout", "40",
                           name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()
    [wav] = node.wait_recordings(1)
    meta = sidecar(wav)
    assert meta["announced_at"] <= meta["recording_started_at"] < meta["announced_at"] + 0.1
    rate, audio = read_wav(wav)
    assert len(audio) / rate == pytest.approx(meta["ended_at"] - meta["recording_started_at"],
                                              abs=0.3)
    _, notice = read_wav(ANNOUNCEMENT)
    head = without_band(audio[: 2 * rate, 0], rate, 380, 500)
    assert normalized_xcorr_max(head, without_band(notice[: 2 * rate], rate, 380, 500)) < 0.5
    [cdr] = node.wait_cdr(1)
    assert cdr["recording_started_ms"] >= cdr["announced_ms"]

    quitter = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone",
                            str(CALLER_HZ), "--hangup-after", "2", "--timeout", "20",
                            name="quitter")
    assert quitter.wait_exit(15) == 0, quitter.describe()
    rows = node.wait_cdr(2)
    [quit_row] = [r for r in rows if r["call_id"] != meta["call_id"]]
    assert (quit_row["outcome"], quit_row["recording_path"]) == ("short_abandon", None)
    assert len(node.recordings_done()) == 1


def test_caller_hanging_up_while_queued_is_an_abandon(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """No agent logged in: the caller hears the notice, waits, hangs up -> abandoned_queue."""
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", free_udp_port()),
                                            "logged_in": False}}), log_format="json")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 2.0), "--timeout", "30",
                           name="caller")
    assert caller.wait_exit(25) == 0, caller.describe()

    [wav] = node.wait_recordings(1)
    meta = sidecar(wav)
    assert meta["outcome"] == "abandoned_queue"
    assert meta["agent_id"] is None
    assert meta["wait"] == pytest.approx(2.0, abs=0.7)
    assert node.metric("ccswitch_calls_total", queue="support", outcome="abandoned_queue") == 1
    assert node.metric("ccswitch_calls_total", queue="support", outcome="answered_inhouse") in (None, 0)
    assert node.metric("ccswitch_queue_wait_seconds_count", queue="support",
                       outcome="abandoned_queue") == 1

    # JSON logs: every line about this call carries its id as a field.
    events = [json.loads(line) for line in node.log_path.read_text().splitlines()
              if line.startswith("{")]
    about_call = [e for e in events if meta["call_id"] in json.dumps(e)]
    assert len(about_call) >= 3
    assert all(e.get("call_id") == meta["call_id"] for e in about_call), about_call

    # The call detail record agrees with the sidecar and the report counts it.
    [cdr] = node.wait_cdr(1)
    assert cdr["call_id"] == meta["call_id"] and cdr["outcome"] == "abandoned_queue"
    assert cdr["qa_notice_played"] is True and cdr["recording_path"] == str(wav)
    assert cdr["wait_ms"] == round(meta["wait"] * 1000)
    chart = node.workdir / "kpi.png"
    report = node.cli("report", "--format", "json", "--chart", str(chart))
    assert report.returncode == 0, report.stderr
    [line] = json.loads(report.stdout)["lines"]
    assert (line["queue"], line["offered"], line["abandoned"]) == ("support", 1, 1)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unanswered_agent_times_out_and_the_next_agent_takes_the_call(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """alice rings out (ring_timeout), ccswitch cancels her and bob answers."""
    alice_port, bob_port = free_udp_port(), free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", alice_port)},
                                  "bob": {"uri": agent_uri("bob", bob_port)}},
                                 ring_timeout=2, max_misses=1))
    alice = phone_factory("--role", "agent", "--port", str(alice_port), "--user", "alice",
                          "--no-answer", "--timeout", "40", name="alice")
    bob = phone_factory("--role", "agent", "--port", str(bob_port), "--user", "bob",
                        "--tone", str(AGENT_HZ), "--timeout", "40", name="bob")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 5.0), "--timeout", "40",
                           name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    alice.wait_state("DISCONNECTED", timeout=5)
    [cancelled] = alice.find("state", lambda e: e["state"] == "DISCONNECTED")
    assert cancelled["code"] == 487

    [wav] = node.wait_recordings(1)
    meta = sidecar(wav)
    assert meta["outcome"] == "answered_inhouse" and meta["agent_id"] == "bob"
    offers = meta["offers"]
    assert [o["agent_id"] for o in offers] == ["alice", "bob"]
    assert offers[0]["result"] == "no_answer"
    assert offers[0]["ended_at"] - offers[0]["offered_at"] == pytest.approx(2.0, abs=0.3)
    assert node.metric("ccswitch_agent_ring_seconds_count", queue="support",
                       group="inhouse") == 2
    # max_misses=1: one unanswered offer set alice not-ready.
    assert node.metric("ccswitch_agents", group="inhouse", state="not_ready") == 1


def test_agent_hanging_up_ends_the_call_for_the_caller(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """The agent hangs up first: ccswitch sends BYE to the caller and records an answered call."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}},
                                 wrap_up=60))
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--hangup-after", "2", "--timeout", "30",
                          name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--timeout", "30", name="caller")
    assert agent.wait_exit(20) == 0, agent.describe()
    assert caller.wait_exit(5) == 0, caller.describe()
    assert caller.find("hangup") == []  # the caller did not hang up itself
    [ended] = caller.find("state", lambda e: e["state"] == "DISCONNECTED")
    assert ended["code"] == 200

    [wav] = node.wait_recordings(1)
    meta = sidecar(wav)
    assert meta["outcome"] == "answered_inhouse" and meta["agent_id"] == "alice"
    assert meta["talk"] == pytest.approx(2.0, abs=0.5)
    assert node.metric("ccswitch_agents", group="inhouse", state="wrap_up") == 1  # 60 s


def test_invite_from_an_untrusted_source_is_refused_with_403(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """Only configured networks may send calls; others get 403 and nothing is recorded."""
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", free_udp_port())}}),
                        trusted=("10.0.0.0/8",))
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--timeout", "15",
                           name="caller")
    assert caller.wait_exit(10) == 0, caller.describe()
    [ended] = caller.find("state", lambda e: e["state"] == "DISCONNECTED")
    assert ended["code"] == 403
    assert node.metric("ccswitch_sip_rejected_total", status="403") == 1
    assert node.recordings_done() == []


def test_sipp_caller_hanging_up_while_the_agent_rings_is_an_abandon(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        sipp_factory: SippFactory) -> None:
    """A SIPp caller hangs up while the only agent rings: the agent gets CANCEL, abandoned."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}))
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--no-answer", "--timeout", "30", name="agent")
    write_ulaw_tone(sipp_factory.cwd / "caller_audio.ulaw", CALLER_HZ, seconds=1.0)
    sipp = sipp_factory("uac_call.xml", "127.0.0.1:%d" % node.sip_port, "-s", "100",
                        "-m", "1", "-d", str(int((ANNOUNCEMENT_S + 2.0) * 1000)),
                        "-i", "127.0.0.1", "-p", str(free_udp_port()),
                        "-mp", str(free_udp_port()), "-timeout", "30s")
    assert sipp.wait(30) == 0, sipp.describe()
    agent.wait_state("DISCONNECTED", timeout=5)
    [cancelled] = agent.find("state", lambda e: e["state"] == "DISCONNECTED")
    assert cancelled["code"] == 487

    [wav] = node.wait_recordings(1)
    meta = sidecar(wav)
    assert meta["outcome"] == "abandoned_ringing"
    assert [o["result"] for o in meta["offers"]] == ["cancelled"]
    assert node.metric("ccswitch_calls_total", queue="support", outcome="abandoned_ringing") == 1
    rate, audio = read_wav(wav)
    # SIPp's RTP stream reached the recording's caller channel (under the music on hold).
    assert tone_present(audio[int(0.5 * rate):, 0], rate, CALLER_HZ, min_ratio=0.2)


def test_stopping_ccswitch_mid_call_hangs_up_and_keeps_record_and_recording(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """SIGTERM during a bridged call: both phones get BYE; the WAV, sidecar and CDR row exist."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}))
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--timeout", "40", name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--timeout", "40", name="caller")
    agent.wait_state("CONFIRMED", timeout=15)
    assert node.stop() == 0, node.log()
    assert caller.wait_exit(10) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()

    [wav] = node.recordings_done()
    meta = sidecar(wav)
    assert meta["outcome"] == "answered_inhouse" and meta["agent_id"] == "alice"
    [cdr] = node.wait_cdr(1, timeout=5)
    assert cdr["call_id"] == meta["call_id"] and cdr["recording_path"] == str(wav)
