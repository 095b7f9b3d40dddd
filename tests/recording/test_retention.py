"""Retention purge on real recordings: what goes, what stays, the audit log, and the CLI."""

from __future__ import annotations

import calendar
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from twisted.logger import capturedLogs

from ccswitch.recording import ledger
from ccswitch.recording.recorder import CallRecorder, export_compressed
from ccswitch.recording.retention import LOG_NAME, PurgeResult, RetentionError, purge

REPO = Path(__file__).resolve().parents[2]
PLANS = REPO / "dialplans"  # the shipped example: any loadable dialplan will do
DAY = 86400.0
NOW = float(calendar.timegm((2024, 6, 1, 12, 0, 0)))
OLD = NOW - 120 * DAY  # 2024-02-02
RECENT = NOW - 10 * DAY  # 2024-05-22


def record(directory: Path, call_id: str, arrived_at: float, *, compressed: str | None = None,
           sidecar: bool = True) -> list[Path]:
    """A finished recording (2 frames of audio) of a call that arrived at ``arrived_at``."""
    rec = CallRecorder(directory, call_id, arrived_at + 3, {"call_id": call_id})
    for _ in range(2):
        rec.write(np.full(160, 100, dtype=np.int16), np.full(160, -100, dtype=np.int16))
    result = rec.finish({"arrived_at": arrived_at})
    files = [result.path, result.sidecar]
    if compressed is not None:
        files.append(export_compressed(result.path, compressed))
    if not sidecar:
        result.sidecar.unlink()
        files.remove(result.sidecar)
    return files


def log_lines(directory: Path) -> list[dict[str, Any]]:
    path = directory / LOG_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def run(directory: Path, **kwargs: Any) -> PurgeResult:
    return purge(directory, older_than_days=kwargs.pop("days", 90), now=NOW, **kwargs)


def test_old_recording_set_is_deleted_with_every_file_of_its_stem(tmp_path: Path) -> None:
    """An old call loses its WAV, sidecar and compressed copy together."""
    files = record(tmp_path, "old-1", OLD, compressed="ogg")
    assert len(files) == 3 and all(f.exists() for f in files)
    result = run(tmp_path)
    assert result.deleted == ("old-1",) and result.errors == ()
    assert not any(f.exists() for f in files)
    assert result.bytes_freed > 0


def test_recent_recordings_are_kept(tmp_path: Path) -> None:
    """A call younger than the limit stays, untouched and counted as kept."""
    record(tmp_path, "old-1", OLD)
    new = record(tmp_path, "new-1", RECENT)
    result = run(tmp_path)
    assert result.deleted == ("old-1",) and result.kept == 1
    assert all(f.exists() for f in new)


def test_age_is_the_sidecar_arrival_to_the_second(tmp_path: Path) -> None:
    """Arrived just over the limit ago: deleted; just under: kept."""
    record(tmp_path, "over", NOW - 90 * DAY - 1)
    record(tmp_path, "under", NOW - 90 * DAY + 1)
    assert run(tmp_path).deleted == ("over",)


def test_fractional_days_are_honoured(tmp_path: Path) -> None:
    """--older-than 0.5 deletes a call from 13 hours ago but not one from 11."""
    record(tmp_path, "thirteen", NOW - 13 * 3600)
    record(tmp_path, "eleven", NOW - 11 * 3600)
    assert run(tmp_path, days=0.5).deleted == ("thirteen",)


def test_purge_log_has_one_json_line_per_deleted_call(tmp_path: Path) -> None:
    """Each deletion is one JSON line: time, call id, files, arrived_at and the reason."""
    files = record(tmp_path, "old-1", OLD)
    record(tmp_path, "new-1", RECENT)
    run(tmp_path)
    (line,) = log_lines(tmp_path)
    assert line["at"] == NOW and line["call_id"] == "old-1" and line["arrived_at"] == OLD
    assert line["reason"] == "older than 90 days" and line["age_from"] == "sidecar"
    assert sorted(line["files"]) == sorted(str(f.relative_to(tmp_path)) for f in files)


