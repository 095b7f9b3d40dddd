"""Retention: delete finished recordings older than a limit, with an audit log of each deletion.

What is a candidate
    Only regular files directly inside ``<directory>/YYYY/MM/DD/`` whose names
    the recorder produces: ``<stem>.wav``, ``<stem>.json`` (the sidecar) and the
    compressed copies ``<stem>.mp3`` / ``<stem>.ogg``, and their sealed forms
    ``<stem>.wav.enc``, ``<stem>.mp3.enc`` / ``<stem>.ogg.enc``, where ``stem`` is a
    ``safe_call_id`` (``[A-Za-z0-9._-]``, no leading dot or dash). All files of a
    stem form one *set* and go together. Everything else is never touched: the
    ``.incomplete/`` directory, ``downloads.log``, ``cdr.sqlite*``, ``purge.log``,
    hidden export temp files (``.<stem>.mp3.part``), unknown names.

Symlinks
    Never followed and never deleted: the walk opens every directory with
    ``O_NOFOLLOW`` relative to its parent's descriptor and skips symlinked
    folders and files, so a link cannot lead the purge (or a sidecar read) out
    of the directory, even if it is swapped in during the walk. Only the
    configured directory itself may be a symlink.

The call's age
    1. the sidecar's ``arrived_at`` (epoch seconds) when it is a finite number;
    2. otherwise the date folder: the call started on that UTC day, so the end of
       that day is taken (never deletes too early);
    3. otherwise (a folder such as ``2024/02/31`` that is no calendar day) the
       newest modification time of the set's files.
    A set is deleted when that start is more than ``older_than_days`` before
    ``now``. A set without a sidecar may be a recording being finalised (the
    sidecar is written last), so it is deleted only when, in addition, none of
    its files was modified within the limit (an orphan left by a crash).

Order and the log
    Before a set's first unlink, one JSON line is appended to
    ``<directory>/purge.log`` (``O_APPEND``, mode 0600, fsynced)::

        {"at": now, "call_id": ..., "files": ["YYYY/MM/DD/x.wav", ...],
         "arrived_at": sidecar value or null, "reason": "older than N days",
         "age_from": "sidecar" | "date_folder" | "mtime", "started": start used, "bytes": n}

    The set's deletion is also entered in the ledger (``ledger.py``) with its files,
    so ``ccswitch verify`` does not report them missing. If either cannot be written,
    nothing more is deleted (an unlogged
    deletion is worse than a late one) and the failure is reported. The sidecar
    is removed last, and only when every audio file of its set is gone, so a set
    that failed half-way is retried, with its metadata, on the next run. Errors
    on one file are logged and counted; the purge goes on with the next set.

Exemplary recordings
    The caller passes the call ids marked exemplary in the QA store (``keep``); their
    sets are kept whatever their age, counted as kept and listed in ``exempt``.

Folders
    Day folders left empty are removed, and month and year folders too once
    empty, but only folders whose whole day / month / year lies before the
    limit: the recorder creates today's folder just before moving a file in.
"""

from __future__ import annotations

import calendar
import datetime
import errno
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any, Callable, Final

import attrs
from twisted.logger import Logger

from ccswitch.config import COMPRESSED_FORMATS
from ccswitch.errors import RecordingError
from ccswitch.recording import ledger
from ccswitch.recording.recorder import safe_call_id

__all__ = ["LOG_NAME", "PurgeResult", "RetentionError", "Unlink", "purge"]

log = Logger()

LOG_NAME: Final = "purge.log"
DAY: Final = 86400.0
MAX_SIDECAR_BYTES: Final = 1 << 20
_YEAR: Final = re.compile(r"^[0-9]{4}$")
_TWO: Final = re.compile(r"^[0-9]{2}$")
_AUDIO: Final = ("wav", "wav.enc", *COMPRESSED_FORMATS,
                 *(f"{fmt}.enc" for fmt in COMPRESSED_FORMATS))
