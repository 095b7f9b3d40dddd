"""Call detail records in SQLite: one row per call, every timestamp in milliseconds.

The database runs in WAL mode (readers such as ``ccswitch report`` never block
the writer) with ``synchronous=NORMAL``. Its schema version is SQLite's
``user_version``; opening an older database applies the missing migration steps
in order, and a database from a newer ccswitch is refused rather than guessed at.

Rows are keyed by the call id: adding the same record twice (a replay) keeps one
row. A record that fails validation raises ``CdrError`` and writes nothing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, TextIO

import attrs

from ccswitch.errors import CCSwitchError

SCHEMA_VERSION = 1

# Each step takes the schema from version N to N + 1 (index N).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE calls (
        call_id TEXT PRIMARY KEY,
        sip_call_id TEXT,
        node TEXT,
        caller TEXT NOT NULL,
        dialed TEXT NOT NULL,
        queue TEXT NOT NULL,
        grp TEXT NOT NULL,
        route TEXT NOT NULL DEFAULT 'inhouse',
        vendor TEXT,
        agent_id TEXT,
        outcome TEXT NOT NULL,
        overflow_reason TEXT,
        arrived_ms INTEGER NOT NULL,
        announced_ms INTEGER,
        queued_ms INTEGER,
        answered_ms INTEGER,
        ended_ms INTEGER NOT NULL,
        wait_ms INTEGER,
        ring_ms INTEGER,
        talk_ms INTEGER,
        hold_ms INTEGER,
        total_ms INTEGER NOT NULL,
        short_abandon INTEGER NOT NULL,
        qa_notice_played INTEGER NOT NULL,
        recording_path TEXT,
        recording_error TEXT,
        offers_json TEXT NOT NULL
    );
    CREATE INDEX calls_arrived ON calls (arrived_ms);
    CREATE INDEX calls_queue_arrived ON calls (queue, arrived_ms);
    CREATE INDEX calls_caller ON calls (caller);
    """,
)

_TIMESTAMPS = ("arrived", "announced", "queued", "answered", "ended")
_DURATIONS = ("wait", "ring", "talk", "hold", "total")


class CdrError(CCSwitchError):
    """The CDR database cannot be used, or a record is invalid."""

    error_id = "cdr.error"