def test_purge_log_is_private(tmp_path: Path) -> None:
    """purge.log is created mode 0600 (it names calls)."""
    record(tmp_path, "old-1", OLD)
    run(tmp_path)
    assert stat.S_IMODE((tmp_path / LOG_NAME).stat().st_mode) == 0o600


def test_purge_log_is_appended_not_rewritten(tmp_path: Path) -> None:
    """A second purge adds lines after the first run's."""
    record(tmp_path, "a", OLD)
    run(tmp_path)
    record(tmp_path, "b", OLD)
    run(tmp_path)
    assert [line["call_id"] for line in log_lines(tmp_path)] == ["a", "b"]


def test_log_line_is_written_before_any_file_is_unlinked(tmp_path: Path) -> None:
    """At every unlink, purge.log already holds the line naming that file."""
    record(tmp_path, "a", OLD, compressed="ogg")
    record(tmp_path, "b", OLD)
    seen: list[tuple[str, bool]] = []

    def unlink(name: str, dir_fd: int) -> None:
        logged = {Path(f).name for line in log_lines(tmp_path) for f in line["files"]}
        seen.append((name, name in logged))
        os.unlink(name, dir_fd=dir_fd)

    run(tmp_path, unlink=unlink)
    assert len(seen) == 5 and all(ok for _, ok in seen), seen


def test_sidecar_is_removed_last(tmp_path: Path) -> None:
    """Audio goes first, the sidecar (the set's description) last."""
    record(tmp_path, "a", OLD, compressed="ogg")
    order: list[str] = []

    def unlink(name: str, dir_fd: int) -> None:
        order.append(name)
        os.unlink(name, dir_fd=dir_fd)

    run(tmp_path, unlink=unlink)
    assert order[-1] == "a.json" and sorted(order[:2]) == ["a.ogg", "a.wav"]


def test_dry_run_deletes_nothing_and_logs_nothing(tmp_path: Path) -> None:
    """--dry-run lists what would go, leaves every file and writes no purge.log."""
    files = record(tmp_path, "old-1", OLD)
    record(tmp_path, "new-1", RECENT)
    result = run(tmp_path, dry_run=True)
    assert result.deleted == ("old-1",) and result.dry_run and result.bytes_freed > 0
    assert all(f.exists() for f in files)
    assert not (tmp_path / LOG_NAME).exists()


def test_purge_is_idempotent(tmp_path: Path) -> None:
    """A second run finds nothing more to delete and logs nothing more."""
    record(tmp_path, "old-1", OLD)
    record(tmp_path, "new-1", RECENT)
    first = run(tmp_path)
    second = run(tmp_path)
    assert first.deleted == ("old-1",)
    assert second.deleted == () and second.errors == () and second.kept == 1
    assert len(log_lines(tmp_path)) == 1


def test_empty_old_date_folders_are_removed(tmp_path: Path) -> None:
    """The day, month and year folders emptied by the purge go too."""
    record(tmp_path, "old-1", OLD)
    record(tmp_path, "new-1", RECENT)
    run(tmp_path)
    assert not (tmp_path / "2024" / "02").exists()
    assert (tmp_path / "2024" / "05" / "22").is_dir()


def test_date_folder_with_other_files_stays(tmp_path: Path) -> None:
    """A day folder still holding a non-recording file is not removed."""
    wav = record(tmp_path, "old-1", OLD)[0]
    note = wav.parent / "notes.txt"
    note.write_text("keep me")
    run(tmp_path)
    assert note.read_text() == "keep me"


def test_empty_folder_inside_the_limit_stays(tmp_path: Path) -> None:
    """Today's (possibly just created) empty day folder is never removed."""
    today = tmp_path / "2024" / "06" / "01"
    today.mkdir(parents=True)
    run(tmp_path, days=0.1)
    assert today.is_dir()


