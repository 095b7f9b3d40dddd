"""Start-up recovery of recordings a kill -9 left in .incomplete: repaired, placed, CDR-ready."""

from __future__ import annotations

import calendar
import json
import os
import shutil
import struct
import subprocess
import wave
from pathlib import Path
from typing import Any, Callable

import numpy as np
import numpy.typing as npt
import pytest
from twisted.logger import LogLevel, capturedLogs

from ccswitch.cdr.store import CdrStore
from ccswitch.recording.recorder import CallRecorder
from ccswitch.recording.recovery import (
    INTERRUPTED_ERROR, START_SUFFIX, RecoveredCall, recover_incomplete,
)
from tests.audio import read_wav, tone_present

STARTED = calendar.timegm((2024, 3, 9, 23, 59, 0))
LAST_WRITE = calendar.timegm((2024, 3, 10, 0, 0, 2))  # mtime of the crashed temp file
NOW = calendar.timegm((2024, 3, 10, 12, 0, 0))
FRAMES = 160  # 3.2 s written; 3.0 s flushed (1 s buffer) when the node is killed
ON_DISK = 3 * 8000
REQUIRE_TOOLS = bool(os.environ.get("CCSWITCH_REQUIRE_TOOLS"))


def tone(freq: float, frame: int, n: int = 160) -> npt.NDArray[np.int16]:
    t = (np.arange(n) + frame * n) / 8000
    return (6000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def crash(tmp_path: Path, call_id: str = "call-1",
          damage: Callable[[Path], None] | None = None) -> tuple[Path, Path, np.ndarray]:
    """A node dir holding what kill -9 leaves of a recording, and the full audio for reference.

    The recorder runs in a scratch dir; its temp file is copied into the node's
    ``.incomplete`` as it stands (no finish), then the scratch one is finished to
    get the audio the call really had.
    """
    live, node = tmp_path / "live", tmp_path / "node"
    rec = CallRecorder(live, call_id, STARTED, {"call_id": call_id, "queue": "support"})
    for i in range(FRAMES):
        rec.write(tone(440, i), tone(1000, i))
    (node / ".incomplete").mkdir(parents=True)
    temp = node / ".incomplete" / rec.temp_path.name
    shutil.copyfile(rec.temp_path, temp)
    if damage is not None:
        damage(temp)
    os.utime(temp, (LAST_WRITE, LAST_WRITE))
    _, reference = read_wav(rec.finish({}).path)
    return node, temp, reference


def only(calls: list[RecoveredCall]) -> RecoveredCall:
    assert len(calls) == 1, calls
    return calls[0]


def test_crashed_recording_opens_with_wave_module(tmp_path: Path) -> None:
    """The recovered file is an 8 kHz 16-bit stereo WAV holding every flushed frame."""
    node, _, _ = crash(tmp_path)
    call = only(recover_incomplete(node, now=NOW))
    with wave.open(str(call.wav), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        assert w.getnframes() == ON_DISK
    assert call.wav.stat().st_size == 44 + ON_DISK * 4


def test_audio_before_the_crash_is_intact(tmp_path: Path) -> None:
    """The recovered samples equal the start of the real call, 440 Hz left and 1 kHz right."""
    node, _, reference = crash(tmp_path)
    _, data = read_wav(only(recover_incomplete(node, now=NOW)).wav)
    assert np.array_equal(data, reference[:ON_DISK])
    assert tone_present(data[:, 0], 8000, 440) and not tone_present(data[:, 0], 8000, 1000)
    assert tone_present(data[:, 1], 8000, 1000) and not tone_present(data[:, 1], 8000, 440)


def ffprobe(path: Path) -> dict[str, Any]:
    if shutil.which("ffprobe") is None:
        if REQUIRE_TOOLS:
            pytest.fail("ffprobe is required (CCSWITCH_REQUIRE_TOOLS is set)")
        pytest.skip("ffprobe not installed")
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries",
         "stream=codec_name,channels,sample_rate:format=duration", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=30, check=True)
    assert out.stderr == ""
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_recovered_recording_passes_ffprobe(tmp_path: Path) -> None:
    """ffprobe reads the recovered file as clean 8 kHz stereo PCM of the flushed length."""
    node, _, _ = crash(tmp_path)
    info = ffprobe(only(recover_incomplete(node, now=NOW)).wav)
    stream = info["streams"][0]
    assert (stream["codec_name"], stream["channels"], stream["sample_rate"]) == (
        "pcm_s16le", 2, "8000")
    assert float(info["format"]["duration"]) == pytest.approx(3.0)


def test_torn_last_frame_is_cut(tmp_path: Path) -> None:
    """A file ending mid-frame keeps only whole stereo frames, header sizes to match."""
    def tear(path: Path) -> None:
        os.truncate(path, 44 + 1000 * 4 + 3)

    node, _, reference = crash(tmp_path, damage=tear)
    call = only(recover_incomplete(node, now=NOW))
    raw = call.wav.read_bytes()
    assert len(raw) == 44 + 4000
    assert struct.unpack_from("<I", raw, 4)[0] == 36 + 4000
    assert struct.unpack_from("<I", raw, 40)[0] == 4000
    assert np.array_equal(read_wav(call.wav)[1], reference[:1000])


def test_zeroed_header_is_rewritten_and_audio_kept(tmp_path: Path) -> None:
    """A header lost to a power cut (all zeros) is rebuilt; the audio after it is untouched."""
    def zero(path: Path) -> None:
        with path.open("r+b") as f:
            f.write(bytes(44))

    node, _, reference = crash(tmp_path, damage=zero)
    _, data = read_wav(only(recover_incomplete(node, now=NOW)).wav)
    assert np.array_equal(data, reference[:ON_DISK])


def test_ten_byte_file_becomes_valid_empty_wav(tmp_path: Path) -> None:
    """A temp file too short for a header becomes a 44-byte WAV with no frames."""
    node, _, _ = crash(tmp_path, damage=lambda p: os.truncate(p, 10))
    call = only(recover_incomplete(node, now=NOW))
    with wave.open(str(call.wav), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (
            2, 2, 8000, 0)
    assert call.wav.stat().st_size == 44
    assert call.duration_seconds == 0.0
    ffprobe(call.wav)  # accepted as a file (raises on an error)


def test_placed_in_date_folder_of_estimated_start(tmp_path: Path) -> None:
    """Without start metadata the start is mtime minus duration, which picks the UTC date."""
    node, _, _ = crash(tmp_path)
    call = only(recover_incomplete(node, now=NOW))
    assert call.wav == node / "2024" / "03" / "09" / "call-1.wav"
    assert call.sidecar == call.wav.with_suffix(".json")
    assert call.start_estimated
    assert call.record["arrived_at"] == LAST_WRITE - 3.0


def test_nothing_left_in_incomplete(tmp_path: Path) -> None:
    """After recovery the temp directory is empty."""
    node, temp, _ = crash(tmp_path)
    recover_incomplete(node, now=NOW)
    assert list(temp.parent.iterdir()) == []


def test_sidecar_says_interrupted(tmp_path: Path) -> None:
    """The sidecar has outcome interrupted, the error text and the recorded duration."""
    node, _, _ = crash(tmp_path)
    call = only(recover_incomplete(node, now=NOW))
    doc = json.loads(call.sidecar.read_text())
    assert doc["call_id"] == "call-1"
    assert doc["outcome"] == "interrupted"
    assert doc["recording_error"] == INTERRUPTED_ERROR
    assert doc["recording"]["duration_seconds"] == 3.0
    assert doc["recording"]["frames"] == ON_DISK
    assert doc["recording"]["path"] == str(call.wav)


def test_record_has_times_from_start_and_duration(tmp_path: Path) -> None:
    """arrived_at is the start, ended_at start plus the recorded duration."""
    node, _, _ = crash(tmp_path)
    record = only(recover_incomplete(node, now=NOW)).record
    assert record["outcome"] == "interrupted"
    assert record["ended_at"] - record["arrived_at"] == pytest.approx(3.0)
    assert record["recording_path"].endswith("call-1.wav")
    assert record["recording_error"] == INTERRUPTED_ERROR


def test_record_is_accepted_by_cdr_store(tmp_path: Path) -> None:
    """A real CdrStore stores the record and reads it back as interrupted."""
    node, _, _ = crash(tmp_path)
    call = only(recover_incomplete(node, now=NOW))
    store = CdrStore(tmp_path / "cdr.sqlite")
    try:
        store.add(call.record)
        (row,) = list(store.rows())
    finally:
        store.close()
    assert (row.call_id, row.outcome, row.recording_path) == (
        "call-1", "interrupted", str(call.wav))
    assert row.recording_error == INTERRUPTED_ERROR
    assert (row.arrived_ms, row.ended_ms, row.total_ms) == (
        (LAST_WRITE - 3) * 1000, LAST_WRITE * 1000, 3000)


def test_start_metadata_is_used_when_the_recorder_wrote_it(tmp_path: Path) -> None:
    """A ``<temp>.wav.start`` file gives the real call id, start, caller and queue."""
    node, temp, _ = crash(tmp_path, call_id="a@b c")
    temp.with_name(temp.name + START_SUFFIX).write_text(json.dumps({
        "call_id": "a@b c", "started_at": STARTED,
        "metadata": {"sip_call_id": "sip-9", "caller": "+3312", "dialed": "100",
                     "queue": "sales"}}))
    call = only(recover_incomplete(node, now=NOW))
    assert call.call_id == "a@b c" and not call.start_estimated
    assert call.wav.parent == node / "2024" / "03" / "09"
    assert call.wav.name == temp.name
    record = call.record
    assert (record["sip_call_id"], record["caller"], record["dialed"], record["queue"]) == (
        "sip-9", "+3312", "100", "sales")
    assert (record["arrived_at"], record["ended_at"]) == (STARTED, STARTED + 3.0)
    assert list(temp.parent.iterdir()) == []


def test_second_run_is_a_no_op(tmp_path: Path) -> None:
    """Running recovery again returns nothing and changes no file."""
    node, _, _ = crash(tmp_path)
    call = only(recover_incomplete(node, now=NOW))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (call.wav, call.sidecar)}
    assert recover_incomplete(node, now=NOW + 60) == []
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before} == before
    assert sorted(p.name for p in call.wav.parent.iterdir()) == ["call-1.json", "call-1.wav"]


