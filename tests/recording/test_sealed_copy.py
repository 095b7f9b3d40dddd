"""The sealed compressed copy: encoded through ffmpeg pipes while recording, sealed,
decrypting to audio ffmpeg can decode; no clear file on disk at any time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ccswitch.errors import RecordingError
from ccswitch.recording import ledger
from ccswitch.recording.compressed import SealedCopy
from ccswitch.recording.recorder import CallRecorder
from ccswitch.recording.recovery import recover_incomplete
from ccswitch.recording.sealed import Status, Unsealed
from tests.audio import tone_present
from tests.recording.test_recorder import STARTED, tone
from tests.recording.test_recovery import NOW, only

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def recorder(tmp_path: Path, key: X25519PrivateKey, fmt: str = "mp3") -> CallRecorder:
    rec = CallRecorder(tmp_path, "call-1", STARTED, {"queue": "support"},
                       seal=key.public_key(), sealed_copy=fmt)
    for i in range(150):
        rec.write(tone(440, i), tone(1000, i))
    return rec


def decoded(key: X25519PrivateKey, path: Path) -> np.ndarray:
    """The sealed copy decrypted in memory and decoded by ffmpeg to 8 kHz stereo."""
    with open(path, "rb") as f:
        opened = Unsealed(key, f)
        data = b"".join(opened.chunks)
    assert opened.status is Status.COMPLETE
    pcm = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", "pipe:0", "-f", "s16le",
                          "-ar", "8000", "-ac", "2", "pipe:1"], input=data,
                         capture_output=True, timeout=60, check=True).stdout
    return np.frombuffer(pcm, dtype="<i2").reshape(-1, 2)


@pytest.mark.parametrize("fmt", ["mp3", "ogg"])
def test_sealed_copy_decrypts_to_the_call_audio(tmp_path: Path, fmt: str) -> None:
    """The copy lies sealed next to the recording and decodes to both parties' tones."""
    key = X25519PrivateKey.generate()
    result = recorder(tmp_path, key, fmt).finish({})
    copy = result.path.with_name(f"call-1.{fmt}.enc")
    audio = decoded(key, copy)
    assert abs(len(audio) / 8000 - 3.0) < 0.2
    assert tone_present(audio[4000:, 0], 8000, 440) and tone_present(audio[4000:, 1], 8000, 1000)
    recording = json.loads(result.sidecar.read_text())["recording"]
    assert recording["compressed"] == {"path": str(copy), "sha256": ledger.file_sha256(copy)}
    assert ledger.verify(tmp_path).problems == ()


def test_no_clear_audio_file_while_recording(tmp_path: Path) -> None:
    """While the call is recorded .incomplete holds only sealed files."""
    key = X25519PrivateKey.generate()
    rec = recorder(tmp_path, key)
    names = sorted(os.listdir(tmp_path / ".incomplete"))
    assert names == ["call-1.mp3.enc", "call-1.wav.enc"]
    assert all((tmp_path / ".incomplete" / n).read_bytes()[:6] == b"CCSREC" for n in names)
    rec.finish({})
    assert list(tmp_path.rglob("*.mp3")) == [] and list(tmp_path.rglob("*.wav")) == []


def test_failing_encoder_leaves_no_copy(tmp_path: Path) -> None:
    """An encoder that exits with an error: finish says so and removes the partial copy."""
    key = X25519PrivateKey.generate()
    (tmp_path / ".incomplete").mkdir()
    temp = tmp_path / ".incomplete" / "x.mp3.enc"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    copy = SealedCopy(fd, temp, "mp3", key.public_key(), command=["sh", "-c", "exit 3"])
    copy.feed(b"\0" * 1000)
    with pytest.raises(RecordingError, match="exited with 3|stopped"):
        copy.finish(tmp_path / "x.mp3.enc")
    assert not temp.exists() and not (tmp_path / "x.mp3.enc").exists()


def test_crash_recovery_places_the_sealed_copy_with_the_recording(tmp_path: Path) -> None:
    """After a crash the copy is cut to whole chunks, placed next to the recovered
    recording, named in its sidecar and ledgered; it decrypts as interrupted."""
    key = X25519PrivateKey.generate()
    live, node = tmp_path / "live", tmp_path / "node"
    rec = recorder(live, key)
    rec.flush()
    (node / ".incomplete").mkdir(parents=True)
    for name in ("call-1.wav.enc", "call-1.mp3.enc"):
        shutil.copyfile(live / ".incomplete" / name, node / ".incomplete" / name)
    with open(node / ".incomplete" / "call-1.mp3.enc", "ab") as f:
        f.write(os.urandom(100))  # a torn chunk
    call = only(recover_incomplete(node, now=NOW))
    assert call.wav is not None
    copy = call.wav.with_name("call-1.mp3.enc")
    recording = json.loads(call.wav.with_name("call-1.json").read_text())["recording"]
    assert recording["compressed"] == {"path": str(copy), "sha256": ledger.file_sha256(copy)}
    with open(copy, "rb") as f:
        opened = Unsealed(key, f)
        b"".join(opened.chunks)
    assert opened.status is Status.INTERRUPTED
    assert ledger.verify(node).problems == ()
    rec.finish({})