def test_non_recording_files_are_untouched(tmp_path: Path) -> None:
    """.incomplete/, downloads.log, the CDR database and odd names in day folders all stay."""
    wav = record(tmp_path, "old-1", OLD)[0]
    day = wav.parent
    others = [tmp_path / "downloads.log", tmp_path / "cdr.sqlite", tmp_path / "cdr.sqlite-wal",
              tmp_path / ".incomplete" / "x.wav", tmp_path / "misc" / "2024" / "y.wav",
              day / ".old-1.ogg.part", day / "old-1.wav.bak", day / "-dash.wav",
              day / "old-1.txt"]
    for path in others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
        os.utime(path, (OLD, OLD))
    (tmp_path / "2024" / "13" / "99").mkdir(parents=True)
    result = run(tmp_path)
    assert result.deleted == ("old-1",) and not wav.exists()
    assert all(p.read_text() == "x" for p in others)


def test_symlinked_date_folder_is_not_followed(tmp_path: Path) -> None:
    """A day folder that is a symlink out of the directory is not entered."""
    outside, recordings = tmp_path / "outside", tmp_path / "rec"
    victims = record(outside, "victim", OLD)
    (recordings / "2024" / "01").mkdir(parents=True)
    (recordings / "2024" / "01" / "05").symlink_to(victims[0].parent)
    result = run(recordings)
    assert result.deleted == () and all(v.exists() for v in victims)


def test_symlinked_files_are_neither_followed_nor_deleted(tmp_path: Path) -> None:
    """Recording-named symlinks in a day folder are skipped, and their targets kept."""
    outside, recordings = tmp_path / "outside", tmp_path / "rec"
    victims = record(outside, "victim", OLD)
    real = record(recordings, "real", OLD)
    links = [real[0].parent / "victim.wav", real[0].parent / "victim.json"]
    for link, target in zip(links, victims):
        link.symlink_to(target)
    result = run(recordings)
    assert result.deleted == ("real",)
    assert all(v.exists() for v in victims) and all(link.is_symlink() for link in links)


def test_purge_log_symlink_is_not_written_through(tmp_path: Path) -> None:
    """A purge.log symlink is refused: nothing is deleted unlogged, the error is reported."""
    target = tmp_path / "target.log"
    target.write_text("")
    recordings = tmp_path / "rec"
    files = record(recordings, "old-1", OLD)
    (recordings / LOG_NAME).symlink_to(target)
    result = run(recordings)
    assert result.deleted == () and len(result.errors) == 1
    assert target.read_text() == "" and all(f.exists() for f in files)


def test_unwritable_purge_log_stops_all_deletion(tmp_path: Path) -> None:
    """If the audit line cannot be written, no recording is deleted at all."""
    files = record(tmp_path, "a", OLD) + record(tmp_path, "b", OLD)
    (tmp_path / LOG_NAME).mkdir()
    result = run(tmp_path)
    assert result.deleted == () and len(result.errors) == 1 and "purge.log" in result.errors[0]
    assert all(f.exists() for f in files)


def test_undeletable_file_is_reported_and_the_rest_purged(tmp_path: Path) -> None:
    """One unlink failing: that call is an error and keeps its sidecar; others still go."""
    stuck = record(tmp_path, "stuck", OLD)
    others = record(tmp_path, "a", OLD) + record(tmp_path, "z", OLD)

    def unlink(name: str, dir_fd: int) -> None:
        if name == "stuck.wav":
            raise PermissionError(13, "Permission denied")
        os.unlink(name, dir_fd=dir_fd)

    result = run(tmp_path, unlink=unlink)
    assert result.deleted == ("a", "z")
    assert len(result.errors) == 1 and "stuck.wav" in result.errors[0]
    assert all(f.exists() for f in stuck) and not any(f.exists() for f in others)


def test_freed_bytes_count_only_deleted_files(tmp_path: Path) -> None:
    """bytes_freed is the size of the files actually removed."""
    files = record(tmp_path, "a", OLD, compressed="ogg")
    size = sum(f.stat().st_size for f in files)
    assert run(tmp_path).bytes_freed == size


def test_sidecar_without_arrival_falls_back_to_the_date_folder(tmp_path: Path) -> None:
    """No usable arrived_at: the call's UTC date folder dates it."""
    old, new = record(tmp_path, "old", OLD), record(tmp_path, "new", RECENT)
    for sidecar in (old[1], new[1]):
        sidecar.write_text(json.dumps({"call_id": sidecar.stem, "arrived_at": "garbage"}))
    result = run(tmp_path)
    assert result.deleted == ("old",) and result.kept == 1
    assert log_lines(tmp_path)[0]["age_from"] == "date_folder"


