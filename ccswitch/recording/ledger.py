"""Tamper evidence: ``<recordings>/ledger.jsonl``, an append-only hash chain of every
finished recording, every purge and every download, and ``verify`` to check it.

Each line is one JSON object (keys sorted, no spaces)::

    {"seq": n, "prev": <hash of line n-1, or 64 zeros>, "kind": "recording" | "purge"
     | "download", "at": epoch seconds, "call_id": ..., ...,
     "hash": SHA-256 of the line's object without "hash"}

``recording`` lines carry ``files``: each file of the recording (relative to the
recordings directory) with its SHA-256; ``purge`` lines the ``files`` deleted;
``download`` lines the ``file`` handed out and the ``client``. Changing, dropping or
reordering a line breaks the chain at the next line; ``verify`` also hashes every
ledgered file and lists recording files the ledger does not know.

Appends are blocking (run them off the reactor), fsync'd, and serialised: a lock in
the process and ``flock`` on the file, so the node and ``ccswitch purge`` never write
at the same time. Each node keeps its own ledger in its own recordings directory; the
chain proves the order of one node's events, and says nothing about another node's.
A truncated last line (a crash during an append) is reported by ``verify``.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import threading
from pathlib import Path
from typing import Any, Final, Iterator, Mapping

import attrs

from ccswitch.config import COMPRESSED_FORMATS
from ccswitch.errors import RecordingError

__all__ = ["GENESIS", "LEDGER_NAME", "LedgerError", "Verification", "append", "file_sha256",
           "verify"]

LEDGER_NAME: Final = "ledger.jsonl"
GENESIS: Final = "0" * 64
_TAIL: Final = 1 << 16
_LOCK: Final = threading.Lock()
_DAY_PATH: Final = re.compile(r"^[0-9]{4}/[0-9]{2}/[0-9]{2}/[A-Za-z0-9_][A-Za-z0-9._-]*$")
#: Files that belong to a finished recording (audio, sealed audio, compressed copy, sidecar).
_RECORDING_FILE: Final = re.compile(
    r"\.(" + "|".join(("wav", "json", *COMPRESSED_FORMATS)) + r")(\.enc)?$")


class LedgerError(RecordingError):
    """The ledger cannot be written."""

    error_id = "recording.ledger"


def _canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")


def _same(a: object, b: str) -> bool:
    """Constant-time equality of a hash read from the ledger with the one computed."""
    return hmac.compare_digest(str(a).encode("utf-8", "replace"), b.encode("ascii"))


def _line_hash(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in document.items() if k != "hash"})
                          ).hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB pieces (blocking)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


def _last_line(fd: int) -> bytes | None:
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    start = max(0, size - _TAIL)
    tail = os.pread(fd, size - start, start)
    lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
    if start > 0 and len(lines) < 2:
        raise LedgerError(f"last line of {LEDGER_NAME} is longer than {_TAIL} bytes")
    return lines[-1]


def append(directory: Path, kind: str, at: float, **fields: Any) -> dict[str, Any]:
    """Append one entry to the directory's ledger and fsync it; LedgerError on failure.

    The entry links to the last one; if the last line cannot be read as an entry the
    chain is broken already and nothing is appended (``verify`` says where)."""
    with _LOCK:
        try:
            fd = os.open(Path(directory) / LEDGER_NAME,
                         os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
        except OSError as e:
            raise LedgerError(f"cannot open {LEDGER_NAME}: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last = _last_line(fd)
            prev, seq = GENESIS, 0
            if last is not None:
                try:
                    previous = json.loads(last)
                    prev, seq = str(previous["hash"]), int(previous["seq"]) + 1
                except (ValueError, KeyError, TypeError) as e:
                    raise LedgerError(f"the last line of {LEDGER_NAME} is not an entry; "
                                      "run ccswitch verify") from e
            entry: dict[str, Any] = {**fields, "kind": kind, "at": round(at, 3), "seq": seq,
                                     "prev": prev}
            entry["hash"] = _line_hash(entry)
            line = _canonical(entry) + b"\n"
            written = 0
            while written < len(line):
                written += os.write(fd, line[written:])
            os.fsync(fd)
        except OSError as e:
            raise LedgerError(f"cannot append to {LEDGER_NAME}: {e.strerror}") from e
        finally:
            os.close(fd)  # also releases the flock
    return entry


@attrs.frozen(kw_only=True)
class Verification:
    """What ``verify`` found: ``problems`` empty means everything matched."""

    entries: int
    files: int
    problems: tuple[str, ...]


def _entries(path: Path, problems: list[str]) -> Iterator[dict[str, Any]]:
    """The ledger's entries, each checked against the one before it."""
    prev, seq = GENESIS, 0
    try:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    entry = json.loads(raw)
                    if not isinstance(entry, dict):
                        raise ValueError("not an object")
                except ValueError:
                    problems.append(f"ledger line {number}: not a JSON entry (chain broken)")
                    return
                if not _same(entry.get("hash", ""), _line_hash(entry)):
                    problems.append(f"ledger line {number}: its hash does not match its "
                                    "content (chain broken)")
                    return
                if not _same(entry.get("prev", ""), prev) or (
                        entry.get("seq") != seq):
                    problems.append(f"ledger line {number}: does not follow line {number - 1}"
                                    " (chain broken: a line was removed, added or moved)")
                    return
                prev, seq = entry["hash"], seq + 1
                yield entry
    except FileNotFoundError:
        return


def _ledgered_files(entry: Mapping[str, Any]) -> dict[str, str]:
    files = entry.get("files")
    if not isinstance(files, dict):
        return {}
    return {str(k): str(v) for k, v in files.items()}


def verify(directory: Path) -> Verification:
    """Check the chain, every ledgered file against its hash, and look for recording
    files the ledger does not know (blocking)."""
    directory = Path(directory)
    problems: list[str] = []
    expected: dict[str, str] = {}
    entries = 0
    for entry in _entries(directory / LEDGER_NAME, problems):
        entries += 1
        if entry.get("kind") == "recording":
            expected.update(_ledgered_files(entry))
        elif entry.get("kind") == "purge":
            for name in entry.get("files") or ():
                expected.pop(str(name), None)
    checked = 0
    for name, digest in sorted(expected.items()):
        if not _DAY_PATH.match(name):
            problems.append(f"ledger names a file outside the recordings: {name}")
            continue
        try:
            actual = file_sha256(directory / name)
        except FileNotFoundError:
            problems.append(f"missing: {name}")
            continue
        except OSError as e:
            problems.append(f"unreadable: {name}: {e.strerror}")
            continue
        checked += 1
        if not _same(digest, actual):
            problems.append(f"changed: {name}")
    for path in sorted(directory.glob("[0-9][0-9][0-9][0-9]/[0-9][0-9]/[0-9][0-9]/*")):
        name = path.relative_to(directory).as_posix()
        if _RECORDING_FILE.search(name) and name not in expected and path.is_file():
            problems.append(f"unledgered: {name}")
    return Verification(entries=entries, files=checked, problems=tuple(problems))
