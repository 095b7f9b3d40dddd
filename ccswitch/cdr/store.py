"""Call detail records in SQLite: one row per call, every timestamp in milliseconds.

The database runs in WAL mode (readers such as ``ccswitch report`` never block
the writer) with ``synchronous=NORMAL`` (a power cut may lose the last few
commits, never corrupt the file). Its schema version is SQLite's
``user_version``; opening an older database applies the missing steps of
``MIGRATIONS`` in order, in one transaction, and a database from a newer
ccswitch is refused (``CdrError``) rather than guessed at.

Input is the dict the B2BUA hands over: ``CallRecord.to_dict()`` plus the
optional keys ``sip_call_id``, ``recording_path``, ``recording_error``, ``node``,
``route``, ``vendor``, ``overflow_reason`` and ``hold`` (seconds on hold). Times
there are epoch seconds and durations seconds; here both become integer ms.
``route`` defaults to ``"vendor"`` when a vendor is named, else ``"inhouse"``.
When ``recording_path`` / ``recording_error`` are absent they are taken from a
nested ``recording: {"path": ..., "error": ...}`` if there is one.

Rows are keyed by the call id: adding the same record twice (a replay) keeps one
row, the later copy. A record that fails validation raises ``CdrError`` naming
the field and writes nothing; every write is a single statement, so it is whole
or absent.

One connection serves the writer thread and readers alike
(``check_same_thread=False``), guarded by a lock; other processes open their own.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, TextIO

import attrs
from twisted.logger import Logger

from ccswitch.errors import CCSwitchError

log = Logger()

#: Step ``n`` (0-based) takes the schema from version ``n`` to ``n + 1``.
#: Never edit a shipped step: append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # v1: the first CDR table.
    (
        """CREATE TABLE calls (
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
        )""",
        "CREATE INDEX calls_arrived ON calls (arrived_ms)",
        "CREATE INDEX calls_queue_arrived ON calls (queue, arrived_ms)",
        "CREATE INDEX calls_caller ON calls (caller)",
    ),
    # v2: the queue's short-abandon threshold at arrival (so the flag can be
    # audited), and per-agent lookups.
    (
        "ALTER TABLE calls ADD COLUMN short_abandon_threshold_ms INTEGER",
        "CREATE INDEX calls_agent_arrived ON calls (agent_id, arrived_ms)",
    ),
    # v3: vendor overflow. When the call was first sent to a vendor, and the
    # outcome list of issue 2: "answered" splits by route; "abandoned" becomes
    # short_abandon (flagged short), abandoned_ringing (an agent's offer was
    # cancelled by the hang-up: with no answer, only the caller leaving cancels
    # offers) or abandoned_queue.
    (
        "ALTER TABLE calls ADD COLUMN overflowed_ms INTEGER",
        "CREATE INDEX calls_vendor_arrived ON calls (vendor, arrived_ms)",
        """UPDATE calls SET outcome = CASE
             WHEN route = 'vendor' THEN 'answered_vendor' ELSE 'answered_inhouse' END
           WHERE outcome = 'answered'""",
        """UPDATE calls SET outcome = CASE
             WHEN short_abandon = 1 THEN 'short_abandon'
             WHEN offers_json LIKE '%"result": "cancelled"%' THEN 'abandoned_ringing'
             ELSE 'abandoned_queue' END
           WHERE outcome = 'abandoned'""",
    ),
    # v4: when the recording started (after the QA notice, or at the answer), so the
    # record shows the notice came first.
    (
        "ALTER TABLE calls ADD COLUMN recording_started_ms INTEGER",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_TIMESTAMPS = ("arrived", "announced", "queued", "overflowed", "answered", "ended",
               "recording_started")
_DURATIONS = ("wait", "ring", "talk", "hold", "total")
_OUTCOME = re.compile(r"[a-z][a-z0-9_]*")
_MAX_SECONDS = 1e11  # about the year 5138: anything above is a unit mistake
_PAGE = 1000  # rows fetched per query by rows()


class CdrError(CCSwitchError):
    """The CDR database cannot be used, or a call record is invalid."""

    error_id = "cdr.error"


def _non_empty(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise CdrError(f"{attribute.name} must be non-empty text, got {value!r}")


def _ms_field(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CdrError(f"{attribute.name} must be integer milliseconds, got {value!r}")


@attrs.frozen(kw_only=True)
class CdrRow:
    """One call as stored; times are epoch milliseconds, durations milliseconds.

    ``route`` is ``"inhouse"`` or ``"vendor"`` (then ``vendor`` names it);
    ``offers`` is the record's offer list as it came in.
    """

    call_id: str = attrs.field(validator=_non_empty)
    sip_call_id: str | None
    node: str | None
    caller: str
    dialed: str
    queue: str = attrs.field(validator=_non_empty)
    group: str
    route: str = attrs.field(validator=_non_empty)
    vendor: str | None
    agent_id: str | None
    outcome: str = attrs.field(validator=_non_empty)
    overflow_reason: str | None
    arrived_ms: int = attrs.field(validator=_ms_field)
    announced_ms: int | None
    queued_ms: int | None
    answered_ms: int | None
    ended_ms: int = attrs.field(validator=_ms_field)
    wait_ms: int | None
    ring_ms: int | None
    talk_ms: int | None
    hold_ms: int | None
    total_ms: int = attrs.field(validator=_ms_field)
    short_abandon: bool
    qa_notice_played: bool
    recording_path: str | None
    recording_error: str | None
    offers: tuple[Mapping[str, Any], ...]
    short_abandon_threshold_ms: int | None = None
    overflowed_ms: int | None = None
    recording_started_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``export_jsonl`` line)."""
        out = attrs.asdict(self, recurse=False)
        out["offers"] = [dict(o) for o in self.offers]
        return out