def test_date_folder_counts_the_whole_day(tmp_path: Path) -> None:
    """Without arrived_at, a call is dated by the end of its day (never deleted early)."""
    record(tmp_path, "edge", NOW - 90 * DAY)  # folder 2024-03-03 ends less than 90 days ago
    sidecar = next(tmp_path.glob("2024/03/03/edge.json"))
    sidecar.write_text("{}")
    assert run(tmp_path).deleted == ()


def test_bad_date_folder_falls_back_to_modification_time(tmp_path: Path) -> None:
    """In a folder that is no calendar day (2024/02/31), file times date the set."""
    folder = tmp_path / "2024" / "02" / "31"
    folder.mkdir(parents=True)
    for stem, when in (("old", OLD), ("new", RECENT)):
        for suffix in (".wav", ".json"):
            path = folder / f"{stem}{suffix}"
            path.write_text("{}")
            os.utime(path, (when, when))
    result = run(tmp_path)
    assert result.deleted == ("old",)
    assert log_lines(tmp_path)[0]["age_from"] == "mtime"


def test_old_orphan_wav_without_sidecar_is_deleted(tmp_path: Path) -> None:
    """A WAV whose sidecar never came (crash), untouched for longer than the limit, goes."""
    (wav,) = record(tmp_path, "orphan", OLD, sidecar=False)
    os.utime(wav, (OLD, OLD))
    assert run(tmp_path).deleted == ("orphan",) and not wav.exists()


def test_recently_written_wav_without_sidecar_is_kept(tmp_path: Path) -> None:
    """A sidecar-less WAV modified inside the limit may be mid-finish: it stays."""
    (wav,) = record(tmp_path, "finishing", OLD, sidecar=False)
    os.utime(wav, (RECENT, RECENT))
    assert run(tmp_path).deleted == () and wav.exists()


def test_deletions_are_logged_with_the_call_id(tmp_path: Path) -> None:
    """Each purged call gets a twisted.logger event carrying its call_id."""
    record(tmp_path, "old-1", OLD)
    with capturedLogs() as events:
        run(tmp_path)
    purged = [e for e in events if e.get("call_id") == "old-1"
              and "purged" in e.get("log_format", "")]
    assert len(purged) == 1 and purged[0]["bytes"] > 0


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    """A recordings directory that does not exist raises RetentionError, naming it."""
    with pytest.raises(RetentionError, match="nowhere"):
        run(tmp_path / "nowhere")


@pytest.mark.parametrize("days", [0.0, -1.0, float("nan"), float("inf")])
def test_limit_must_be_a_positive_number(tmp_path: Path, days: float) -> None:
    """Zero, negative and non-finite limits are refused before anything is touched."""
    with pytest.raises(ValueError):
        run(tmp_path, days=days)


# -- the command line, as the systemd timer runs it -------------------------------------------


def write_config(tmp_path: Path) -> tuple[Path, Path]:
    recordings = tmp_path / "rec"
    recordings.mkdir()
    config = tmp_path / "ccswitch.yaml"
    config.write_text(
        "sip:\n  listen: 127.0.0.1:5070\n  trusted: [127.0.0.0/8]\n"
        "rtp:\n  address: 127.0.0.1\n  ports: 40000-40099\n"
        "http:\n  listen: 127.0.0.1:0\n"
        f"recordings:\n  directory: {recordings}\n"
        f"dialplans: {PLANS}\n")
    return config, recordings


def ccswitch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ccswitch.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_cli_purges_old_recordings_and_keeps_new_ones(tmp_path: Path) -> None:
    """``ccswitch purge`` deletes the old call, keeps the new one, logs it, exits 0."""
    config, recordings = write_config(tmp_path)
    now = time.time()
    old = record(recordings, "old-call", now - 100 * DAY)
    new = record(recordings, "new-call", now - DAY)
    result = ccswitch("purge", "--config", str(config), "--older-than", "90")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("purged 1 recording(s) older than 90 days")
    assert not any(f.exists() for f in old) and all(f.exists() for f in new)
    assert [line["call_id"] for line in log_lines(recordings)] == ["old-call"]


