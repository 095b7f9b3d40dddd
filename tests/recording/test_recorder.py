"""The call recorder: stereo WAV, sidecar, atomic placement, safe names, write errors."""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import wave
from pathlib import Path

import numpy as np
import pytest

from ccswitch.errors import RecordingError
from ccswitch.recording.recorder import CallRecorder, export_compressed, safe_call_id

STARTED = calendar.timegm((2024, 3, 9, 23, 59, 0))  # UTC date 2024-03-09


def tone(freq: float, frame: int, n: int = 160, rate: int = 8000) -> np.ndarray:
    t = (np.arange(n) + frame * n) / rate
    return (6000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def goertzel_power(samples: np.ndarray, freq: float, rate: int = 8000) -> float:
    x = samples.astype(np.float64)
    n = np.arange(x.shape[0])
    return float(abs(np.sum(x * np.exp(-2j * np.pi * freq * n / rate))) ** 2)


def record(tmp_path: Path, frames: int, call_id: str = "call-1") -> CallRecorder:
    rec = CallRecorder(tmp_path, call_id, STARTED, {"queue": "support"})
    for i in range(frames):
        rec.write(tone(440, i), tone(1000, i))
    return rec


def read_wav(path: Path) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        data = np.frombuffer(w.readframes(params.nframes), dtype="<i2").reshape(-1, 2)
    return params, data


def test_writes_valid_stereo_wav_with_all_frames(tmp_path: Path) -> None:
    """120 frames give an 8 kHz 16-bit stereo WAV of 19200 sample frames."""
    result = record(tmp_path, 120).finish({})
    params, data = read_wav(result.path)
    assert (params.nchannels, params.sampwidth, params.framerate) == (2, 2, 8000)
    assert params.nframes == 120 * 160 == result.frames == data.shape[0]
    assert result.duration_seconds == pytest.approx(2.4)


def test_left_and_right_carry_distinct_tones(tmp_path: Path) -> None:
    """Left holds the 440 Hz caller tone, right the 1 kHz agent tone."""
    _, data = read_wav(record(tmp_path, 50).finish({}).path)
    left, right = data[:, 0], data[:, 1]
    assert goertzel_power(left, 440) > 100 * goertzel_power(left, 1000)
    assert goertzel_power(right, 1000) > 100 * goertzel_power(right, 440)


def test_final_path_is_dated_from_started_at_utc(tmp_path: Path) -> None:
    """The WAV lands in <dir>/YYYY/MM/DD/<safe_id>.wav for the UTC start date."""
    result = record(tmp_path, 1).finish({})
    assert result.path == tmp_path / "2024" / "03" / "09" / "call-1.wav"


def test_sidecar_holds_metadata_and_recording_facts(tmp_path: Path) -> None:
    """The JSON sidecar merges both metadata dicts and describes the recording."""
    result = record(tmp_path, 50).finish({"outcome": "answered"})
    doc = json.loads(result.sidecar.read_text())
    assert result.sidecar == result.path.with_suffix(".json")
    assert doc["queue"] == "support" and doc["outcome"] == "answered"
    assert doc["recording"] == {
        "path": str(result.path), "channels": {"left": "caller", "right": "agent"},
        "sample_rate": 8000, "duration_seconds": 1.0, "frames": 8000,
        "sha256": hashlib.sha256(result.path.read_bytes()).hexdigest(), "sealed": False}


def test_nothing_in_final_place_until_finish(tmp_path: Path) -> None:
    """Before finish only the .incomplete temp file exists."""
    rec = record(tmp_path, 60)
    assert rec.temp_path.parent == tmp_path / ".incomplete"
    assert rec.temp_path.exists()
    assert not (tmp_path / "2024").exists()


def test_finish_leaves_nothing_incomplete(tmp_path: Path) -> None:
    """After finish .incomplete is empty and the final WAV and JSON exist."""
    result = record(tmp_path, 3).finish({})
    assert list((tmp_path / ".incomplete").iterdir()) == []
    assert result.path.exists() and result.sidecar.exists()


def test_writes_are_buffered(tmp_path: Path) -> None:
    """Less than a second of audio is still in memory, not on disk."""
    rec = record(tmp_path, 40)
    assert rec.temp_path.stat().st_size == 44
    assert rec.frames == 40 * 160


def test_second_recording_of_same_call_does_not_overwrite(tmp_path: Path) -> None:
    """Two recordings with the same call id and date both survive."""
    first = record(tmp_path, 1).finish({})
    second = record(tmp_path, 2).finish({})
    assert first.path != second.path and first.path.exists() and second.path.exists()


@pytest.mark.parametrize("call_id", ["../../etc/passwd", "a\r\nX-Evil: 1\r\n", "/abs/path", "..",
                                     "ok\x00nul", "x" * 500, ""])
def test_unsafe_call_ids_are_sanitised(call_id: str) -> None:
    """Ids with separators, CR/LF, NUL, dot-dot or excess length become safe file stems."""
    safe = safe_call_id(call_id)
    assert 0 < len(safe) <= 80
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in safe)
    assert not safe.startswith((".", "-"))


