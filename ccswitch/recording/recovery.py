"""Start-up recovery of recordings left in ``.incomplete`` by a crash (kill -9, power cut).

Run once before the node takes calls. ``recover_incomplete`` turns every
leftover temp WAV into a finished, playable recording: the header's RIFF and
data sizes are set from the file size (a torn last frame is cut so the data is
whole 4-byte stereo frames; a file shorter than a header becomes an empty WAV),
the file is moved to ``<directory>/YYYY/MM/DD/<safe id>.wav`` like
``CallRecorder.finish`` does, and a sidecar with ``outcome: "interrupted"`` is
written. Each call comes back as a ``RecoveredCall`` whose ``record`` is ready
for ``CdrStore.add``. Audio is never deleted; a file that cannot be repaired is
logged and left where it is.

What is known about a call comes from ``<temp wav name>.start`` next to the
temp WAV when the recorder wrote one (JSON: ``{"call_id": str, "started_at":
epoch seconds, "metadata": {...}}``). Without it the call id is the file's
stem and the start is estimated as the file's mtime (its last flush) minus the
recorded duration.

Crash during recovery: the sidecar is first written to
``.incomplete/.<stem>.recovered``, then the WAV is moved, then the sidecar. A
later run finishes any step left over, and also places a sidecar that
``CallRecorder.finish`` left in ``.incomplete`` after moving its WAV (that call
ended normally, so its own outcome is kept).
"""

from __future__ import annotations

import functools
import json
import math
import os
import stat
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Final, Mapping

import attrs
from twisted.logger import Logger

from ccswitch.errors import RecordingError
from ccswitch.recording.recorder import (
    BLOCK_ALIGN, HEADER_SIZE, INCOMPLETE_DIR, SAMPLE_RATE, START_SUFFIX, _fsync_dir,
    _wav_header, final_paths, safe_call_id, write_fd,
)
from ccswitch.routing.record import Outcome, epoch, iso_utc

__all__ = [
    "INTERRUPTED", "INTERRUPTED_ERROR", "START_SUFFIX", "RecoveredCall", "RecoveryError",
    "recover_incomplete",
]

log = Logger()

INTERRUPTED: Final = Outcome.INTERRUPTED.value
INTERRUPTED_ERROR: Final = "interrupted: ccswitch stopped during the call"
#: Recovery's own temp sidecar, ``.<stem>.recovered`` (no safe id starts with a dot).
_RECOVERED_SUFFIX: Final = ".recovered"
#: A queue name is required by the CDR; used when the recorder did not say which.
UNKNOWN_QUEUE: Final = "unknown"
_MAX_DATA: Final = 0xFFFFFFFF - 36
_TEMPLATE: Final = _wav_header(0)


class RecoveryError(RecordingError):
    """A leftover recording could not be recovered; it stays in ``.incomplete``."""

    error_id = "recording.recovery"


