"""Call detail records in SQLite or PostgreSQL: one row per call, times in milliseconds.

The store is named by a *target*: a ``Path`` is a SQLite file (one node's history,
the embedded default), a ``postgresql://user[:password]@host[:port]/database`` URL a
PostgreSQL database the nodes of a center share. Both have the schema of
``schema.py``, created and migrated by the Alembic revisions in ``migrations/``
when the store opens (a SQLite file from before Alembic is first brought to its
last ``user_version`` schema by ``legacy.py``). A database whose revision this
ccswitch does not know comes from a newer one and is refused (``CdrError``) rather
than guessed at.

SQLite runs in WAL mode (readers such as ``ccswitch report`` never block the
writer) with ``synchronous=NORMAL`` (a power cut may lose the last few commits,
never corrupt the file).

Input is the dict the B2BUA hands over: ``CallRecord.to_dict()`` plus the
optional keys ``sip_call_id``, ``recording_path``, ``recording_error``, ``node``,
``route``, ``vendor``, ``overflow_reason`` and ``hold`` (seconds on hold). Times
there are epoch seconds and durations seconds; here both become integer ms.
``route`` defaults to ``"vendor"`` when a vendor is named, else ``"inhouse"``.
When ``recording_path`` / ``recording_error`` are absent they are taken from a
nested ``recording: {"path": ..., "error": ...}`` if there is one.

Rows are keyed by the call id: adding the same record twice (a replay) keeps one
row, the later copy (an upsert on both engines). A record that fails validation
raises ``CdrError`` naming the field and writes nothing; every write is a single
statement, so it is whole or absent. A database that cannot be reached raises
``CdrUnavailable`` (a ``CdrError``), so the caller can keep the record and retry.

A store is safe to share between threads: each operation takes a pooled connection.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, TextIO

import attrs
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import (
    Connection, Engine, Table, and_, create_engine, event, func, or_, select, text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError, \
    SQLAlchemyError
from twisted.logger import Logger

from ccswitch.cdr.errors import CdrError, CdrUnavailable
from ccswitch.cdr.legacy import upgrade_to_baseline
from ccswitch.cdr.schema import calls
from ccswitch.cdr.url import check_url

__all__ = ["CdrError", "CdrRow", "CdrStore", "CdrUnavailable", "JsonLinesSink", "Target",
           "describe", "row_values"]

log = Logger()

#: A SQLite file, or a PostgreSQL URL.
Target = Path | str
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: Seconds to wait for PostgreSQL to accept a connection before the write is spooled.
CONNECT_TIMEOUT = 3
#: pg_advisory_xact_lock key held while migrating ("ccswitch" in ASCII), so nodes that
#: start together migrate one after the other.
MIGRATION_LOCK = 0x6363737769746368
# Alembic's ``context`` and ``op`` are process-wide: one migration at a time in a process.
_MIGRATING = threading.Lock()
# The execution option that makes the SQLite transaction start with this statement.
_BEGIN = "ccswitch_begin"

_TIMESTAMPS = ("arrived", "announced", "queued", "overflowed", "answered", "ended",
               "recording_started")
_DURATIONS = ("wait", "ring", "talk", "hold", "total")
_OUTCOME = re.compile(r"[a-z][a-z0-9_]*")
_MAX_SECONDS = 1e11  # about the year 5138: anything above is a unit mistake
_PAGE = 1000  # rows fetched per query by rows()


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
    ``offers`` and ``holds`` are the record's offer and hold lists as they came in.
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
    holds: tuple[Mapping[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``export_jsonl`` line)."""
        out = attrs.asdict(self, recurse=False)
        out["offers"] = [dict(o) for o in self.offers]
        out["holds"] = [dict(h) for h in self.holds]
        return out


_COLUMNS = tuple(
    "grp" if f.name == "group" else f"{f.name}_json" if f.name in ("offers", "holds")
    else f.name for f in attrs.fields(CdrRow))
_SELECT = select(*(calls.c[name] for name in _COLUMNS))


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
    if "\x00" in value:  # PostgreSQL text cannot hold it: refused alike on both engines
        raise CdrError(f"record {key} must not contain a NUL character")
    return value