_FILE: Final = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9._-]{0,99})\.("
                          + "|".join(re.escape(s) for s in ("json", *_AUDIO)) + r")$")
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

#: Removes ``name`` in the directory open as ``dir_fd`` (injectable for tests).
Unlink = Callable[[str, int], None]


class RetentionError(RecordingError):
    """The recordings directory cannot be purged at all (missing, unreadable)."""

    error_id = "recording.retention"


def _tuple_of_str(value: Any) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class PurgeResult:
    """What one purge run deleted (or, with ``dry_run``, would delete)."""

    deleted: tuple[str, ...] = attrs.field(converter=_tuple_of_str)
    bytes_freed: int = attrs.field(validator=attrs.validators.ge(0))
    errors: tuple[str, ...] = attrs.field(converter=_tuple_of_str)
    kept: int = attrs.field(validator=attrs.validators.ge(0))
    dry_run: bool
    #: Call ids old enough to go but kept because they are marked exemplary.
    exempt: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)


def _os_unlink(name: str, dir_fd: int) -> None:
    os.unlink(name, dir_fd=dir_fd)


@attrs.define
class _File:
    name: str
    size: int
    mtime: float


@attrs.define
class _Run:
    """Mutable state of one purge run."""

    root_fd: int
    directory: Path
    cutoff: float
    now: float
    days: float
    dry_run: bool
    unlink: Unlink
    log_fd: int | None = None
    log_broken: bool = False
    deleted: list[str] = attrs.Factory(list)
    bytes_freed: int = 0
    errors: list[str] = attrs.Factory(list)
    kept: int = 0
    keep: frozenset[str] = frozenset()
    exempt: list[str] = attrs.Factory(list)

    def error(self, message: str, call_id: str | None = None) -> None:
        self.errors.append(message)
        log.error("purge: {error}", error=message, call_id=call_id)


def purge(directory: Path, *, older_than_days: float, now: float, dry_run: bool = False,
          unlink: Unlink | None = None, keep: frozenset[str] = frozenset()) -> PurgeResult:
    """Delete every finished recording set whose call started more than ``older_than_days``
    before ``now`` (epoch seconds); see the module docstring for the rules. Sets of the
    call ids in ``keep`` (recordings marked exemplary) are never deleted: they are
    listed in the result's ``exempt`` and logged.

    RetentionError if ``directory`` cannot be opened; ValueError for a limit that is
    not a positive finite number of days. Per-file failures end up in ``errors``.
    """
    if not (math.isfinite(older_than_days) and older_than_days > 0):
        raise ValueError(f"older_than_days must be a positive number, got {older_than_days!r}")
    if not math.isfinite(now):
        raise ValueError(f"now must be finite, got {now!r}")
    directory = Path(directory)
    try:
        root_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise RetentionError(f"cannot open recordings directory {directory}: "
                             f"{e.strerror}") from e
    run = _Run(root_fd=root_fd, directory=directory, cutoff=now - older_than_days * DAY, now=now,
               days=older_than_days, dry_run=dry_run, unlink=unlink or _os_unlink,
               # a set without its sidecar is known only by its file stem
               keep=keep | {safe_call_id(k) for k in keep})
    try:
        _walk(run)
    finally:
        if run.log_fd is not None:
            os.close(run.log_fd)
        os.close(root_fd)
    verb = "would purge" if dry_run else "purged"
    log.info("retention: {verb} {count} recording(s) older than {days} days from {directory} "
             "({bytes} bytes), {kept} kept, {errors} error(s)", verb=verb,
             count=len(run.deleted), days=older_than_days, directory=str(directory),
             bytes=run.bytes_freed, kept=run.kept, errors=len(run.errors))
    return PurgeResult(deleted=run.deleted, bytes_freed=run.bytes_freed, errors=run.errors,
                       kept=run.kept, dry_run=dry_run, exempt=run.exempt)