_COLUMNS = tuple(
    "grp" if f.name == "group" else "offers_json" if f.name == "offers" else f.name
    for f in attrs.fields(CdrRow))
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM calls"
_INSERT = (f"INSERT OR REPLACE INTO calls ({', '.join(_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(_COLUMNS))})")


# -- validating a record ----------------------------------------------------------

def _seconds_to_ms(record: Mapping[str, Any], key: str, *, required: bool = False) -> int | None:
    value = record.get(key)
    if value is None:
        if required:
            raise CdrError(f"record has no {key}")
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not 0 <= value < _MAX_SECONDS):
        raise CdrError(f"record {key} must be a non-negative number of seconds, got {value!r}")
    return round(value * 1000)


def _text(record: Mapping[str, Any], key: str, *, required: bool = False,
          non_empty: bool = False) -> str | None:
    value = record.get(key)
    if value is None:
        if required:
            raise CdrError(f"record has no {key}")
        return None
    if not isinstance(value, str):
        raise CdrError(f"record {key} must be text, got {value!r}")
    if non_empty and not value:
        raise CdrError(f"record {key} must not be empty")
    return value


def _flag(record: Mapping[str, Any], key: str) -> int:
    value = record.get(key, False)
    if value is None:
        return 0
    if value not in (True, False):  # also accepts 0 and 1
        raise CdrError(f"record {key} must be true or false, got {value!r}")
    return int(value)