def _flag(record: Mapping[str, Any], key: str) -> bool:
    value = record.get(key, False)
    if value is None:
        return False
    if value not in (True, False):  # also accepts 0 and 1
        raise CdrError(f"record {key} must be true or false, got {value!r}")
    return bool(value)


def _list_json(record: Mapping[str, Any], key: str) -> str:
    """The record's list of objects under ``key`` (offers, holds) as JSON."""
    items = record.get(key, [])
    if items is None:
        items = []
    if not isinstance(items, (list, tuple)) or not all(isinstance(o, Mapping) for o in items):
        raise CdrError(f"record {key} must be a list of objects, got {items!r}")
    try:
        return json.dumps([dict(o) for o in items], sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise CdrError(f"record {key} cannot be stored as JSON: {e}") from e


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
        "offers_json": _list_json(record, "offers"),
        "holds_json": _list_json(record, "holds"),
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
    data["holds"] = tuple(json.loads(data.pop("holds_json")))
    data["short_abandon"] = bool(data["short_abandon"])
    data["qa_notice_played"] = bool(data["qa_notice_played"])
    return CdrRow(**data)


def _check_ms(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise CdrError(f"{name} must be integer epoch milliseconds, got {value!r}")


# -- opening a database -------------------------------------------------------------

def describe(target: Target) -> str:
    """The target for logs and errors: a file path, or the URL without its password."""
    if isinstance(target, Path):
        return str(target)
    try:
        return make_url(target).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable URL)"


def _postgres_url(url: str) -> URL:
    """The SQLAlchemy URL for a ``cdr.database`` PostgreSQL URL, on the psycopg driver."""
    try:
        check_url(url)
        parsed = make_url(url)
    except (ValueError, ArgumentError) as e:
        raise CdrError(f"CDR database URL is not valid: {e}") from e
    return parsed.set(drivername="postgresql+psycopg")


def _sqlite_engine(path: Path) -> Engine:
    engine = create_engine(URL.create("sqlite", database=str(path)),
                           connect_args={"check_same_thread": False, "timeout": 5.0})

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: sqlite3.Connection, record: object) -> None:
        # SQLAlchemy, not the sqlite3 module, decides where transactions begin (below),
        # so a migration's DDL is inside its transaction too.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        # A migration takes the write lock first (BEGIN IMMEDIATE): a deferred
        # transaction that read the old schema could not upgrade to a writer later.
        connection.exec_driver_sql(connection.get_execution_options().get(_BEGIN, "BEGIN"))

    return engine


def _unavailable(error: SQLAlchemyError) -> bool:
    """Whether ``error`` says the database cannot be reached (worth a retry later)."""
    return isinstance(error, (OperationalError, InterfaceError)) or (
        isinstance(error, DBAPIError) and error.connection_invalidated)


# -- the store ----------------------------------------------------------------------