@attrs.frozen(kw_only=True)
class CdrRow:
    """One call as stored; times are epoch milliseconds, durations milliseconds."""

    call_id: str
    sip_call_id: str | None
    node: str | None
    caller: str
    dialed: str
    queue: str
    group: str
    route: str
    vendor: str | None
    agent_id: str | None
    outcome: str
    overflow_reason: str | None
    arrived_ms: int
    announced_ms: int | None
    queued_ms: int | None
    answered_ms: int | None
    ended_ms: int
    wait_ms: int | None
    ring_ms: int | None
    talk_ms: int | None
    hold_ms: int | None
    total_ms: int
    short_abandon: bool
    qa_notice_played: bool
    recording_path: str | None
    recording_error: str | None
    offers: tuple[Mapping[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        out = attrs.asdict(self, recurse=False)
        out["offers"] = [dict(o) for o in self.offers]
        return out


_COLUMNS = tuple(
    "grp" if f.name == "group" else "offers_json" if f.name == "offers" else f.name
    for f in attrs.fields(CdrRow))


def _ms(value: Any, key: str, *, required: bool = False) -> int | None:
    if value is None:
        if required:
            raise CdrError(f"record has no {key}")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise CdrError(f"record {key} must be a non-negative number of seconds, got {value!r}")
    return round(value * 1000)


def _text(record: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = record.get(key)
    if value is None:
        if required:
            raise CdrError(f"record has no {key}")
        return None
    if not isinstance(value, str):
        raise CdrError(f"record {key} must be text, got {value!r}")
    return value


def row_values(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """The column values for a call record dict (``CallRecord.to_dict()`` plus extras)."""
    call_id = _text(record, "call_id", required=True)
    if not call_id:
        raise CdrError("record has an empty call_id")
    outcome = _text(record, "outcome", required=True)
    offers = record.get("offers", [])
    if not isinstance(offers, list) or not all(isinstance(o, Mapping) for o in offers):
        raise CdrError("record offers must be a list of objects")
    recording = record.get("recording")
    recording_path = _text(record, "recording_path")
    if recording_path is None and isinstance(recording, Mapping):
        path = recording.get("path")
        recording_path = path if isinstance(path, str) else None
    values: dict[str, Any] = {
        "call_id": call_id,
        "sip_call_id": _text(record, "sip_call_id"),
        "node": _text(record, "node"),
        "caller": _text(record, "caller", required=True),
        "dialed": _text(record, "dialed", required=True),
        "queue": _text(record, "queue", required=True),
        "grp": _text(record, "group", required=True),
        "route": _text(record, "route") or "inhouse",
        "vendor": _text(record, "vendor"),
        "agent_id": _text(record, "agent_id"),
        "outcome": outcome,
        "overflow_reason": _text(record, "overflow_reason"),
        "short_abandon": int(bool(record.get("short_abandon", False))),
        "qa_notice_played": int(bool(record.get("qa_notice_played", False))),
        "recording_path": recording_path,
        "recording_error": _text(record, "recording_error"),
        "offers_json": json.dumps(offers, sort_keys=True),
    }
    for name in _TIMESTAMPS:
        values[f"{name}_ms"] = _ms(record.get(f"{name}_at"), f"{name}_at",
                                   required=name in ("arrived", "ended"))
    for name in _DURATIONS:
        values[f"{name}_ms"] = _ms(record.get(name), name, required=name == "total")
    return tuple(values[c] for c in _COLUMNS)


class CdrStore:
    """The CDR database; safe to use from one writer thread plus readers."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
        except sqlite3.Error as e:
            raise CdrError(f"cannot open CDR database {self.path}: {e}") from e
        self._lock = threading.Lock()
        self._insert = (f"INSERT OR REPLACE INTO calls ({', '.join(_COLUMNS)}) "
                        f"VALUES ({', '.join('?' * len(_COLUMNS))})")

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise CdrError(f"CDR database {self.path} has schema version {version}, newer "
                           f"than this ccswitch knows ({SCHEMA_VERSION}); upgrade ccswitch")
        for step in range(version, SCHEMA_VERSION):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(str.strip, MIGRATIONS[step].split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {step + 1}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def add(self, record: Mapping[str, Any]) -> None:
        """Store one call's record (replacing an earlier copy of the same call)."""
        values = row_values(record)
        with self._lock:
            try:
                self._db.execute(self._insert, values)
            except sqlite3.Error as e:
                raise CdrError(f"cannot store call {values[0]}: {e}") from e

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM calls").fetchone()[0])

    def rows(self, *, since_ms: int | None = None, until_ms: int | None = None,
             queue: str | None = None) -> Iterator[CdrRow]:
        """Calls that arrived in [since_ms, until_ms), oldest first."""
        where: list[str] = []
        args: list[int | str] = []
        if since_ms is not None:
            where.append("arrived_ms >= ?")
            args.append(since_ms)
        if until_ms is not None:
            where.append("arrived_ms < ?")
            args.append(until_ms)
        if queue is not None:
            where.append("queue = ?")
            args.append(queue)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM calls"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY arrived_ms, call_id"
        with self._lock:
            fetched = self._db.execute(sql, args).fetchall()
        for values in fetched:
            data = dict(zip(_COLUMNS, values))
            data["group"] = data.pop("grp")
            data["offers"] = tuple(json.loads(data.pop("offers_json")))
            data["short_abandon"] = bool(data["short_abandon"])
            data["qa_notice_played"] = bool(data["qa_notice_played"])
            yield CdrRow(**data)

    def export_jsonl(self, out: TextIO, *, since_ms: int | None = None,
                     until_ms: int | None = None) -> int:
        """Write the calls as JSON lines; returns how many."""
        n = 0
        for row in self.rows(since_ms=since_ms, until_ms=until_ms):
            out.write(json.dumps(row.to_dict(), sort_keys=True) + "\n")
            n += 1
        return n

    def close(self) -> None:
        with self._lock:
            self._db.close()


class JsonLinesSink:
    """Appends each call record as one JSON line (the optional ``cdr.jsonl`` copy)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as e:
            raise CdrError(f"cannot open {self.path}: {e}") from e

    def add(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(dict(record), sort_keys=True) + "\n"
        with self._lock:
            try:
                self._file.write(line)
                self._file.flush()
            except OSError as e:
                raise CdrError(f"cannot append to {self.path}: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._file.close()