def _subdirs(run: _Run, fd: int, pattern: re.Pattern[str], where: str) -> list[str]:
    try:
        with os.scandir(fd) as entries:
            return sorted(e.name for e in entries
                          if pattern.match(e.name) and e.is_dir(follow_symlinks=False))
    except OSError as e:
        run.error(f"cannot list {where or '.'}: {e.strerror}")
        return []


def _open_dir(run: _Run, name: str, parent_fd: int, where: str) -> int | None:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as e:
        if e.errno != errno.ELOOP:  # ELOOP: swapped for a symlink meanwhile, skip quietly
            run.error(f"cannot open {where}: {e.strerror}")
        return None


def _walk(run: _Run) -> None:
    for year in _subdirs(run, run.root_fd, _YEAR, ""):
        year_fd = _open_dir(run, year, run.root_fd, year)
        if year_fd is None:
            continue
        try:
            for month in _subdirs(run, year_fd, _TWO, year):
                month_fd = _open_dir(run, month, year_fd, f"{year}/{month}")
                if month_fd is None:
                    continue
                try:
                    for day in _subdirs(run, month_fd, _TWO, f"{year}/{month}"):
                        where = f"{year}/{month}/{day}"
                        day_fd = _open_dir(run, day, month_fd, where)
                        if day_fd is None:
                            continue
                        try:
                            _purge_day(run, day_fd, where, _day_end(year, month, day))
                        finally:
                            os.close(day_fd)
                        _remove_if_empty(run, day, month_fd, where,
                                         _day_end(year, month, day))
                finally:
                    os.close(month_fd)
                _remove_if_empty(run, month, year_fd, f"{year}/{month}",
                                 _month_end(year, month))
        finally:
            os.close(year_fd)
        _remove_if_empty(run, year, run.root_fd, year, _month_end(year, "12"))


def _day_end(year: str, month: str, day: str) -> float | None:
    """Epoch seconds of the UTC midnight ending that day; None if it is no calendar day."""
    try:
        start = datetime.date(int(year), int(month), int(day))
    except ValueError:
        return None
    return float(calendar.timegm((start + datetime.timedelta(days=1)).timetuple()))


def _month_end(year: str, month: str) -> float | None:
    y, m = int(year), int(month)
    if not 1 <= m <= 12 or y < 1:
        return None
    y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return float(calendar.timegm((y, m, 1, 0, 0, 0)))


def _remove_if_empty(run: _Run, name: str, parent_fd: int, where: str,
                     end: float | None) -> None:
    """rmdir a date folder that lies wholly before the limit; a non-empty one stays."""
    if run.dry_run or run.log_broken or end is None or end > run.cutoff:
        return
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
            run.error(f"cannot remove empty folder {where}: {e.strerror}")
        return
    log.info("retention: removed empty folder {folder}", folder=where)


def _purge_day(run: _Run, day_fd: int, where: str, day_end: float | None) -> None:
    sets: dict[str, dict[str, _File]] = {}
    try:
        with os.scandir(day_fd) as entries:
            for entry in entries:
                match = _FILE.match(entry.name)
                if match is None:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # gone meanwhile
                if not stat.S_ISREG(st.st_mode):
                    continue  # symlinks and anything else: not ours
                sets.setdefault(match.group(1), {})[match.group(2)] = _File(
                    name=entry.name, size=st.st_size, mtime=st.st_mtime)
    except OSError as e:
        run.error(f"cannot list {where}: {e.strerror}")
        return
    for stem in sorted(sets):
        if run.log_broken:
            return
        _purge_set(run, day_fd, where, day_end, stem, sets[stem])