def test_cli_dry_run_lists_call_ids_and_deletes_nothing(tmp_path: Path) -> None:
    """--dry-run prints each call id that would go, then the summary; no file changes."""
    config, recordings = write_config(tmp_path)
    old = record(recordings, "old-call", time.time() - 100 * DAY)
    result = ccswitch("purge", "--config", str(config), "--older-than", "90", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "old-call" and lines[1].startswith("would purge 1 recording(s)")
    assert all(f.exists() for f in old) and not (recordings / LOG_NAME).exists()


def test_cli_exits_1_when_something_could_not_be_deleted(tmp_path: Path) -> None:
    """A purge that hits an error prints it on stderr and exits 1."""
    config, recordings = write_config(tmp_path)
    old = record(recordings, "old-call", time.time() - 100 * DAY)
    (recordings / LOG_NAME).mkdir()
    result = ccswitch("purge", "--config", str(config), "--older-than", "90")
    assert result.returncode == 1
    assert "error: cannot write purge.log" in result.stderr
    assert all(f.exists() for f in old)


def test_cli_exits_2_on_a_bad_config(tmp_path: Path) -> None:
    """A config that does not load is reported and nothing is purged (exit 2)."""
    config = tmp_path / "ccswitch.yaml"
    config.write_text("sip: {listen: nowhere}\n")
    result = ccswitch("purge", "--config", str(config), "--older-than", "90")
    assert result.returncode == 2 and "error: " in result.stderr


def test_cli_refuses_a_non_positive_limit(tmp_path: Path) -> None:
    """--older-than 0 is a usage error (exit 2), not 'delete everything'."""
    config, _ = write_config(tmp_path)
    result = ccswitch("purge", "--config", str(config), "--older-than", "0")
    assert result.returncode == 2 and "positive number of days" in result.stderr


def test_an_exemplary_recording_is_kept_however_old(tmp_path: Path) -> None:
    """A call id in ``keep`` (marked exemplary) is not deleted, not logged, and listed."""
    kept = record(tmp_path, "old-best", OLD)
    record(tmp_path, "old-1", OLD)
    result = run(tmp_path, keep=frozenset({"old-best"}))
    assert result.deleted == ("old-1",) and result.exempt == ("old-best",)
    assert all(f.exists() for f in kept)
    assert [line["call_id"] for line in log_lines(tmp_path)] == ["old-1"]


def test_an_exemplary_recording_without_its_sidecar_is_kept_by_its_file_stem(
        tmp_path: Path) -> None:
    """A kept call whose sidecar is gone is still recognised by its file name."""
    (wav,) = record(tmp_path, "old:best", OLD, sidecar=False)
    os.utime(wav, (OLD, OLD))  # an orphan the purge would otherwise take
    result = run(tmp_path, keep=frozenset({"old:best"}))
    assert result.deleted == () and wav.exists() and len(result.exempt) == 1


def test_sealed_recording_set_is_purged(tmp_path: Path) -> None:
    """A sealed recording (.wav.enc) goes with its sidecar like a WAV."""
    rec = CallRecorder(tmp_path, "old-s", OLD + 3, {"call_id": "old-s"},
                       seal=X25519PrivateKey.generate().public_key())
    result = rec.finish({"arrived_at": OLD})
    assert run(tmp_path).deleted == ("old-s",)
    assert not result.path.exists() and not result.sidecar.exists()


def test_purge_is_entered_in_the_ledger(tmp_path: Path) -> None:
    """Each purged set is a ledger entry, so verify finds nothing missing afterwards."""
    files = record(tmp_path, "old-1", OLD, compressed="ogg")
    run(tmp_path)
    entries = [json.loads(x) for x in (tmp_path / ledger.LEDGER_NAME).read_text().splitlines()]
    assert entries[-1]["kind"] == "purge" and len(entries[-1]["files"]) == len(files)
    assert ledger.verify(tmp_path).problems == ()
