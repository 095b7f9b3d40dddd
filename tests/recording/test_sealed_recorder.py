"""The recorder with ``seal``: the file on disk is sealed, decrypts to the stereo WAV,
and every finished recording is in the ledger."""

from __future__ import annotations

import io
import json
import math
import wave
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ccswitch.recording import ledger
from ccswitch.recording.recorder import CallRecorder, sealed_wav
from ccswitch.recording.sealed import Status, Unsealed
from tests.recording.test_recorder import STARTED, goertzel_power, tone


def entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte."""
    counts = Counter(data)
    return -sum(c / len(data) * math.log2(c / len(data)) for c in counts.values())


def unseal(key: X25519PrivateKey, path: Path) -> tuple[bytes, Status | None]:
    with open(path, "rb") as f:
        opened = Unsealed(key, f)
        wav = b"".join(sealed_wav(opened.chunks, opened.layout.plaintext_bytes))
    return wav, opened.status


def sealed_recording(tmp_path: Path, key: X25519PrivateKey, frames: int) -> CallRecorder:
    rec = CallRecorder(tmp_path, "call-1", STARTED, {"queue": "support"},
                       seal=key.public_key(), wall_clock=lambda: 1000.0)
    for i in range(frames):
        rec.write(tone(440, i), tone(1000, i))
    return rec


@pytest.fixture
def key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def test_sealed_file_is_not_a_wav(tmp_path: Path, key: X25519PrivateKey) -> None:
    """The sealed recording has no RIFF header and looks random (entropy > 7.9 bits/byte)."""
    result = sealed_recording(tmp_path, key, 100).finish({})
    data = result.path.read_bytes()
    assert result.path.name == "call-1.wav.enc"
    assert b"RIFF" not in data and entropy(data) > 7.9


def test_sealed_recording_decrypts_to_the_stereo_wav(tmp_path: Path,
                                                     key: X25519PrivateKey) -> None:
    """Decrypted, the file is a complete WAV: caller tone left, agent tone right."""
    result = sealed_recording(tmp_path, key, 100).finish({})
    wav, status = unseal(key, result.path)
    assert status is Status.COMPLETE
    with wave.open(io.BytesIO(wav)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 8000, 16000)
        data = np.frombuffer(w.readframes(16000), dtype="<i2").reshape(-1, 2)
    assert goertzel_power(data[:, 0], 440) > 100 * goertzel_power(data[:, 0], 1000)
    assert goertzel_power(data[:, 1], 1000) > 100 * goertzel_power(data[:, 1], 440)


def test_sidecar_holds_the_hash_of_the_sealed_file(tmp_path: Path,
                                                   key: X25519PrivateKey) -> None:
    """The sidecar names the sealed file, says it is sealed, and holds its SHA-256."""
    result = sealed_recording(tmp_path, key, 10).finish({})
    doc = json.loads(result.sidecar.read_text())
    assert result.sidecar.name == "call-1.json"
    assert doc["recording"]["sealed"] is True
    assert doc["recording"]["sha256"] == ledger.file_sha256(result.path) == result.sha256


def test_unfinished_sealed_recording_decrypts_its_prefix(tmp_path: Path,
                                                         key: X25519PrivateKey) -> None:
    """What a crash leaves in .incomplete decrypts to the audio flushed so far."""
    rec = sealed_recording(tmp_path, key, 150)  # 3 s: flushed once a second
    wav, status = unseal(key, rec.temp_path)
    assert status is Status.TRUNCATED
    with wave.open(io.BytesIO(wav)) as w:
        assert 8000 <= w.getnframes() <= 24000


def test_finished_recording_is_in_the_ledger(tmp_path: Path, key: X25519PrivateKey) -> None:
    """finish appends the file and sidecar hashes; verify then finds nothing wrong."""
    result = sealed_recording(tmp_path, key, 10).finish({})
    (entry,) = [json.loads(line) for line in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    assert entry["kind"] == "recording" and entry["at"] == 1000.0
    assert entry["files"]["2024/03/09/call-1.wav.enc"] == result.sha256
    assert ledger.verify(tmp_path).problems == ()