def _read_sidecar(run: _Run, day_fd: int, where: str, name: str) -> dict[str, Any] | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=day_fd)
    except OSError as e:
        log.warn("retention: cannot open sidecar {path}: {error}", path=f"{where}/{name}",
                 error=e.strerror)
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            body = f.read(MAX_SIDECAR_BYTES + 1)
    except OSError as e:
        log.warn("retention: cannot read sidecar {path}: {error}", path=f"{where}/{name}",
                 error=e.strerror)
        return None
    try:
        if len(body) > MAX_SIDECAR_BYTES:
            raise ValueError("larger than 1 MiB")
        document = json.loads(body)
    except ValueError as e:
        log.warn("retention: unreadable sidecar {path}: {error}", path=f"{where}/{name}",
                 error=str(e))
        return None
    return document if isinstance(document, dict) else None


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _purge_set(run: _Run, day_fd: int, where: str, day_end: float | None, stem: str,
               files: dict[str, _File]) -> None:
    sidecar = files.get("json")
    document = None if sidecar is None else _read_sidecar(run, day_fd, where, sidecar.name)
    document = document or {}
    arrived_at = _finite(document.get("arrived_at"))
    raw_id = document.get("call_id")
    call_id = raw_id if isinstance(raw_id, str) and raw_id else stem
    newest = max(f.mtime for f in files.values())
    if arrived_at is not None:
        started, age_from = arrived_at, "sidecar"
    elif day_end is not None:
        started, age_from = day_end, "date_folder"
    else:
        started, age_from = newest, "mtime"
    if started >= run.cutoff or (sidecar is None and newest >= run.cutoff):
        run.kept += 1
        return
    if call_id in run.keep or stem in run.keep:
        run.kept += 1
        run.exempt.append(call_id)
        log.info("retention: keeping {call_id}: marked exemplary", call_id=call_id)
        return
    # Audio first, the sidecar last: it describes whatever could not be removed.
    ordered = [files[s] for s in _AUDIO if s in files]
    if sidecar is not None:
        ordered.append(sidecar)
    paths = [f"{where}/{f.name}" for f in ordered]
    size = sum(f.size for f in ordered)
    reason = f"older than {run.days:g} days"
    if run.dry_run:
        run.deleted.append(call_id)
        run.bytes_freed += size
        log.info("retention: would purge {call_id}: {files}", call_id=call_id, files=paths,
                 bytes=size, reason=reason)
        return
    entry = {"at": run.now, "call_id": call_id, "files": paths, "arrived_at": arrived_at,
             "reason": reason, "age_from": age_from, "started": started, "bytes": size}
    if not _append_log(run, entry):
        return
    try:
        ledger.append(run.directory, "purge", run.now, call_id=call_id, files=paths)
    except ledger.LedgerError as e:
        run.log_broken = True
        run.error(f"{e}; nothing more is deleted", call_id=call_id)
        return
    failed = 0
    freed = 0
    for f, path in zip(ordered, paths):
        if f is sidecar and failed:
            log.warn("retention: keeping sidecar {path}: {failed} file(s) of the call remain",
                     path=path, call_id=call_id, failed=failed)
            break
        try:
            run.unlink(f.name, day_fd)
        except FileNotFoundError:
            continue  # removed by someone else meanwhile: nothing to free
        except OSError as e:
            failed += 1
            run.error(f"cannot delete {path}: {e.strerror or e}", call_id=call_id)
            continue
        freed += f.size
    run.bytes_freed += freed
    if failed:
        return
    run.deleted.append(call_id)
    log.info("retention: purged {call_id}: {files} ({bytes} bytes, {reason})", call_id=call_id,
             files=paths, bytes=freed, reason=reason)


def _append_log(run: _Run, entry: dict[str, Any]) -> bool:
    """Append one line to purge.log and fsync it; on failure stop all further deletion."""
    line = (json.dumps(entry, sort_keys=True, ensure_ascii=True) + "\n").encode()
    try:
        if run.log_fd is None:
            run.log_fd = os.open(
                LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600, dir_fd=run.root_fd)
        view = memoryview(line)
        written = 0
        while written < len(view):
            written += os.write(run.log_fd, view[written:])
        os.fsync(run.log_fd)
    except OSError as e:
        run.log_broken = True
        run.error(f"cannot write {LOG_NAME}: {e.strerror or e}; nothing more is deleted",
                  call_id=str(entry["call_id"]))
        return False
    return True
