"""Sealed recordings end to end: a real ccswitch process with recordings.encrypt, pjsua2
caller and agent, then the reviewers' tools (ccswitch decrypt, verify) and the API."""

from __future__ import annotations

import http.client
import json
import math
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.audio import band_power, read_wav, tone_present
from tests.e2e.node import (
    AGENT_HZ, ANNOUNCEMENT_S, CALLER_HZ, REPO, Node, NodeFactory, agent_uri, dialplan,
)
from tests.phones.client import PhoneFactory, free_udp_port

pytestmark = pytest.mark.e2e

TOKEN = "t0k3n-" + "e5f6a7b8" * 4


def keygen(directory: Path) -> tuple[Path, Path]:
    result = subprocess.run([sys.executable, "-m", "ccswitch.cli", "keygen", "--out",
                             str(directory)], cwd=REPO, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return directory / "recordings.key", directory / "recordings.pub"


def decrypt(key: Path, sealed: Path) -> bytes:
    result = subprocess.run([sys.executable, "-m", "ccswitch.cli", "decrypt", "--key", str(key),
                             str(sealed)], cwd=REPO, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte."""
    return -sum(c / len(data) * math.log2(c / len(data)) for c in Counter(data).values())


def answered_call(node_factory: NodeFactory, phone_factory: PhoneFactory, public: Path,
                  **options: Any) -> tuple[Node, Path, dict[str, Any]]:
    """One call, caller tone and agent tone, through a node sealing its recordings."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}),
                        recording_start="answer", api_token=TOKEN, encrypt_public_key=public,
                        **options)
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--answer-delay", "0.5", "--timeout", "40",
                          name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 4.0), "--timeout", "40",
                           name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()
    [sealed] = node.wait_recordings(1)
    meta = json.loads(sealed.with_name(sealed.name[:-len(".wav.enc")] + ".json").read_text())
    return node, sealed, meta


def check_tones(wav: bytes, meta: dict[str, Any], scratch: Path) -> None:
    """After the answer: the caller's tone on the left only, the agent's on the right only."""
    scratch.write_bytes(wav)
    rate, audio = read_wav(scratch)
    assert rate == 8000 and audio.ndim == 2 and audio.shape[1] == 2
    answered = meta["answered_at"] - meta["recording_started_at"]
    talk = slice(int((answered + 0.5) * rate), int((len(audio) / rate - 0.3) * rate))
    assert talk.stop - talk.start > rate
    left, right = audio[talk, 0], audio[talk, 1]
    assert tone_present(left, rate, CALLER_HZ) and tone_present(right, rate, AGENT_HZ)
    assert band_power(left, rate, AGENT_HZ) < 0.05 * band_power(left, rate, CALLER_HZ)
    assert band_power(right, rate, CALLER_HZ) < 0.05 * band_power(right, rate, AGENT_HZ)


def test_sealed_recording_decrypts_downloads_sealed_and_verifies(
        node_factory: NodeFactory, phone_factory: PhoneFactory, tmp_path: Path) -> None:
    """The recording on disk is no WAV; decrypt gives both parties' tones on their own
    channels, and its sealed mp3 copy the same; the API hands out the sealed bytes; verify
    is clean, then finds a flipped byte."""
    private, public = keygen(tmp_path / "keys")
    node, sealed, meta = answered_call(node_factory, phone_factory, public,
                                       compressed_copy="mp3")
    data = sealed.read_bytes()
    assert sealed.name.endswith(".wav.enc") and b"RIFF" not in data[:64]
    assert b"WAVE" not in data and entropy(data) > 7.99, entropy(data)
    # No clear audio anywhere, .incomplete included.
    assert not [p for p in node.recordings.rglob("*") if p.suffix in (".wav", ".mp3")]

    check_tones(decrypt(private, sealed), meta, tmp_path / "decrypted.wav")
    copy = sealed.with_name(sealed.name.replace(".wav.enc", ".mp3.enc"))
    assert b"ID3" not in copy.read_bytes()[:128]
    mp3 = tmp_path / "copy.mp3"
    mp3.write_bytes(decrypt(private, copy))
    decoded = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(mp3), "-ar", "8000",
                              "-ac", "2", "-f", "wav", "pipe:1"], capture_output=True,
                             timeout=60, check=True).stdout
    check_tones(decoded, meta, tmp_path / "copy.wav")

    status, body = node.api("GET", f"recordings/{meta['call_id']}", TOKEN)
    assert status == 200 and body == data

    result = node.cli("verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 problem(s)" in result.stdout
    ledger = [json.loads(line) for line in
              (node.recordings / "ledger.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in ledger] == ["recording", "download"]

    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x01
    sealed.write_bytes(bytes(flipped))
    result = node.cli("verify")
    assert result.returncode == 1
    relative = sealed.relative_to(node.recordings).as_posix()
    assert f"changed: {relative}" in result.stdout


def test_node_with_the_recording_key_downloads_the_wav(
        node_factory: NodeFactory, phone_factory: PhoneFactory, tmp_path: Path) -> None:
    """With http.recording_key the API decrypts while it sends: the WAV decrypt gives; a
    changed recording's download is cut at the changed chunk and logged."""
    private, public = keygen(tmp_path / "keys")
    node, sealed, meta = answered_call(node_factory, phone_factory, public,
                                       recording_key=private)
    status, body = node.api("GET", f"recordings/{meta['call_id']}", TOKEN)
    assert status == 200 and body == decrypt(private, sealed)
    assert body[:4] == b"RIFF"
    check_tones(body, meta, tmp_path / "downloaded.wav")

    flipped = bytearray(sealed.read_bytes())
    flipped[len(flipped) // 2] ^= 0x01
    sealed.write_bytes(bytes(flipped))
    with pytest.raises(http.client.IncompleteRead) as cut:
        node.api("GET", f"recordings/{meta['call_id']}", TOKEN)
    assert 0 < len(cut.value.partial) < len(body)
    node.wait_log("download cut: chunk")


def test_kill_9_mid_call_leaves_a_sealed_recording_that_decrypts_cut_short(
        node_factory: NodeFactory, phone_factory: PhoneFactory, tmp_path: Path) -> None:
    """SIGKILL during a sealed recording; after the restart the recovered .wav.enc decrypts
    (with a cut-short warning) to the talk before the kill, and verify is clean."""
    private, public = keygen(tmp_path / "keys")
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}),
                        encrypt_public_key=public)
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--timeout", "40", name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--timeout", "40", name="caller")
    node.wait_metric(1, "ccswitch_agents", timeout=20, group="inhouse", state="on_call")
    time.sleep(4.0)  # a few seconds of talk reach the disk (1 s buffer, 0.5 s chunks)
    node.kill()
    caller.stop()
    agent.stop()
    node.start()

    [sealed] = node.wait_recordings(1)
    assert sealed.name.endswith(".wav.enc")
    result = subprocess.run([sys.executable, "-m", "ccswitch.cli", "decrypt", "--key",
                             str(private), str(sealed)], cwd=REPO, capture_output=True,
                            timeout=60)
    assert result.returncode == 0 and b"cut short" in result.stderr, result.stderr
    (tmp_path / "recovered.wav").write_bytes(result.stdout)
    rate, audio = read_wav(tmp_path / "recovered.wav")
    assert len(audio) / rate > 1.5, len(audio) / rate
    talk = audio[int(0.5 * rate):]
    assert tone_present(talk[:, 0], rate, CALLER_HZ) and tone_present(talk[:, 1], rate, AGENT_HZ)
    verified = node.cli("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