def _frozen(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class RecoveredCall:
    """One recording put in place at start-up, with its call record for the CDR.

    ``interrupted`` is False only for a call that had ended normally but whose
    sidecar the crash kept in ``.incomplete``; ``record`` then holds its real outcome.
    ``start_estimated`` means the start time came from the file's mtime.
    """

    call_id: str = attrs.field(validator=attrs.validators.min_len(1))
    wav: Path
    sidecar: Path
    record: Mapping[str, Any] = attrs.field(converter=_frozen)
    interrupted: bool = True
    duration_seconds: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    start_estimated: bool = False


@attrs.frozen(kw_only=True)
class _Start:
    call_id: str
    started_at: float | None
    metadata: Mapping[str, Any]


def recover_incomplete(directory: Path, *, now: float) -> list[RecoveredCall]:
    """Repair and place every leftover temp recording under ``directory/.incomplete``.

    Blocking (file I/O); run at start-up before calls are taken. Idempotent: a
    second run finds nothing to do. Files that cannot be recovered are logged
    (with ``call_id``) and left in place; the others are still recovered.
    """
    incomplete = Path(directory) / INCOMPLETE_DIR
    names = _listing(incomplete)
    if names is None:
        return []
    if not names:
        return []
    directory = Path(directory)
    recovered: list[RecoveredCall] = []
    for name in names:
        if name.endswith(".wav") and not name.startswith("."):
            call = _guarded(incomplete / name, name[:-4],
                            functools.partial(_recover_wav, directory, incomplete / name, now))
            if call is not None:
                recovered.append(call)
    for name in _listing(incomplete) or []:
        if name.endswith(".json") or _recovered_stem(name) is not None:
            call = _guarded(incomplete / name, _recovered_stem(name) or name[:-5],
                            functools.partial(_place_leftover_sidecar, directory,
                                              incomplete / name))
            if call is not None:
                recovered.append(call)
    remaining = set(_listing(incomplete) or [])
    for name in sorted(remaining):
        # Early metadata whose WAV is gone (finished or recovered): nothing needs it.
        wav_name = name[:-len(START_SUFFIX)]
        if (name.endswith(".wav" + START_SUFFIX) and wav_name not in remaining
                and f".{wav_name[:-4]}{_RECOVERED_SUFFIX}" not in remaining):
            _remove_quietly(incomplete / name)
    _fsync_dir(incomplete)
    return recovered


def _listing(incomplete: Path) -> list[str] | None:
    try:
        return sorted(os.listdir(incomplete))
    except FileNotFoundError:
        return None
    except OSError as e:
        log.error("recordings: cannot list {path}: {error}", path=str(incomplete), error=str(e))
        return None


def _guarded(path: Path, call_id: str,
             job: Callable[[], RecoveredCall | None]) -> RecoveredCall | None:
    try:
        result = job()
    except (OSError, RecordingError, ValueError) as e:
        log.error("recording {call_id}: cannot recover {path}, left in place: {error}",
                  call_id=call_id, path=str(path), error=str(e))
        return None
    return result


def _recovered_stem(name: str) -> str | None:
    if name.startswith(".") and name.endswith(_RECOVERED_SUFFIX):
        return name[1:-len(_RECOVERED_SUFFIX)]
    return None


# -- one leftover WAV ---------------------------------------------------------------

def _recover_wav(directory: Path, temp: Path, now: float) -> RecoveredCall:
    stem = temp.name[:-4]
    start = _read_start(temp, stem)
    data_bytes, mtime = _repair(temp, start.call_id)
    frames = data_bytes // BLOCK_ALIGN
    duration = frames / SAMPLE_RATE
    estimated = start.started_at is None
    if start.started_at is not None:
        started_at = start.started_at
    else:
        started_at = max(0.0, min(mtime, now) - duration)
    safe_id = safe_call_id(start.call_id) if start.call_id != stem else stem
    wav, sidecar = final_paths(directory, safe_id, started_at)
    record = _interrupted_record(start, started_at, duration, wav)
    document: dict[str, Any] = dict(record)
    document["recording"] = {
        "path": str(wav),
        "channels": {"left": "caller", "right": "agent"},
        "sample_rate": SAMPLE_RATE,
        "duration_seconds": duration,
        "frames": frames,
        "error": INTERRUPTED_ERROR,
        "recovered_at": now,
        "start_estimated": estimated,
    }
    pending = temp.with_name(f".{stem}{_RECOVERED_SUFFIX}")
    _write_file(pending, json.dumps(document, indent=2, sort_keys=True, default=str).encode())
    os.replace(temp, wav)
    _fsync_dir(wav.parent)
    os.replace(pending, sidecar)
    _fsync_dir(sidecar.parent)
    _remove_quietly(temp.with_name(temp.name + START_SUFFIX))
    log.info("recording {call_id} recovered after a crash: {path} ({seconds:.1f} s, "
             "start {how})", call_id=start.call_id, path=str(wav), seconds=duration,
             how="estimated from mtime" if estimated else "as recorded")
    return RecoveredCall(call_id=start.call_id, wav=wav, sidecar=sidecar, record=record,
                         interrupted=True, duration_seconds=duration,
                         start_estimated=estimated)


def _read_start(temp: Path, stem: str) -> _Start:
    path = temp.with_name(temp.name + START_SUFFIX)
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return _Start(call_id=stem, started_at=None, metadata={})
    except (OSError, ValueError) as e:
        log.warn("recording {call_id}: ignoring unreadable {path}: {error}",
                 call_id=stem, path=str(path), error=str(e))
        return _Start(call_id=stem, started_at=None, metadata={})
    if not isinstance(raw, dict):
        raw = {}
    call_id = raw.get("call_id")
    metadata = raw.get("metadata")
    return _Start(call_id=call_id if isinstance(call_id, str) and call_id else stem,
                  started_at=_seconds(raw.get("started_at")),
                  metadata=metadata if isinstance(metadata, dict) else {})


def _repair(temp: Path, call_id: str) -> tuple[int, float]:
    """Fix the header in place; returns (data bytes, mtime before the repair)."""
    fd = os.open(temp, os.O_RDWR | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RecoveryError(f"{temp} is not a regular file")
        header = os.pread(fd, HEADER_SIZE, 0)
        if len(header) < HEADER_SIZE:
            data_bytes = 0  # the header itself was torn: no audio was written yet
        elif header[:4] == b"RIFF" and header[8:40] == _TEMPLATE[8:40]:
            data_bytes = st.st_size - HEADER_SIZE
        elif header[:4] == b"RIFF" or header[8:12] == b"WAVE":
            raise RecoveryError(f"{temp} is a WAV of another format; not touching it")
        else:
            log.warn("recording {call_id}: header of {path} unreadable, rewritten as "
                     "8 kHz 16-bit stereo", call_id=call_id, path=str(temp))
            data_bytes = st.st_size - HEADER_SIZE
        data_bytes -= data_bytes % BLOCK_ALIGN
        if data_bytes > _MAX_DATA:
            raise RecoveryError(f"{temp} holds more audio than a WAV header can describe")
        os.pwrite(fd, _wav_header(data_bytes), 0)
        if st.st_size != HEADER_SIZE + data_bytes:
            os.ftruncate(fd, HEADER_SIZE + data_bytes)
        os.fsync(fd)
    finally:
        os.close(fd)
    # Keep the last-write time: it dates the call if recovery is interrupted and rerun.
    os.utime(temp, ns=(st.st_atime_ns, st.st_mtime_ns))
    return data_bytes, st.st_mtime


def _interrupted_record(start: _Start, started_at: float, duration: float,
                        wav: Path) -> dict[str, Any]:
    """A ``CallRecord.to_dict()``-shaped record plus sip_call_id and recording fields."""
    meta = start.metadata
    vendor = _text(meta, "vendor") or None
    arrived_at = _seconds(meta.get("arrived_at"))
    if arrived_at is None or arrived_at > started_at:
        arrived_at = started_at
    ended_at = started_at + duration
    answered_at = _seconds(meta.get("answered_at"))
    if answered_at is not None and not arrived_at <= answered_at <= ended_at:
        answered_at = None
    times: dict[str, float | None] = {
        "arrived_at": arrived_at,
        "announced_at": _seconds(meta.get("announced_at")),
        "queued_at": _seconds(meta.get("queued_at")),
        "overflowed_at": _seconds(meta.get("overflowed_at")),
        "answered_at": answered_at,
        "ended_at": ended_at,
        "recording_started_at": started_at,
    }
    record: dict[str, Any] = {
        "call_id": start.call_id,
        "sip_call_id": _text(meta, "sip_call_id"),
        "caller": _text(meta, "caller") or "",
        "dialed": _text(meta, "dialed") or "",
        "queue": _text(meta, "queue") or UNKNOWN_QUEUE,
        "group": _text(meta, "group") or "",
        "agent_id": _text(meta, "agent_id"),
        "outcome": INTERRUPTED,
        "route": "vendor" if vendor is not None else "inhouse",
        "vendor": vendor,
        "overflow_reason": _text(meta, "overflow_reason") or None,
    }
    for name, value in times.items():
        record[name] = epoch(value)
        record[f"{name}_iso"] = iso_utc(value)
    record.update(
        wait=None, vendor_wait=None, ring=None,
        talk=epoch(None if answered_at is None else ended_at - answered_at),
        total=epoch(ended_at - arrived_at),
        short_abandon=False,
        short_abandon_threshold=_seconds(meta.get("short_abandon_threshold")),
        qa_notice_played=meta.get("qa_notice_played") is True,
        offers=[],
        recording_path=str(wav),
        recording_error=INTERRUPTED_ERROR,
    )
    return record


# -- a sidecar left in .incomplete --------------------------------------------------

def _place_leftover_sidecar(directory: Path, path: Path) -> RecoveredCall | None:
    """Move a complete sidecar whose WAV is already in place next to it."""
    document = json.loads(path.read_bytes())
    recording = document.get("recording") if isinstance(document, dict) else None
    if not isinstance(recording, dict) or not isinstance(recording.get("path"), str):
        raise RecoveryError(f"{path} does not name its recording")
    target: str = recording["path"]
    wav = Path(target)
    root = os.path.abspath(directory)
    if (wav.suffix != ".wav" or not wav.is_absolute()
            or os.path.commonpath([root, os.path.abspath(wav)]) != root):
        raise RecoveryError(f"{path} names a recording outside {directory}: {target}")
    sidecar = wav.with_suffix(".json")
    if not wav.is_file():
        raise RecoveryError(f"{path}: its recording {wav} is missing")
    if sidecar.exists():
        raise RecoveryError(f"{path}: {sidecar} already exists")
    os.replace(path, sidecar)
    _fsync_dir(sidecar.parent)
    stem = _recovered_stem(path.name)
    if stem is not None:
        _remove_quietly(path.with_name(f"{stem}.wav{START_SUFFIX}"))
    record = {k: v for k, v in document.items() if k != "recording"}
    record["recording_path"] = str(wav)
    if isinstance(recording.get("error"), str):
        record.setdefault("recording_error", recording["error"])
    call_id = record.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        call_id = wav.stem
    duration = _seconds(recording.get("duration_seconds")) or 0.0
    interrupted = record.get("outcome") == INTERRUPTED
    log.info("recording {call_id}: sidecar {path} put in place after a crash",
             call_id=call_id, path=str(sidecar))
    return RecoveredCall(call_id=call_id, wav=wav, sidecar=sidecar, record=record,
                         interrupted=interrupted, duration_seconds=duration,
                         start_estimated=recording.get("start_estimated") is True)


# -- small helpers ------------------------------------------------------------------

def _write_file(path: Path, body: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
    try:
        write_fd(fd, body)
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    """Remove a metadata file (never audio); a failure only costs a log line."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warn("recordings: cannot remove {path}: {error}", path=str(path), error=str(e))


def _text(meta: Mapping[str, Any], key: str) -> str | None:
    value = meta.get(key)
    return value if isinstance(value, str) else None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and 0.0 <= value < 1e11 else None



