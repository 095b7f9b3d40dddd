"""Hold and resume end to end: a pjsua2 agent holds (sendonly re-INVITE) and resumes a call
from a pjsua2 caller through a real ccswitch; the caller hears the queue's music on hold (a
tone of its own, told apart by content), and the recording, sidecar, CDR and metrics carry
the hold."""

from __future__ import annotations

import json
import math
import struct
import wave
from pathlib import Path
from typing import Any

from tests.audio import band_power, read_wav, tone_present
from tests.e2e.node import (
    AGENT_HZ, ANNOUNCEMENT_S, CALLER_HZ, NodeFactory, agent_uri, dialplan,
)
from tests.phones.client import PhoneFactory, free_udp_port

MOH_HZ = 700.0  # the test's music on hold: a tone neither phone sends
HOLD_AFTER, HOLD_FOR = 2.0, 3.0  # the agent holds 2 s after the answer, for 3 s


def tone_wav(path: Path, freq: float, seconds: float = 2.0, rate: int = 8000) -> Path:
    """A mono 16-bit WAV of a sine at ``freq`` (a whole number of periods, to loop cleanly)."""
    count = int(seconds * rate)
    samples = [int(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(count)]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack(f"<{count}h", *samples))
    return path


def window(audio: Any, rate: int, start: float, end: float) -> Any:
    """``audio`` from ``start`` to ``end`` seconds, 0.5 s trimmed off each side."""
    return audio[int((start + 0.5) * rate):int((end - 0.5) * rate)]


def test_agent_hold_plays_moh_to_the_caller_and_is_recorded(
        node_factory: NodeFactory, phone_factory: PhoneFactory, tmp_path: Path) -> None:
    """The agent holds 3 s and resumes: meanwhile the caller hears the MOH tone and not the
    agent; the recording's caller channel carries the MOH; sidecar, CDR and metrics carry
    one 3 s hold by the agent."""
    moh = tone_wav(tmp_path / "moh-700.wav", MOH_HZ)
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}},
                                 music_on_hold=str(moh)), recording_start="answer")
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--hold-after", str(HOLD_AFTER),
                          "--unhold-after", str(HOLD_FOR), "--timeout", "40", name="agent")
    heard = tmp_path / "caller-heard.wav"
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--record", str(heard),
                           "--hangup-after", str(ANNOUNCEMENT_S + 9.0), "--timeout", "40",
                           name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()
    assert agent.find("hold") and agent.find("unhold"), agent.describe()
    # pjsua saw both re-INVITEs answered: media on hold, then active again.
    assert agent.find("media", lambda e: e.get("status") == "LOCAL_HOLD"), agent.describe()

    [wav] = node.wait_recordings(1)
    meta = json.loads(wav.with_suffix(".json").read_text())
    [hold] = meta["holds"]
    assert (hold["party"], hold["who"]) == ("agent", "alice")
    assert abs(hold["end"] - hold["start"] - HOLD_FOR) < 0.5, hold
    # Each time and the total are rounded to the ms on their own.
    assert abs(meta["hold"] - (hold["end"] - hold["start"])) <= 0.002

    # The recording (from the arrival): the caller channel has the MOH during the hold only.
    rate, audio = read_wav(wav)
    left = audio[:, 0]
    base = meta["recording_started_at"]
    held = window(left, rate, hold["start"] - base, hold["end"] - base)
    talking = window(left, rate, meta["answered_at"] - base, hold["start"] - base)
    assert tone_present(held, rate, MOH_HZ, min_ratio=0.2)
    assert band_power(talking, rate, MOH_HZ) < 0.05 * band_power(held, rate, MOH_HZ)

    # What the caller heard: the MOH and not the agent while held, the agent after.
    [media] = caller.find("media", lambda e: e.get("status") == "ACTIVE")[:1]
    rate, ears = read_wav(heard)
    ears = ears if ears.ndim == 1 else ears[:, 0]
    t0 = float(media["ts"])
    on_hold = window(ears, rate, hold["start"] - t0, hold["end"] - t0)
    resumed = window(ears, rate, hold["end"] - t0, hold["end"] - t0 + 3.0)
    assert tone_present(on_hold, rate, MOH_HZ)
    assert band_power(on_hold, rate, AGENT_HZ) < 0.05 * band_power(on_hold, rate, MOH_HZ)
    assert tone_present(resumed, rate, AGENT_HZ)

    [row] = node.wait_cdr(1)
    assert row["hold_ms"] == round(meta["hold"] * 1000)
    assert [h["party"] for h in row["holds"]] == ["agent"]
    assert node.metric("ccswitch_holds_total", queue="support", party="agent") == 1
    assert node.metric("ccswitch_hold_seconds_count", queue="support", route="inhouse") == 1


def test_hold_audio_silence_keeps_the_moh_out_of_the_recording(
        node_factory: NodeFactory, phone_factory: PhoneFactory, tmp_path: Path) -> None:
    """recordings.hold_audio: silence: the caller still hears the MOH during the agent's
    hold, but the recording's caller channel carries only the caller's own tone then."""
    moh = tone_wav(tmp_path / "moh-700.wav", MOH_HZ)
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}},
                                 music_on_hold=str(moh)), recording_start="answer",
                        hold_audio="silence")
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--hold-after", str(HOLD_AFTER),
                          "--unhold-after", str(HOLD_FOR), "--timeout", "40", name="agent")
    heard = tmp_path / "caller-heard.wav"
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--record", str(heard),
                           "--hangup-after", str(ANNOUNCEMENT_S + 7.0), "--timeout", "40",
                           name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()

    [wav] = node.wait_recordings(1)
    meta = json.loads(wav.with_suffix(".json").read_text())
    [hold] = meta["holds"]
    rate, audio = read_wav(wav)
    base = meta["recording_started_at"]
    held = window(audio[:, 0], rate, hold["start"] - base, hold["end"] - base)
    assert tone_present(held, rate, CALLER_HZ)
    assert band_power(held, rate, MOH_HZ) < 0.01 * band_power(held, rate, CALLER_HZ)

    [media] = caller.find("media", lambda e: e.get("status") == "ACTIVE")[:1]
    rate, ears = read_wav(heard)
    ears = ears if ears.ndim == 1 else ears[:, 0]
    t0 = float(media["ts"])
    assert tone_present(window(ears, rate, hold["start"] - t0, hold["end"] - t0), rate, MOH_HZ)
