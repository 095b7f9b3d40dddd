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

import attrs
import numpy as np
import numpy.typing as npt
import pytest
from twisted.logger import LogLevel, capturedLogs

from ccswitch.cdr.store import CdrStore
from ccswitch.recording.note import CallNote, accepted, fact_for
from ccswitch.recording.recorder import CallRecorder
from ccswitch.recording.recovery import INTERRUPTED_ERROR, RecoveredCall, recover_incomplete
from ccswitch.routing import actions as act
from ccswitch.routing.record import CallRecord, Outcome, Route
from ccswitch.routing.target import Target
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


def wav_of(call: RecoveredCall) -> Path:
    assert call.wav is not None, call
    return call.wav


def sidecar_of(call: RecoveredCall) -> Path:
    assert call.sidecar is not None, call
    return call.sidecar


def test_crashed_recording_opens_with_wave_module(tmp_path: Path) -> None:
    """The recovered file is an 8 kHz 16-bit stereo WAV holding every flushed frame."""
    node, _, _ = crash(tmp_path)
    call = only(recover_incomplete(node, now=NOW))
    with wave.open(str(wav_of(call)), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        assert w.getnframes() == ON_DISK
    assert wav_of(call).stat().st_size == 44 + ON_DISK * 4


def test_audio_before_the_crash_is_intact(tmp_path: Path) -> None:
    """The recovered samples equal the start of the real call, 440 Hz left and 1 kHz right."""
    node, _, reference = crash(tmp_path)
    _, data = read_wav(wav_of(only(recover_incomplete(node, now=NOW))))
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
    info = ffprobe(wav_of(only(recover_incomplete(node, now=NOW))))
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
    raw = wav_of(call).read_bytes()
    assert len(raw) == 44 + 4000
    assert struct.unpack_from("<I", raw, 4)[0] == 36 + 4000
    assert struct.unpack_from("<I", raw, 40)[0] == 4000
    assert np.array_equal(read_wav(wav_of(call))[1], reference[:1000])


def test_zeroed_header_is_rewritten_and_audio_kept(tmp_path: Path) -> None:
    """A header lost to a power cut (all zeros) is rebuilt; the audio after it is untouched."""
    def zero(path: Path) -> None:
        with path.open("r+b") as f:
            f.write(bytes(44))

    node, _, reference = crash(tmp_path, damage=zero)
    _, data = read_wav(wav_of(only(recover_incomplete(node, now=NOW))))
    assert np.array_equal(data, reference[:ON_DISK])


def test_ten_byte_file_becomes_valid_empty_wav(tmp_path: Path) -> None:
    """A temp file too short for a header becomes a 44-byte WAV with no frames."""
    node, _, _ = crash(tmp_path, damage=lambda p: os.truncate(p, 10))
    call = only(recover_incomplete(node, now=NOW))
    with wave.open(str(wav_of(call)), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (
            2, 2, 8000, 0)
    assert wav_of(call).stat().st_size == 44
    assert call.duration_seconds == 0.0
    ffprobe(wav_of(call))  # accepted as a file (raises on an error)


def test_placed_in_date_folder_of_estimated_start(tmp_path: Path) -> None:
    """Without start metadata the start is mtime minus duration, which picks the UTC date."""
    node, _, _ = crash(tmp_path)
    call = only(recover_incomplete(node, now=NOW))
    assert wav_of(call) == node / "2024" / "03" / "09" / "call-1.wav"
    assert sidecar_of(call) == wav_of(call).with_suffix(".json")
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
    doc = json.loads(sidecar_of(call).read_text())
    assert doc["call_id"] == "call-1"
    assert doc["outcome"] == "interrupted"
    assert doc["recording_error"] == INTERRUPTED_ERROR
    assert doc["recording"]["duration_seconds"] == 3.0
    assert doc["recording"]["frames"] == ON_DISK
    assert doc["recording"]["path"] == str(wav_of(call))


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
        "call-1", "interrupted", str(wav_of(call)))
    assert row.recording_error == INTERRUPTED_ERROR
    assert (row.arrived_ms, row.ended_ms, row.total_ms) == (
        (LAST_WRITE - 3) * 1000, LAST_WRITE * 1000, 3000)


def engine_record(call_id: str = "call-1", arrived: float = STARTED - 10) -> CallRecord:
    """The engine's record of a call that arrived ``arrived`` (epoch seconds)."""
    return CallRecord(call_id=call_id, caller="+3312", dialed="100", queue="sales",
                      group="inhouse", arrived_at=arrived, short_abandon_threshold=5.0)


def open_note(node: Path, record: CallRecord, at: float | None = None) -> CallNote:
    note = CallNote.open(node, record.call_id, record.arrived_at if at is None else at,
                         accepted(record, "sip-9"))
    assert note is not None
    return note


def note_action(note: CallNote, action: act.Action, record: CallRecord, at: float) -> None:
    """What the B2BUA does when it carries out ``action``: note its fact."""
    fact = fact_for(action, record)
    assert fact is not None
    note.add(fact[0], at, **fact[1])


def talking_to_alice(node: Path, wav_name: str, record: CallRecord) -> None:
    """A note of a call queued at STARTED - 6, offered to alice at -3, answered at -1,
    recording from STARTED (into ``wav_name``)."""
    note = open_note(node, record)
    record = attrs.evolve(record, qa_notice_played=True, announced_at=STARTED - 6,
                          queued_at=STARTED - 6)
    note_action(note, act.StartMusicOnHold(call_id=record.call_id, path=None), record,
                STARTED - 6)
    note_action(note, act.Ring(call_id=record.call_id, target=Target.agent("alice"),
                               uri="sip:alice@127.0.0.1"), record, STARTED - 3)
    record = attrs.evolve(record, agent_id="alice", answered_at=STARTED - 1)
    note_action(note, act.Bridge(call_id=record.call_id, target=Target.agent("alice")), record,
                STARTED - 1)
    note.add("recording", STARTED, wav=wav_name)


def test_start_is_taken_from_the_call_note(tmp_path: Path) -> None:
    """With a call note naming the WAV, the call id, recording start, caller and queue are
    the noted ones, not guessed from the file."""
    node, temp, _ = crash(tmp_path, call_id="a@b c")
    record = engine_record("a@b c")
    open_note(node, record).add("recording", STARTED, wav=temp.name)
    call = only(recover_incomplete(node, now=NOW))
    assert call.call_id == "a@b c" and not call.start_estimated
    assert wav_of(call).parent == node / "2024" / "03" / "09"
    assert wav_of(call).name == temp.name
    got = call.record
    assert (got["sip_call_id"], got["caller"], got["dialed"], got["queue"]) == (
        "sip-9", "+3312", "100", "sales")
    assert (got["arrived_at"], got["recording_started_at"], got["ended_at"]) == (
        STARTED - 10, STARTED, STARTED + 3.0)
    assert list(temp.parent.iterdir()) == []


def test_a_note_without_recording_becomes_an_interrupted_record_with_no_file(
        tmp_path: Path) -> None:
    """A call killed during the QA notice (noted, never recorded): an interrupted record
    without recording path, sidecar or WAV, ending at its last noted fact."""
    record = engine_record()
    open_note(tmp_path, record).add("still_there", STARTED - 8)
    call = only(recover_incomplete(tmp_path, now=NOW))
    assert (call.call_id, call.wav, call.sidecar, call.interrupted) == (
        "call-1", None, None, True)
    got = call.record
    assert (got["outcome"], got["queue"], got["caller"], got["recording_path"]) == (
        "interrupted", "sales", "+3312", None)
    assert (got["arrived_at"], got["ended_at"], got["answered_at"]) == (
        STARTED - 10, STARTED - 8, None)
    assert got["recording_error"] == INTERRUPTED_ERROR and not got["qa_notice_played"]
    assert list((tmp_path / ".incomplete").iterdir()) == []
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_a_record_from_a_note_alone_is_accepted_by_cdr_store(tmp_path: Path) -> None:
    """The recording-less interrupted record is a valid CDR row."""
    open_note(tmp_path, engine_record())
    call = only(recover_incomplete(tmp_path, now=NOW))
    store = CdrStore(tmp_path / "cdr.sqlite")
    try:
        store.add(call.record)
        row = store.get("call-1")
    finally:
        store.close()
    assert row is not None
    assert (row.outcome, row.recording_path, row.total_ms) == ("interrupted", None, 0)


def test_noted_agent_answer_and_queue_times_are_merged(tmp_path: Path) -> None:
    """Agent, answer, queue time and the answered offer (with its ring) from the note end
    up in the interrupted record and its sidecar."""
    node, temp, _ = crash(tmp_path)
    talking_to_alice(node, temp.name, engine_record())
    call = only(recover_incomplete(node, now=NOW))
    got = call.record
    assert (got["outcome"], got["agent_id"], got["route"], got["vendor"]) == (
        "interrupted", "alice", "inhouse", None)
    assert (got["queued_at"], got["answered_at"], got["ended_at"]) == (
        STARTED - 6, STARTED - 1, STARTED + 3.0)
    assert (got["wait"], got["ring"], got["talk"], got["qa_notice_played"]) == (
        5.0, 2.0, 4.0, True)
    assert [(o["agent_id"], o["result"]) for o in got["offers"]] == [("alice", "answered")]
    assert json.loads(sidecar_of(call).read_text())["agent_id"] == "alice"


def test_noted_vendor_route_is_merged(tmp_path: Path) -> None:
    """A call overflowed to a vendor keeps route, vendor, reason and the answering trunk."""
    record = engine_record()
    note = open_note(tmp_path, record)
    record = attrs.evolve(record, route=Route.VENDOR, vendor="acme",
                          overflow_reason="no_agents", overflowed_at=STARTED - 9)
    note_action(note, act.Ring(call_id="call-1", target=Target.vendor("acme"),
                               uri="sip:overflow@10.0.0.5"), record, STARTED - 9)
    record = attrs.evolve(record, answered_at=STARTED - 7)
    note_action(note, act.Bridge(call_id="call-1", target=Target.vendor("acme")), record,
                STARTED - 7)
    got = only(recover_incomplete(tmp_path, now=NOW)).record
    assert (got["route"], got["vendor"], got["overflow_reason"], got["agent_id"]) == (
        "vendor", "acme", "no_agents", None)
    assert (got["overflowed_at"], got["answered_at"], got["ended_at"]) == (
        STARTED - 9, STARTED - 7, STARTED - 7)
    assert [(o["vendor"], o["trunk"]) for o in got["offers"]] == [
        ("acme", "sip:overflow@10.0.0.5")]


def test_noted_pauses_are_in_the_record(tmp_path: Path) -> None:
    """A pause still running at the crash ends with the call."""
    node, temp, _ = crash(tmp_path)
    note = open_note(node, engine_record())
    note.add("recording", STARTED, wav=temp.name)
    note.add("paused", STARTED + 1)
    note.add("resumed", STARTED + 1.5)
    note.add("paused", STARTED + 2)
    got = only(recover_incomplete(node, now=NOW)).record
    assert got["recording_pauses"] == [{"from": STARTED + 1, "to": STARTED + 1.5},
                                       {"from": STARTED + 2, "to": STARTED + 3.0}]


def test_a_torn_last_line_of_a_note_is_skipped(tmp_path: Path) -> None:
    """Half a fact at the end of a note costs that fact only."""
    node, temp, _ = crash(tmp_path)
    talking_to_alice(node, temp.name, engine_record())
    with (node / ".incomplete" / "call-1.call").open("ab") as f:
        f.write(b'{"fact":"paused","at":')
    assert only(recover_incomplete(node, now=NOW)).record["agent_id"] == "alice"


def test_a_wav_created_just_before_the_kill_is_paired_with_its_note(tmp_path: Path) -> None:
    """Killed between creating the WAV and noting it: the note of the same name is used."""
    node, temp, _ = crash(tmp_path)
    open_note(node, engine_record())
    call = only(recover_incomplete(node, now=NOW))
    assert (call.record["queue"], call.record["arrived_at"]) == ("sales", STARTED - 10)
    assert wav_of(call).exists() and list(temp.parent.iterdir()) == []


def test_the_note_of_a_finished_and_stored_call_gives_no_record(tmp_path: Path) -> None:
    """A note whose WAV was finished and whose record is stored (killed just before the
    note went): removed, no record."""
    rec = CallRecorder(tmp_path, "call-1", STARTED, {"call_id": "call-1"})
    note = open_note(tmp_path, engine_record())
    note.add("recording", STARTED, wav=rec.temp_path.name)
    rec.finish({"outcome": "answered_inhouse"})
    assert recover_incomplete(tmp_path, now=NOW, stored=lambda call_id: True) == []
    assert list((tmp_path / ".incomplete").iterdir()) == []


def test_a_finished_recording_whose_record_was_not_stored_gets_it_from_its_sidecar(
        tmp_path: Path) -> None:
    """Killed between the recorder's finish and storing the record: the record is the
    finished sidecar's, with its real outcome, and the note is removed."""
    rec = CallRecorder(tmp_path, "call-1", STARTED, {"call_id": "call-1", "queue": "sales"})
    note = open_note(tmp_path, engine_record())
    note.add("recording", STARTED, wav=rec.temp_path.name)
    result = rec.finish({"outcome": "answered_inhouse", "agent_id": "alice"})
    call = only(recover_incomplete(tmp_path, now=NOW))
    assert (call.call_id, call.interrupted, call.wav, call.sidecar) == (
        "call-1", False, result.path, result.sidecar)
    assert (call.record["outcome"], call.record["agent_id"], call.record["recording_path"]) == (
        "answered_inhouse", "alice", str(result.path))
    assert list((tmp_path / ".incomplete").iterdir()) == []


def test_a_call_whose_record_is_stored_keeps_it(tmp_path: Path) -> None:
    """Killed after the record was stored but before its note went: no interrupted record
    replaces the real one, and the note is removed."""
    open_note(tmp_path, engine_record())
    store = CdrStore(tmp_path / "cdr.sqlite")
    try:
        real = attrs.evolve(engine_record(), ended_at=STARTED - 8,
                            outcome=Outcome.SHORT_ABANDON)
        store.add(real.to_dict())
        found = recover_incomplete(tmp_path, now=NOW,
                                   stored=lambda call_id: store.get(call_id) is not None)
    finally:
        store.close()
    assert found == []
    assert list((tmp_path / ".incomplete").iterdir()) == []


def test_a_second_run_after_a_note_alone_is_a_no_op(tmp_path: Path) -> None:
    """The recording-less record is returned once."""
    open_note(tmp_path, engine_record())
    only(recover_incomplete(tmp_path, now=NOW))
    assert recover_incomplete(tmp_path, now=NOW + 60) == []


def test_second_run_is_a_no_op(tmp_path: Path) -> None:
    """Running recovery again returns nothing and changes no file."""
    node, _, _ = crash(tmp_path)
    call = only(recover_incomplete(node, now=NOW))
    placed = (wav_of(call), sidecar_of(call))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in placed}
    assert recover_incomplete(node, now=NOW + 60) == []
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before} == before
    assert sorted(p.name for p in wav_of(call).parent.iterdir()) == ["call-1.json", "call-1.wav"]


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
    sidecar_of(first).rename(temp.parent / ".call-1.recovered")
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
    assert (sidecar_of(call), call.interrupted) == (result.sidecar, False)
    assert call.record["outcome"] == "answered_inhouse"
    assert call.record["recording_path"] == str(result.path)
    assert json.loads(result.sidecar.read_text())["outcome"] == "answered_inhouse"