class CdrStore:
    """The CDR database (see the module docstring); safe to share between threads.

    Opening connects and migrates the schema: CdrUnavailable when the database
    cannot be reached, CdrError when it cannot be used at all.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.name = describe(target)
        self._closed = False
        if isinstance(target, Path):
            self._engine = self._open_sqlite(target)
        else:
            self._engine = create_engine(_postgres_url(target), pool_pre_ping=True,
                                         connect_args={"connect_timeout": CONNECT_TIMEOUT})
        self._upsert = (postgresql.insert if self._engine.dialect.name == "postgresql"
                        else sqlite.insert)
        try:
            with self._errors("cannot open"):
                self._migrate()
        except BaseException:
            self._engine.dispose()
            raise

    def _open_sqlite(self, path: Path) -> Engine:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            upgrade_to_baseline(path)
        except (OSError, sqlite3.Error) as e:
            raise CdrError(f"cannot open CDR database {path}: {e}") from e
        return _sqlite_engine(path)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn the database's exceptions into CdrUnavailable / CdrError."""
        if self._closed:
            raise CdrError(f"{what} CDR database {self.name}: the store is closed")
        try:
            yield
        except SQLAlchemyError as e:
            kind = CdrUnavailable if _unavailable(e) else CdrError
            reason = " ".join(str(getattr(e, "orig", None) or e).split())  # one log line
            raise kind(f"{what} CDR database {self.name}: {reason}") from e

    def _migrate(self) -> None:
        scripts = ScriptDirectory(str(MIGRATIONS_DIR))
        head = scripts.get_current_head()
        with self._engine.connect() as connection:
            if MigrationContext.configure(connection).get_current_revision() == head:
                return  # the usual case, without taking the migration lock
        with (_MIGRATING, self._engine.connect() as connection,
              connection.execution_options(**{_BEGIN: "BEGIN IMMEDIATE"}).begin()):
            if self.dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": MIGRATION_LOCK})
            current = MigrationContext.configure(connection).get_current_revision()
            if current == head:
                return  # another process was first
            try:
                if current is not None:
                    scripts.get_revision(current)
            except CommandError:
                raise CdrError(
                    f"CDR database {self.name} has schema revision {current}, newer than "
                    f"this ccswitch knows ({head}); upgrade ccswitch or point cdr.database "
                    f"at another database") from None
            config = AlembicConfig()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        log.info("CDR database {database}: schema migrated from revision {old} to {new}",
                 database=self.name, old=current or "(empty)", new=head)

    @property
    def revision(self) -> str | None:
        """The database's Alembic schema revision."""
        with self._errors("cannot read"), self._engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    def add(self, record: Mapping[str, Any]) -> None:
        """Store one call's record, replacing an earlier copy of the same call id.

        Raises CdrError (with the reason) for an invalid record or a failed write,
        CdrUnavailable when the database cannot be reached; either way nothing of
        the record is stored.
        """
        values = dict(zip(_COLUMNS, row_values(record)))
        self._upsert_by_call_id(calls, values, f"cannot store call {values['call_id']} in")

    def _upsert_by_call_id(self, table: Table, values: Mapping[str, Any], what: str) -> None:
        """Insert ``values`` into ``table``, keyed by call_id: a row already there gets
        the given columns replaced. ``what`` starts the error message."""
        statement = self._upsert(table).values(dict(values))
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.call_id],
            set_={name: statement.excluded[name] for name in values if name != "call_id"})
        with self._errors(what), self._engine.begin() as connection:
            connection.execute(statement)

    def ping(self) -> None:
        """Raise CdrUnavailable unless the database answers now."""
        with self._errors("cannot reach"), self._engine.connect() as connection:
            connection.execute(select(1))

    def count(self) -> int:
        """How many calls are stored."""
        with self._errors("cannot read"), self._engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(calls)).scalar_one())

    def get(self, call_id: str) -> CdrRow | None:
        """One call's row, or None."""
        with self._errors("cannot read"), self._engine.connect() as connection:
            found = connection.execute(_SELECT.where(calls.c.call_id == call_id)).first()
        return None if found is None else _row(tuple(found))

    def rows(self, *, since_ms: int | None = None, until_ms: int | None = None,
             queue: str | None = None) -> Iterator[CdrRow]:
        """Calls that arrived in [since_ms, until_ms) (and in ``queue``), oldest first.

        Fetched a page at a time, so a large range does not sit in memory and the
        writer is never held up for long; rows added while iterating may or may
        not be seen.
        """
        _check_ms("since_ms", since_ms)
        _check_ms("until_ms", until_ms)
        where = []
        if since_ms is not None:
            where.append(calls.c.arrived_ms >= since_ms)
        if until_ms is not None:
            where.append(calls.c.arrived_ms < until_ms)
        if queue is not None:
            where.append(calls.c.queue == queue)
        after: tuple[int, str] | None = None
        while True:
            clauses = list(where)
            if after is not None:
                clauses.append(or_(calls.c.arrived_ms > after[0],
                                   and_(calls.c.arrived_ms == after[0],
                                        calls.c.call_id > after[1])))
            query = (_SELECT.where(*clauses)
                     .order_by(calls.c.arrived_ms, calls.c.call_id).limit(_PAGE))
            with self._errors("cannot read"), self._engine.connect() as connection:
                page = [tuple(found) for found in connection.execute(query)]
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
        if not self._closed:
            self._closed = True
            self._engine.dispose()


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