def test_sanitised_ids_stay_distinct() -> None:
    """Ids differing only in unsafe characters get different stems (hash suffix)."""
    assert safe_call_id("a/b") != safe_call_id("a:b")


def test_safe_call_id_keeps_clean_ids() -> None:
    """A clean id is used unchanged."""
    assert safe_call_id("c-20240309-0001.x_y") == "c-20240309-0001.x_y"


def test_traversal_id_stays_inside_directory(tmp_path: Path) -> None:
    """A ../ call id cannot place files outside the recordings directory."""
    root = tmp_path / "rec"
    result = record(root, 1, call_id="../../etc/passwd").finish({})
    assert result.path.resolve().is_relative_to(root.resolve())
    assert result.path.parent == root / "2024" / "03" / "09"


def test_write_after_finish_raises(tmp_path: Path) -> None:
    """A finished recorder refuses more frames."""
    rec = record(tmp_path, 1)
    rec.finish({})
    with pytest.raises(RecordingError):
        rec.write(tone(440, 0), tone(440, 0))


def test_disk_error_raises_recording_error_and_keeps_written_audio(tmp_path: Path) -> None:
    """A failing flush raises RecordingError; audio written before stays and finishes valid."""
    rec = record(tmp_path, 50)  # one full second flushed to disk
    os.close(rec._fd)
    rec._fd = os.open(os.devnull, os.O_RDONLY)  # every further write fails with EBADF
    with pytest.raises(RecordingError):
        for i in range(60):
            rec.write(tone(440, i), tone(1000, i))
    os.close(rec._fd)
    rec._fd = os.open(rec.temp_path, os.O_WRONLY)  # the disk "recovers" for finish
    os.lseek(rec._fd, 0, os.SEEK_END)
    result = rec.finish({})
    params, _ = read_wav(result.path)
    assert params.nframes == 100 * 160  # the second, buffered when the disk failed, too
    assert json.loads(result.sidecar.read_text())["recording"]["frames"] == params.nframes


def test_unwritable_directory_raises_recording_error(tmp_path: Path) -> None:
    """A recorder that cannot create its temp file raises RecordingError."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RecordingError):
        CallRecorder(blocker, "c1", STARTED, {})


def test_export_compressed_writes_next_to_wav(tmp_path: Path) -> None:
    """An ogg export appears beside the WAV and nothing partial is left."""
    result = record(tmp_path, 25).finish({})
    out = export_compressed(result.path, "ogg")
    assert out == result.path.with_suffix(".ogg") and out.stat().st_size > 0
    assert not list(result.path.parent.glob(".*part"))


def test_export_rejects_odd_format_names(tmp_path: Path) -> None:
    """A format name with path characters is refused."""
    with pytest.raises(RecordingError):
        export_compressed(tmp_path / "x.wav", "../mp3")