def _offers_json(record: Mapping[str, Any]) -> str:
    offers = record.get("offers", [])
    if offers is None:
        offers = []
    if not isinstance(offers, (list, tuple)) or not all(isinstance(o, Mapping) for o in offers):
        raise CdrError(f"record offers must be a list of objects, got {offers!r}")
    try:
        return json.dumps([dict(o) for o in offers], sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise CdrError(f"record offers cannot be stored as JSON: {e}") from e


def row_values(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """The column values (in ``_COLUMNS`` order) for one call record; raises CdrError."""
    if not isinstance(record, Mapping):
        raise CdrError(f"a call record must be a mapping, got {type(record).__name__}")
    outcome = _text(record, "outcome", required=True)
    assert outcome is not None
    if _OUTCOME.fullmatch(outcome) is None:
        raise CdrError(f"record outcome must be a lower-case word like 'answered', "
                       f"got {outcome!r}")
    vendor = _text(record, "vendor", non_empty=True)
    recording = record.get("recording")
    nested = recording if isinstance(recording, Mapping) else {}
    recording_path = _text(record, "recording_path")
    if recording_path is None:
        recording_path = _text(nested, "path")
    recording_error = _text(record, "recording_error")
    if recording_error is None:
        recording_error = _text(nested, "error")
    values: dict[str, Any] = {
        "call_id": _text(record, "call_id", required=True, non_empty=True),
        "sip_call_id": _text(record, "sip_call_id"),
        "node": _text(record, "node"),
        "caller": _text(record, "caller", required=True),
        "dialed": _text(record, "dialed", required=True),
        "queue": _text(record, "queue", required=True, non_empty=True),
        "grp": _text(record, "group", required=True),
        "route": (_text(record, "route", non_empty=True)
                  or ("vendor" if vendor is not None else "inhouse")),
        "vendor": vendor,
        "agent_id": _text(record, "agent_id"),
        "outcome": outcome,
        "overflow_reason": _text(record, "overflow_reason", non_empty=True),
        "short_abandon": _flag(record, "short_abandon"),
        "qa_notice_played": _flag(record, "qa_notice_played"),
        "recording_path": recording_path,
        "recording_error": recording_error,
        "offers_json": _offers_json(record),
        "short_abandon_threshold_ms": _seconds_to_ms(record, "short_abandon_threshold"),
    }
    for name in _TIMESTAMPS:
        values[f"{name}_ms"] = _seconds_to_ms(record, f"{name}_at",
                                              required=name in ("arrived", "ended"))
    if values["ended_ms"] < values["arrived_ms"]:
        raise CdrError(f"record ended_at {record['ended_at']!r} is before its "
                       f"arrived_at {record['arrived_at']!r}")
    for name in _DURATIONS:
        values[f"{name}_ms"] = _seconds_to_ms(record, name)
    if values["total_ms"] is None:
        values["total_ms"] = values["ended_ms"] - values["arrived_ms"]
    return tuple(values[c] for c in _COLUMNS)


def _row(values: tuple[Any, ...]) -> CdrRow:
    data = dict(zip(_COLUMNS, values))
    data["group"] = data.pop("grp")
    data["offers"] = tuple(json.loads(data.pop("offers_json")))
    data["short_abandon"] = bool(data["short_abandon"])
    data["qa_notice_played"] = bool(data["qa_notice_played"])
    return CdrRow(**data)


def _check_ms(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise CdrError(f"{name} must be integer epoch milliseconds, got {value!r}")


# -- the store ----------------------------------------------------------------------

class CdrStore:
    """The CDR database; safe to share between one writer thread and readers."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CdrError(f"cannot open CDR database {self.path}: {e}") from e
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False,
                                       isolation_level=None, timeout=5.0)
        except sqlite3.Error as e:
            raise CdrError(f"cannot open CDR database {self.path}: {e}") from e
        try:
            # Refuse a newer schema before touching the file (journal_mode persists).
            self._refuse_newer(self._user_version())
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.Error as e:
            self._db.close()
            raise CdrError(f"cannot open CDR database {self.path}: {e}") from e
        except BaseException:
            self._db.close()
            raise

    def _user_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise CdrError(f"CDR database {self.path} has schema version {version}, newer "
                           f"than this ccswitch knows ({SCHEMA_VERSION}); upgrade ccswitch "
                           f"or point cdr.database at another file")

    def _migrate(self) -> None:
        if self._user_version() == SCHEMA_VERSION:
            return
        self._db.execute("BEGIN IMMEDIATE")  # one migrator at a time across processes
        try:
            before = self._user_version()  # again: another process may have migrated
            self._refuse_newer(before)
            for step in range(before, SCHEMA_VERSION):
                for statement in MIGRATIONS[step]:
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        if before != SCHEMA_VERSION:
            log.info("CDR database {path}: schema migrated from version {old} to {new}",
                     path=str(self.path), old=before, new=SCHEMA_VERSION)

    @property
    def schema_version(self) -> int:
        """The database's schema version (``PRAGMA user_version``)."""
        with self._lock:
            return self._user_version()

    @property
    def journal_mode(self) -> str:
        """SQLite's journal mode for this database (``"wal"``)."""
        with self._lock:
            return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    def add(self, record: Mapping[str, Any]) -> None:
        """Store one call's record, replacing an earlier copy of the same call id.

        Raises CdrError (with the reason) for an invalid record or a failed write;
        either way nothing of the record is stored.
        """
        values = row_values(record)
        with self._lock:
            try:
                self._db.execute(_INSERT, values)
            except sqlite3.Error as e:
                raise CdrError(f"cannot store call {values[0]}: {e}") from e

    def count(self) -> int:
        """How many calls are stored."""
        with self._lock:
            try:
                return int(self._db.execute("SELECT count(*) FROM calls").fetchone()[0])
            except sqlite3.Error as e:
                raise CdrError(f"cannot read {self.path}: {e}") from e

    def get(self, call_id: str) -> CdrRow | None:
        """One call's row, or None."""
        with self._lock:
            try:
                found = self._db.execute(f"{_SELECT} WHERE call_id = ?", (call_id,)).fetchone()
            except sqlite3.Error as e:
                raise CdrError(f"cannot read {self.path}: {e}") from e
        return None if found is None else _row(found)

    def rows(self, *, since_ms: int | None = None, until_ms: int | None = None,
             queue: str | None = None) -> Iterator[CdrRow]:
        """Calls that arrived in [since_ms, until_ms) (and in ``queue``), oldest first.

        Fetched a page at a time, so a large range does not sit in memory and the
        writer is never held up for long; rows added while iterating may or may
        not be seen.
        """
        _check_ms("since_ms", since_ms)
        _check_ms("until_ms", until_ms)
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
        after: tuple[int, str] | None = None
        while True:
            clauses, page_args = list(where), list(args)
            if after is not None:
                clauses.append("arrived_ms >= ? AND (arrived_ms > ? OR call_id > ?)")
                page_args += [after[0], after[0], after[1]]
            sql = _SELECT
            if clauses:
                sql += " WHERE " + " AND ".join(clauses)
            sql += f" ORDER BY arrived_ms, call_id LIMIT {_PAGE}"
            with self._lock:
                try:
                    page = self._db.execute(sql, page_args).fetchall()
                except sqlite3.Error as e:
                    raise CdrError(f"cannot read {self.path}: {e}") from e
            for values in page:
                yield _row(values)
            if len(page) < _PAGE:
                return
            last = _row(page[-1])
            after = (last.arrived_ms, last.call_id)

    def export_jsonl(self, out: TextIO, *, since_ms: int | None = None,
                     until_ms: int | None = None, queue: str | None = None) -> int:
        """Write the calls (as ``rows()`` picks them) as JSON lines; returns how many."""
        n = 0
        for row in self.rows(since_ms=since_ms, until_ms=until_ms, queue=queue):
            out.write(json.dumps(row.to_dict(), sort_keys=True) + "\n")
            n += 1
        return n

    def close(self) -> None:
        """Close the database (a second call does nothing)."""
        with self._lock:
            if not self._closed:
                self._closed = True
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
        """Append one record; raises CdrError if it is not JSON or cannot be written."""
        try:
            line = json.dumps(dict(record), sort_keys=True, allow_nan=False) + "\n"
        except (TypeError, ValueError) as e:
            raise CdrError(f"call record is not JSON: {e}") from e
        with self._lock:
            try:
                self._file.write(line)
                self._file.flush()
            except (OSError, ValueError) as e:
                raise CdrError(f"cannot append to {self.path}: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._file.close()
