"""Start-up recovery of the calls a crash (kill -9, power cut) left in ``.incomplete``.

Run once before the node takes calls. ``recover_incomplete`` turns every
leftover temp WAV into a finished, playable recording: the header's RIFF and
data sizes are set from the file size (a torn last frame is cut so the data is
whole 4-byte stereo frames; a file shorter than a header becomes an empty WAV),
the file is moved to ``<directory>/YYYY/MM/DD/<safe id>.wav`` like
``CallRecorder.finish`` does, and a sidecar with ``outcome: "interrupted"`` is
written. Each call comes back as a ``RecoveredCall`` whose ``record`` is ready
for ``CdrStore.add``. Audio is never deleted; a file that cannot be repaired is
logged and left where it is.

What is known about a call comes from its call note (``note.py``), which the
call runtime opens when it answers the caller: every note left in ``.incomplete``
is a call the crash interrupted. A note whose ``recording`` fact names a temp
WAV (or, if the crash came between the two, the WAV of the same stem) is
recovered with that WAV; a note without one (the caller was still hearing
the QA notice, or the recording had not started) becomes an ``interrupted``
record with no recording file and no sidecar. The record holds the facts the
note kept: agent or vendor, answer, queue and overflow times, route, the
answered offer, recording start and pauses; it ends at the last moment the
node is known to have handled the call (its last fact, or the end of the
audio on disk, whichever is later). A WAV without a note keeps its file's
stem as call id and its start is estimated as the file's mtime (its last
flush) minus the recorded duration. A note whose WAV is gone was killed just
after its recording was put in place (by the recorder's finish, or an earlier
recovery): unless the call's record is already stored, the record is taken
from that sidecar (found by call id in the recording's date folder). A note
without a WAV whose record is already stored (killed just before the note was
removed) is dropped, so the real outcome is kept.

A sealed temp recording (``.wav.enc``, ``sealed.py``) cannot be read here: the node
has no private key. It is repaired by its sizes alone: the whole chunks are kept, a
torn chunk after them is cut, and the trailer that marks an interrupted file is
appended, so it decrypts to a playable WAV of the audio before the crash. Its sealed
compressed copy (``<stem>.mp3.enc`` or ``.ogg.enc``), if any, is repaired the same way
and placed with it. Every recovered recording is entered in the ledger with its
sidecar.

Crash during recovery: the sidecar is first written to
``.incomplete/.<stem>.recovered``, then the WAV is moved, then the sidecar. A
later run finishes any step left over, and also places a sidecar that
``CallRecorder.finish`` left in ``.incomplete`` after moving its WAV (that call
ended normally, so its own outcome is kept). The note of a call goes last,
after its recording and sidecar are in place.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import stat
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Final, Mapping, TypeVar

import attrs
from twisted.logger import Logger

from ccswitch.config import COMPRESSED_FORMATS
from ccswitch.errors import RecordingError
from ccswitch.recording import sealed
from ccswitch.recording.ledger import file_sha256
from ccswitch.recording.note import NOTE_SUFFIX, NoteFacts, read_note
from ccswitch.recording.recorder import (
    BLOCK_ALIGN, HEADER_SIZE, INCOMPLETE_DIR, SAMPLE_RATE, _fsync_dir, _wav_header,
    final_paths, ledger_recording, recording_suffix, safe_call_id, sidecar_path, write_fd,
)
from ccswitch.routing.record import CallRecord, Offer, Outcome, Route, epoch, iso_utc

__all__ = [
    "INTERRUPTED", "INTERRUPTED_ERROR", "RecoveredCall", "RecoveryError", "recover_incomplete",
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
_T = TypeVar("_T")


class RecoveryError(RecordingError):
    """A leftover recording could not be recovered; it stays in ``.incomplete``."""

    error_id = "recording.recovery"


def _frozen(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class RecoveredCall:
    """One call found at start-up, with its call record for the CDR.

    ``wav`` and ``sidecar`` are where its recording was put, None for a call
    interrupted before its recording started. ``interrupted`` is False only for a
    call that had ended normally but whose sidecar the crash kept in
    ``.incomplete``; ``record`` then holds its real outcome. ``start_estimated``
    means the start time came from the file's mtime (no call note).
    """

    call_id: str = attrs.field(validator=attrs.validators.min_len(1))
    wav: Path | None
    sidecar: Path | None
    record: Mapping[str, Any] = attrs.field(converter=_frozen)
    interrupted: bool = True
    duration_seconds: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    start_estimated: bool = False


def recover_incomplete(directory: Path, *, now: float,
                       stored: Callable[[str], bool] = lambda call_id: False,
                       ) -> list[RecoveredCall]:
    """Repair and place every leftover temp recording under ``directory/.incomplete``,
    and turn every call note left there into a record.

    Blocking (file I/O); run at start-up before calls are taken. Idempotent: a
    second run finds nothing to do. Files that cannot be recovered are logged
    (with ``call_id``) and left in place; the others are still recovered.
    ``stored(call_id)`` says whether the call's record is already stored: a call
    that ended just before the crash (record stored, note not yet removed) keeps
    its real record instead of getting an interrupted one.
    """
    incomplete = Path(directory) / INCOMPLETE_DIR
    names = _listing(incomplete)
    if not names:
        return []
    directory = Path(directory)
    notes: dict[str, NoteFacts] = {}
    for name in names:
        if name.endswith(NOTE_SUFFIX) and not name.startswith("."):
            facts = _guarded(incomplete / name, name[:-len(NOTE_SUFFIX)],
                             functools.partial(read_note, incomplete / name))
            if facts is not None:
                notes[name] = facts
    by_wav = {facts.wav: name for name, facts in notes.items() if facts.wav is not None}
    recovered: list[RecoveredCall] = []
    for name in names:
        suffix = recording_suffix(name)
        if suffix is not None and not name.startswith("."):
            stem = name[:-len(suffix)]
            note = by_wav.get(name)
            if note is None and stem + NOTE_SUFFIX in notes:
                candidate = stem + NOTE_SUFFIX
                # Killed between creating the WAV and noting it: same stem, no WAV noted.
                note = candidate if notes[candidate].wav is None else None
            call = _guarded(incomplete / name, stem, functools.partial(
                _recover_wav, directory, incomplete / name, now,
                None if note is None else notes.pop(note)))
            if call is not None:
                recovered.append(call)
                if note is not None:
                    _remove_quietly(incomplete / note)
    for name in _listing(incomplete) or []:
        if name.endswith(".json") or _recovered_stem(name) is not None:
            call = _guarded(incomplete / name, _recovered_stem(name) or name[:-5],
                            functools.partial(_place_leftover_sidecar, directory,
                                              incomplete / name, now))
            if call is not None:
                recovered.append(call)
    remaining = set(_listing(incomplete) or [])
    for name, facts in sorted(notes.items()):
        if name not in remaining:
            continue
        if facts.wav is None and stored(facts.call_id):
            log.info("call {call_id}: note removed, the call's record was already stored",
                     call_id=facts.call_id)
        elif facts.wav is None:
            interrupted = _guarded(incomplete / name, facts.call_id,
                                   functools.partial(_recover_note, facts))
            if interrupted is None:
                continue
            recovered.append(interrupted)
        elif (facts.wav in remaining
              or f".{_stem(facts.wav)}{_RECOVERED_SUFFIX}" in remaining):
            continue  # its WAV could not be recovered: the note stays with it
        elif not stored(facts.call_id):
            # Killed after the recording was put in place, before its record was stored.
            placed = _placed_sidecar(directory, facts)
            if placed is None:
                log.warn("call {call_id}: its recording is in place but its sidecar is not "
                         "found; no record", call_id=facts.call_id)
            else:
                log.info("call {call_id}: record taken from its sidecar {path}",
                         call_id=facts.call_id, path=str(placed.sidecar))
                recovered.append(placed)
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


def _guarded(path: Path, call_id: str, job: Callable[[], _T | None]) -> _T | None:
    try:
        result = job()
    except (OSError, RecordingError, ValueError) as e:
        log.error("recording {call_id}: cannot recover {path}, left in place: {error}",
                  call_id=call_id, path=str(path), error=str(e))
        return None
    return result


def _stem(name: str) -> str:
    suffix = recording_suffix(name)
    return name if suffix is None else name[:-len(suffix)]


def _recovered_stem(name: str) -> str | None:
    if name.startswith(".") and name.endswith(_RECOVERED_SUFFIX):
        return name[1:-len(_RECOVERED_SUFFIX)]
    return None


# -- one leftover WAV ---------------------------------------------------------------

def _recover_wav(directory: Path, temp: Path, now: float,
                 facts: NoteFacts | None) -> RecoveredCall:
    stem = _stem(temp.name)
    suffix = temp.name[len(stem):]
    call_id = stem if facts is None else facts.call_id
    is_sealed = suffix != ".wav"
    data_bytes, mtime = _repair_sealed(temp) if is_sealed else _repair(temp, call_id)
    frames = data_bytes // BLOCK_ALIGN
    duration = frames / SAMPLE_RATE
    started_at = None if facts is None else facts.recording_started_at
    estimated = started_at is None
    if started_at is None:
        started_at = max(0.0, min(mtime, now) - duration)
    safe_id = safe_call_id(call_id) if call_id != stem else stem
    wav, sidecar = final_paths(directory, safe_id, started_at, suffix)
    copies = (_place_sealed_copies(temp, stem, wav.parent, wav.name[:-len(suffix)])
              if is_sealed else {})
    record = _interrupted_record(call_id, facts, started_at, started_at + duration, wav)
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
        "sha256": file_sha256(temp),
        "sealed": is_sealed,
    }
    for copy, digest in copies.items():
        document["recording"]["compressed"] = {"path": str(copy), "sha256": digest}
    pending = temp.with_name(f".{stem}{_RECOVERED_SUFFIX}")
    body = json.dumps(document, indent=2, sort_keys=True, default=str).encode()
    _write_file(pending, body)
    os.replace(temp, wav)
    _fsync_dir(wav.parent)
    os.replace(pending, sidecar)
    _fsync_dir(sidecar.parent)
    ledger_recording(directory, call_id, now, {
        **copies, wav: document["recording"]["sha256"],
        sidecar: hashlib.sha256(body).hexdigest()})
    log.info("recording {call_id} recovered after a crash: {path} ({seconds:.1f} s, "
             "start {how})", call_id=call_id, path=str(wav), seconds=duration,
             how="estimated from mtime" if estimated else "as noted")
    return RecoveredCall(call_id=call_id, wav=wav, sidecar=sidecar, record=record,
                         interrupted=True, duration_seconds=duration,
                         start_estimated=estimated)


def _recover_note(facts: NoteFacts) -> RecoveredCall:
    """A call interrupted before its recording started: a record, no file."""
    arrived = _seconds(facts.record.get("arrived_at"))
    last = facts.last_at if facts.last_at is not None else arrived
    if last is None:
        raise RecoveryError(f"call note of {facts.call_id} has no time")
    record = _interrupted_record(facts.call_id, facts, None, last, None)
    log.info("call {call_id} interrupted by a crash before its recording started: "
             "recorded as {outcome}", call_id=facts.call_id, outcome=INTERRUPTED)
    return RecoveredCall(call_id=facts.call_id, wav=None, sidecar=None, record=record)


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


def _place_sealed_copies(temp: Path, stem: str, folder: Path, final_stem: str
                         ) -> dict[Path, str]:
    """Repair and move the sealed compressed copies of a sealed temp recording into
    ``folder``, where the recording goes; their final paths and SHA-256."""
    placed: dict[Path, str] = {}
    for fmt in COMPRESSED_FORMATS:
        copy = temp.with_name(f"{stem}.{fmt}{sealed.SUFFIX}")
        if not copy.exists():
            continue
        final = folder / f"{final_stem}.{fmt}{sealed.SUFFIX}"
        try:
            _repair_sealed(copy)
            os.replace(copy, final)
            placed[final] = file_sha256(final)
        except (OSError, RecordingError) as e:  # the copy is not worth the recording
            log.error("recording {call_id}: compressed copy {path} left in place: {error}",
                      call_id=stem, path=str(copy), error=str(e))
    return placed


def _repair_sealed(temp: Path) -> tuple[int, float]:
    """Cut a sealed temp file to its whole chunks and mark it interrupted (no key needed);
    returns (audio bytes those chunks hold, mtime before the repair)."""
    fd = os.open(temp, os.O_RDWR | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RecoveryError(f"{temp} is not a regular file")
        head = os.pread(fd, sealed.HEADER_SIZE, 0)
        if len(head) < sealed.HEADER_SIZE:
            raise RecoveryError(f"{temp}: killed before its sealed header was written; "
                                "it holds no audio")
        tail = os.pread(fd, sealed.TRAILER_SIZE, max(0, st.st_size - sealed.TRAILER_SIZE))
        keep, trailer, chunks = sealed.repair_plan(head, st.st_size, tail)
        if trailer:
            os.ftruncate(fd, keep)
            os.pwrite(fd, trailer, keep)
            os.fsync(fd)
        plain = chunks * sealed.read_header(head).chunk_size
    finally:
        os.close(fd)
    os.utime(temp, ns=(st.st_atime_ns, st.st_mtime_ns))
    data_bytes = max(0, plain - HEADER_SIZE)
    return data_bytes - data_bytes % BLOCK_ALIGN, st.st_mtime


def _interrupted_record(call_id: str, facts: NoteFacts | None,
                        recording_started_at: float | None, audio_end: float,
                        wav: Path | None) -> dict[str, Any]:
    """A ``CallRecord.to_dict()``-shaped record, outcome interrupted, from what the note
    kept (if any), plus sip_call_id and the recording fields."""
    meta: Mapping[str, Any] = {} if facts is None else facts.record
    ended_at = max(audio_end, (facts.last_at if facts is not None else None) or audio_end)
    arrived_at = _seconds(meta.get("arrived_at"))
    if arrived_at is None or arrived_at > ended_at:
        arrived_at = ended_at if recording_started_at is None else min(recording_started_at,
                                                                       ended_at)

    def moment(key: str) -> float | None:
        """A noted time, if it lies within the call."""
        value = _seconds(meta.get(key))
        return value if value is not None and arrived_at <= value <= ended_at else None

    vendor = _text(meta, "vendor") or None
    answered_at = moment("answered_at")
    agent_id = _text(meta, "agent_id")
    offers: list[Offer] = []
    if answered_at is not None and facts is not None:
        # The answered offer: the last one made to whoever answered, before the answer.
        target = (agent_id, None) if agent_id is not None else (None, vendor)
        for noted in reversed(facts.offers):
            if ((noted.agent_id, noted.vendor) == target and noted.at <= answered_at
                    and (noted.vendor is None or noted.trunk)):
                offers.append(Offer(agent_id=noted.agent_id, vendor=noted.vendor,
                                    trunk=noted.trunk, offered_at=noted.at,
                                    ended_at=answered_at, result="answered"))
                break
    route = meta.get("route")
    call = CallRecord(
        call_id=call_id, caller=_text(meta, "caller") or "", dialed=_text(meta, "dialed") or "",
        queue=_text(meta, "queue") or UNKNOWN_QUEUE, group=_text(meta, "group") or "",
        arrived_at=arrived_at, short_abandon_threshold=0.0, agent_id=agent_id,
        outcome=Outcome.INTERRUPTED, announced_at=moment("announced_at"),
        queued_at=moment("queued_at"), answered_at=answered_at, ended_at=ended_at,
        offers=offers, qa_notice_played=meta.get("qa_notice_played") is True,
        route=Route(route) if route in tuple(Route) else (
            Route.VENDOR if vendor is not None else Route.INHOUSE),
        vendor=vendor, overflow_reason=_text(meta, "overflow_reason") or None,
        overflowed_at=moment("overflowed_at"))
    record = call.to_dict()
    record.update(
        sip_call_id=_text(meta, "sip_call_id"),
        short_abandon_threshold=_seconds(meta.get("short_abandon_threshold")),
        recording_started_at=epoch(recording_started_at),
        recording_started_at_iso=iso_utc(recording_started_at),
        recording_path=None if wav is None else str(wav),
        recording_error=INTERRUPTED_ERROR,
    )
    if facts is not None and facts.pauses:
        record["recording_pauses"] = [{"from": start, "to": end if end is not None else ended_at}
                                      for start, end in facts.pauses]
    return record


# -- a sidecar left in .incomplete --------------------------------------------------

def _place_leftover_sidecar(directory: Path, path: Path, now: float) -> RecoveredCall | None:
    """Move a complete sidecar whose WAV is already in place next to it, and enter both
    in the ledger (the crash came before the recorder did)."""
    document = json.loads(path.read_bytes())
    recording = document.get("recording") if isinstance(document, dict) else None
    if not isinstance(recording, dict) or not isinstance(recording.get("path"), str):
        raise RecoveryError(f"{path} does not name its recording")
    target: str = recording["path"]
    wav = Path(target)
    root = os.path.abspath(directory)
    if (recording_suffix(wav.name) is None or not wav.is_absolute()
            or os.path.commonpath([root, os.path.abspath(wav)]) != root):
        raise RecoveryError(f"{path} names a recording outside {directory}: {target}")
    sidecar = sidecar_path(wav)
    if not wav.is_file():
        raise RecoveryError(f"{path}: its recording {wav} is missing")
    if sidecar.exists():
        raise RecoveryError(f"{path}: {sidecar} already exists")
    os.replace(path, sidecar)
    _fsync_dir(sidecar.parent)
    call = _sidecar_call(document, recording, wav, sidecar)
    ledger_recording(directory, call.call_id, now, {wav: file_sha256(wav),
                                                   sidecar: file_sha256(sidecar)})
    log.info("recording {call_id}: sidecar {path} put in place after a crash",
             call_id=call.call_id, path=str(sidecar))
    return call


def _sidecar_call(document: Mapping[str, Any], recording: Mapping[str, Any], wav: Path,
                  sidecar: Path) -> RecoveredCall:
    """The call a placed sidecar describes, its record ready for the CDR."""
    record = {k: v for k, v in document.items() if k != "recording"}
    record["recording_path"] = str(wav)
    if isinstance(recording.get("error"), str):
        record.setdefault("recording_error", recording["error"])
    call_id = record.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        call_id = wav.stem
    duration = _seconds(recording.get("duration_seconds")) or 0.0
    return RecoveredCall(call_id=call_id, wav=wav, sidecar=sidecar, record=record,
                         interrupted=record.get("outcome") == INTERRUPTED,
                         duration_seconds=duration,
                         start_estimated=recording.get("start_estimated") is True)


def _placed_sidecar(directory: Path, facts: NoteFacts) -> RecoveredCall | None:
    """The sidecar of a noted call whose recording was already put in place (by the
    recorder's finish, or an earlier recovery): same date folder, same call id. None if
    there is none; sidecars that cannot be read are logged and skipped."""
    if facts.recording_started_at is None:
        return None
    day = time.gmtime(facts.recording_started_at)
    folder = directory / f"{day.tm_year:04d}" / f"{day.tm_mon:02d}" / f"{day.tm_mday:02d}"
    safe_id = safe_call_id(facts.call_id)  # only [A-Za-z0-9._-]: nothing glob would expand
    for sidecar in sorted(folder.glob(f"{safe_id}*.json")):
        try:
            document = json.loads(sidecar.read_bytes())
        except (OSError, ValueError) as e:
            log.warn("call {call_id}: cannot read {path}: {error}", call_id=facts.call_id,
                     path=str(sidecar), error=str(e))
            continue
        recording = document.get("recording") if isinstance(document, dict) else None
        if isinstance(recording, dict) and document.get("call_id") == facts.call_id:
            audio = sidecar.with_suffix(".wav" + sealed.SUFFIX)
            if not audio.exists():
                audio = sidecar.with_suffix(".wav")
            return _sidecar_call(document, recording, audio, sidecar)
    return None


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



