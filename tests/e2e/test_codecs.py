"""Codecs end to end: agents that speak another G.711 law than the caller, and offers
they refuse, through a real ccswitch process with pjsua2 phones.

Caller phones send a 440 Hz tone and agent phones a 1000 Hz tone (as in
test_call_path), so the recording and what each phone heard can be checked by content.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.audio import band_power, read_wav, tone_present
from tests.e2e.node import (
    AGENT_HZ, ANNOUNCEMENT_S, CALLER_HZ, NodeFactory, agent_uri, dialplan,
)
from tests.phones.client import PhoneFactory, SippFactory, free_udp_port

pytestmark = pytest.mark.e2e


def heard(wav: Path, talk_s: float) -> tuple[int, Any]:
    """A phone's recording of what it heard: its rate and its last ``talk_s`` seconds
    (less the last 0.3 s, around the hang-up), when the other party's audio is relayed."""
    rate, audio = read_wav(wav)
    samples = audio.reshape(-1)
    return rate, samples[-int(talk_s * rate):-int(0.3 * rate)]


@pytest.mark.parametrize(("caller_codec", "agent_codec"), [("PCMU", "PCMA"), ("PCMA", "PCMU")])
def test_agent_with_the_other_law_is_bridged_with_transcoding(
        node_factory: NodeFactory, phone_factory: PhoneFactory, tmp_path: Path,
        caller_codec: str, agent_codec: str) -> None:
    """A caller speaking one G.711 law reaches an agent that accepts only the other: each
    phone hears the other's tone and the recording has each party on its own channel."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}),
                        recording_start="answer")
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--codecs", agent_codec, "--tone", str(AGENT_HZ),
                          "--record", str(tmp_path / "agent_heard.wav"),
                          "--answer-delay", "0.5", "--timeout", "40", name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--codecs", caller_codec,
                           "--tone", str(CALLER_HZ), "--record", str(tmp_path / "caller_heard.wav"),
                           "--hangup-after", str(ANNOUNCEMENT_S + 4.0), "--timeout", "40",
                           name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()
    assert caller.done is not None and agent.done is not None
    assert caller.done["calls"][0]["confirmed"], caller.describe()
    agent_call = agent.done["calls"][0]
    assert agent_call["confirmed"], agent.describe()

    [wav] = node.wait_recordings(1)
    meta = json.loads(wav.with_suffix(".json").read_text())
    assert (meta["outcome"], meta["agent_id"]) == ("answered_inhouse", "alice")
    rate, audio = read_wav(wav)
    answered = meta["answered_at"] - meta["arrived_at"]
    talk = slice(int((answered + 0.5) * rate), int((len(audio) / rate - 0.3) * rate))
    assert talk.stop - talk.start > rate, (answered, len(audio) / rate)
    left, right = audio[talk, 0], audio[talk, 1]
    assert tone_present(left, rate, CALLER_HZ)
    assert tone_present(right, rate, AGENT_HZ)
    assert band_power(left, rate, AGENT_HZ) < 0.05 * band_power(left, rate, CALLER_HZ)
    assert band_power(right, rate, CALLER_HZ) < 0.05 * band_power(right, rate, AGENT_HZ)

    # Relayed and translated both ways: each phone heard the other's tone.
    talk_s = agent_call["connect_s"] - 0.5
    assert talk_s > 1.5, agent_call
    agent_rate, agent_heard = heard(tmp_path / "agent_heard.wav", talk_s)
    assert tone_present(agent_heard, agent_rate, CALLER_HZ)
    caller_rate, caller_heard = heard(tmp_path / "caller_heard.wav", talk_s)
    assert tone_present(caller_heard, caller_rate, AGENT_HZ)


def test_pcmu_caller_offers_its_law_first_and_an_alaw_echo_comes_back_translated(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        sipp_factory: SippFactory) -> None:
    """A SIPp agent checks the offer is PCMU, PCMA, telephone-event in that order, answers
    PCMA only and echoes: the PCMU caller hears its own tone back, and the recording has it
    on both channels (the agent's A-law decoded as A-law)."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}),
                        recording_start="answer")
    agent = sipp_factory("uas_pcma_only.xml", "-m", "1", "-i", "127.0.0.1", "-p",
                         str(agent_port), "-mp", str(free_udp_port()), "-rtp_echo",
                         "-timeout", "30s", "-timeout_error", name="alaw-agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--codecs", "PCMU",
                           "--tone", str(CALLER_HZ), "--record", str(node.workdir / "heard.wav"),
                           "--hangup-after", str(ANNOUNCEMENT_S + 4.0), "--timeout", "40",
                           name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert agent.wait(10) == 0, agent.describe()
    [wav] = node.wait_recordings(1)
    meta = json.loads(wav.with_suffix(".json").read_text())
    assert (meta["outcome"], meta["agent_id"]) == ("answered_inhouse", "alice")
    rate, audio = read_wav(wav)
    answered = meta["answered_at"] - meta["arrived_at"]
    talk = slice(int((answered + 0.5) * rate), int((len(audio) / rate - 0.3) * rate))
    assert talk.stop - talk.start > rate, (answered, len(audio) / rate)
    assert tone_present(audio[talk, 0], rate, CALLER_HZ)
    assert tone_present(audio[talk, 1], rate, CALLER_HZ)
    heard_rate, echo = heard(node.workdir / "heard.wav", 2.5)
    assert tone_present(echo, heard_rate, CALLER_HZ)


def test_refused_offer_is_logged_with_its_status_and_counted(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """An agent answering 488 gives a log line with call_id, agent, status and reason, and
    counts in ccswitch_offer_failures_total{queue, kind, status}."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}),
                        log_format="json")
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--reject", "488", "--calls", "50", "--timeout", "40", name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 2.0), "--timeout", "30",
                           name="caller")
    assert caller.wait_exit(25) == 0, caller.describe()
    assert agent.find("incoming"), agent.describe()
    [row] = node.wait_cdr(1)

    events = [json.loads(line) for line in node.log_path.read_text().splitlines()
              if line.startswith("{")]
    refused = [e for e in events if e.get("status") == 488 and e.get("agent") == "alice"]
    assert refused, node.log()
    assert refused[0]["call_id"] == row["call_id"]
    assert refused[0]["reason"] == "Not Acceptable Here"
    failures = node.metric("ccswitch_offer_failures_total", queue="support", kind="agent",
                           status="488")
    assert failures == len(refused) >= 1


def test_session_refresh_from_an_agent_is_answered_and_the_call_goes_on(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """An agent's re-INVITE repeating its SDP (a session refresh) is answered 200, not
    488, the agent's media is active again, and the call stays bridged until the caller
    hangs up."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}))
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--reinvite-after", "1", "--timeout", "40",
                          name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 4.0), "--timeout", "40",
                           name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()
    assert agent.find("reinvite"), agent.describe()
    assert not node.metric("ccswitch_sip_rejected_total", status="488")
    # pjsua reports the media once on the answer and again when the re-INVITE got its 2xx.
    active = agent.find("media", lambda e: e.get("status") == "ACTIVE")
    assert len(active) == 2, agent.describe()
    [row] = node.wait_cdr(1)
    assert row["outcome"] == "answered_inhouse"
    # The re-INVITE went 1 s after the answer; the call lasted well past it.
    assert agent.done is not None and agent.done["calls"][0]["connect_s"] > 2.5, agent.describe()