def test_missing_incomplete_directory_means_nothing_to_do(tmp_path: Path) -> None:
    """A recordings directory without .incomplete yields no calls and creates nothing."""
    assert recover_incomplete(tmp_path, now=NOW) == []
    assert list(tmp_path.iterdir()) == []


def test_each_recovered_file_is_logged_with_call_id(tmp_path: Path) -> None:
    """One info event per recovered file carries its call_id."""
    node, _, _ = crash(tmp_path)
    with capturedLogs() as events:
        recover_incomplete(node, now=NOW)
    ours = [e for e in events if e.get("log_namespace") == "ccswitch.recording.recovery"]
    assert [(e["log_level"], e["call_id"]) for e in ours] == [(LogLevel.info, "call-1")]


def test_unreadable_temp_file_is_left_logged_and_others_recovered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A temp file that cannot be opened stays as it is, logged; the next one is recovered."""
    node, temp, _ = crash(tmp_path)
    locked = temp.with_name("locked.wav")
    shutil.copyfile(temp, locked)
    content = locked.read_bytes()
    locked.chmod(0)
    real_open = os.open

    def deny(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(path) == locked:  # root ignores mode bits: refuse like EACCES would
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    with capturedLogs() as events:
        calls = recover_incomplete(node, now=NOW)
    assert [c.call_id for c in calls] == ["call-1"]
    locked.chmod(0o600)
    assert locked.read_bytes() == content
    errors = [e for e in events if e["log_level"] == LogLevel.error]
    assert [(e["call_id"], e["path"]) for e in errors] == [("locked", str(locked))]


def test_wav_of_another_format_is_left_untouched(tmp_path: Path) -> None:
    """A RIFF file that is not 8 kHz stereo 16-bit is not relabelled; it stays in place."""
    incomplete = tmp_path / ".incomplete"
    incomplete.mkdir()
    foreign = incomplete / "other.wav"
    with wave.open(str(foreign), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(bytes(400))
    content = foreign.read_bytes()
    with capturedLogs() as events:
        assert recover_incomplete(tmp_path, now=NOW) == []
    assert foreign.read_bytes() == content
    assert any(e["log_level"] == LogLevel.error and e["call_id"] == "other" for e in events)


def test_crash_during_recovery_is_finished_next_run(tmp_path: Path) -> None:
    """A recovery killed after moving the WAV (sidecar still pending) completes on the next run."""
    node, temp, _ = crash(tmp_path)
    first = only(recover_incomplete(node, now=NOW))
    first.sidecar.rename(temp.parent / ".call-1.recovered")
    again = only(recover_incomplete(node, now=NOW))
    assert (again.wav, again.sidecar, again.interrupted) == (first.wav, first.sidecar, True)
    assert dict(again.record) == dict(first.record)
    assert list(temp.parent.iterdir()) == []


def test_sidecar_left_by_a_finish_crash_is_put_in_place(tmp_path: Path) -> None:
    """A normal finish killed before its sidecar moved: the sidecar is placed, outcome kept."""
    rec = CallRecorder(tmp_path, "call-2", STARTED, {"call_id": "call-2", "queue": "q"})
    rec.write(tone(440, 0), tone(1000, 0))
    result = rec.finish({"outcome": "answered_inhouse"})
    result.sidecar.rename(tmp_path / ".incomplete" / "call-2.json")
    call = only(recover_incomplete(tmp_path, now=NOW))
    assert (call.sidecar, call.interrupted) == (result.sidecar, False)
    assert call.record["outcome"] == "answered_inhouse"
    assert call.record["recording_path"] == str(result.path)
    assert json.loads(result.sidecar.read_text())["outcome"] == "answered_inhouse"
