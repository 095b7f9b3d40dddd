"""Robustness end to end: a real ccswitch process against misbehaving peers."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.audio import read_wav, tone_present
from tests.e2e.node import (
    AGENT_HZ, ANNOUNCEMENT_S, CALLER_HZ, NodeFactory, agent_uri, dialplan,
)
from tests.phones.client import PhoneFactory, SippFactory, free_udp_port

pytestmark = pytest.mark.e2e


def sidecar(wav: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(wav.with_suffix(".json").read_text())
    return data


def test_an_agent_sending_no_rtp_ends_the_call_as_media_timeout(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        sipp_factory: SippFactory) -> None:
    """A SIPp agent that answers but never sends RTP: after rtp.timeout both sides get a BYE
    and the call is recorded with outcome media_timeout."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}),
                        rtp_timeout=2)
    agent = sipp_factory("uas_answer.xml", "-m", "1", "-i", "127.0.0.1", "-p", str(agent_port),
                         "-mp", str(free_udp_port()), "-timeout", "30s", name="silent-agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--timeout", "30", name="caller")
    assert caller.wait_exit(25) == 0, caller.describe()
    assert caller.find("hangup") == []  # ccswitch hung up, not the caller
    assert agent.wait(10) == 0, agent.describe()  # it got its BYE
    [wav] = node.wait_recordings(1)
    meta = sidecar(wav)
    assert (meta["outcome"], meta["agent_id"]) == ("media_timeout", "alice")
    assert meta["answered_at"] - meta["arrived_at"] == pytest.approx(ANNOUNCEMENT_S, abs=1.0)
    assert 2.0 <= meta["talk"] <= 4.0
    assert node.metric("ccswitch_calls_total", outcome="media_timeout") == 1


def test_a_recording_write_failure_keeps_the_call_and_says_so_in_the_record(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """Recording files may not grow past 160 kB (EFBIG, as on a full disk): the call goes on
    to its normal end, the error is counted and logged, and the sidecar and the CDR row say
    the recording is incomplete; what was written is a valid WAV."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}),
                        log_level="info", file_size_limit=160_000)
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--timeout", "40", name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 8.0), "--timeout", "40",
                           name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()
    [hung_up] = caller.find("hangup")  # the caller ended it, on schedule
    [wav] = node.wait_recordings(1)
    meta = sidecar(wav)
    assert meta["outcome"] == "answered_inhouse"
    assert meta["talk"] == pytest.approx(8.0, abs=1.0)
    assert "File too large" in meta["recording"]["error"]
    rate, audio = read_wav(wav)
    assert 3.0 < len(audio) / rate < 5.5  # 160 kB of 32 kB/s stereo, then nothing more
    [cdr] = node.wait_cdr(1)
    assert "File too large" in cdr["recording_error"]
    assert cdr["recording_path"] == str(wav) and cdr["outcome"] == "answered_inhouse"
    assert node.metric("ccswitch_recording_errors_total") == 1
    assert "recording failed" in node.log()


def test_kill_9_mid_call_then_restart_recovers_the_recording_and_its_record(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """SIGKILL during a recorded call; on restart the temp WAV is repaired and put in place,
    playable, with its audio, and sidecar and CDR row say interrupted."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}))
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--timeout", "40", name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--timeout", "40", name="caller")
    node.wait_metric(1, "ccswitch_agents", timeout=20, group="inhouse", state="on_call")
    time.sleep(3.0)  # a few seconds of talk reach the disk (1 s write buffer)
    node.kill()
    caller.stop()
    agent.stop()
    assert node.recordings_done() == []
    node.start()

    [wav] = node.wait_recordings(1)
    meta = sidecar(wav)
    assert meta["outcome"] == "interrupted" and meta["queue"] == "support"
    assert meta["recording"]["error"].startswith("interrupted")
    rate, audio = read_wav(wav)
    assert len(audio) / rate > ANNOUNCEMENT_S + 1.0
    talk = audio[int((ANNOUNCEMENT_S + 0.5) * rate):]
    assert tone_present(talk[:, 0], rate, CALLER_HZ)
    assert tone_present(talk[:, 1], rate, AGENT_HZ)
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=channels",
                            "-of", "csv=p=0", str(wav)], capture_output=True, text=True,
                           timeout=20)
    assert (probe.returncode, probe.stdout.strip()) == (0, "2")
    [cdr] = node.wait_cdr(1)
    assert (cdr["call_id"], cdr["outcome"], cdr["recording_path"]) == (
        meta["call_id"], "interrupted", str(wav))
    assert not list((node.recordings / ".incomplete").iterdir())
