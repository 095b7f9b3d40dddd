"""Crash recovery of a sealed recording: whole chunks kept, torn chunk cut, trailer added,
the result decrypts to a playable WAV of the audio before the crash."""

from __future__ import annotations

import io
import json
import os
import shutil
import wave
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ccswitch.recording import ledger
from ccswitch.recording.recorder import CallRecorder
from ccswitch.recording.recovery import recover_incomplete
from ccswitch.recording.sealed import CHUNK_SIZE, HEADER_SIZE, TAG_SIZE, Status
from tests.audio import tone_present
from tests.recording.test_recovery import FRAMES, LAST_WRITE, NOW, STARTED, only, tone
from tests.recording.test_sealed_recorder import unseal

RECORD = CHUNK_SIZE + TAG_SIZE


def sealed_crash(tmp_path: Path, key: X25519PrivateKey, cut: int) -> tuple[Path, np.ndarray]:
    """A node dir holding a sealed temp recording cut ``cut`` bytes short, and the audio
    the call really had."""
    live, node = tmp_path / "live", tmp_path / "node"
    rec = CallRecorder(live, "call-1", STARTED, {"call_id": "call-1", "queue": "support"},
                       seal=key.public_key())
    for i in range(FRAMES):
        rec.write(tone(440, i), tone(1000, i))
    (node / ".incomplete").mkdir(parents=True)
    temp = node / ".incomplete" / rec.temp_path.name
    shutil.copyfile(rec.temp_path, temp)
    os.truncate(temp, temp.stat().st_size - cut)
    os.utime(temp, (LAST_WRITE, LAST_WRITE))
    wav, _ = unseal(key, rec.finish({}).path)
    with wave.open(io.BytesIO(wav)) as w:
        reference = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    return node, reference


def test_sealed_recording_cut_mid_chunk_recovers_to_its_whole_chunks(tmp_path: Path) -> None:
    """Cut inside a chunk: the recovered .wav.enc decrypts (interrupted) to the audio of
    the whole chunks before it, caller left and agent right."""
    key = X25519PrivateKey.generate()
    node, reference = sealed_crash(tmp_path, key, cut=RECORD // 2)
    call = only(recover_incomplete(node, now=NOW))
    assert call.wav is not None and call.wav.name == "call-1.wav.enc"
    assert call.wav.read_bytes()[:6] == b"CCSREC"
    wav, status = unseal(key, call.wav)
    assert status is Status.INTERRUPTED
    with wave.open(io.BytesIO(wav)) as w:
        frames = w.getnframes()
        data = np.frombuffer(w.readframes(frames), dtype="<i2").reshape(-1, 2)
    whole = (call.wav.stat().st_size - HEADER_SIZE) // RECORD
    assert frames == (whole * CHUNK_SIZE - 44) // 4 > 8000
    assert np.array_equal(data, reference[:frames])
    assert tone_present(data[:, 0], 8000, 440) and tone_present(data[:, 1], 8000, 1000)
    assert call.duration_seconds == frames / 8000


def test_recovered_sealed_recording_is_ledgered(tmp_path: Path) -> None:
    """The recovered file and sidecar are in the ledger, the sidecar says sealed: verify
    finds nothing wrong."""
    key = X25519PrivateKey.generate()
    node, _ = sealed_crash(tmp_path, key, cut=7)
    call = only(recover_incomplete(node, now=NOW))
    assert call.sidecar is not None
    assert json.loads(call.sidecar.read_text())["recording"]["sealed"] is True
    assert ledger.verify(node).problems == ()
