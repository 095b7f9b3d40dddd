"""Call records reach the CDR database even across its outages: a local spool and a replay.

:class:`SpoolingWriter` stores each record through a :class:`~ccswitch.cdr.store.CdrStore`.
While the database cannot be reached (``CdrUnavailable``: PostgreSQL down, the network
cut, the store not even opened yet because the node started during the outage), records
are appended to a local JSON-lines spool file instead, each line fsynced, and once
records wait there every new one joins them, so the database receives them in order.
:meth:`SpoolingWriter.replay`, called periodically, checks that the database answers
(so an outage, and its end, show even while no call ends) and writes the spooled
records in order; the store's upsert by call id means a record written twice (a
crash between a replay and the spool's rewrite) is still one row.

The outage is logged once when it starts and once when the spool is drained, and
shown by the ``ccswitch_cdr_backend_up`` and ``ccswitch_cdr_spooled_records`` gauges.
A record that is invalid is refused at once (``CdrError``), never spooled; a spooled
line that cannot be replayed (torn by a crash, edited) is logged and dropped rather
than blocking the ones after it.

Every method may be called from any thread; one lock keeps the spool and the store's
state consistent (records are written on worker threads, the replay on another).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

from twisted.logger import Logger

from ccswitch.cdr.errors import CdrError, CdrUnavailable
from ccswitch.cdr.store import CdrRow, CdrStore, row_values
from ccswitch.metrics.registry import Metrics

log = Logger()

#: Call records waiting for the CDR database, in the node's directory.
SPOOL_FILE = "cdr-spool.jsonl"
#: Seconds between attempts to reach the database again while records are spooled.
RETRY_INTERVAL = 5.0


class SpoolingWriter:
    """Writes call records to the CDR database, spooling them while it is unreachable."""

    def __init__(self, *, open_store: Callable[[], CdrStore], name: str, spool: Path,
                 metrics: Metrics) -> None:
        self._open_store = open_store
        self.name = name
        self.spool = spool
        self._metrics = metrics
        self._lock = threading.Lock()
        self._store: CdrStore | None = None
        self._up = True
        self._spooled = self._count_spooled()
        self._metrics.cdr_spooled_records.set(self._spooled)
        with self._lock:
            try:
                self._connected()
            except CdrUnavailable as e:
                self._went_down(e)
            else:
                self._show_up()
        if self._spooled:
            log.info("CDR spool {path} holds {count} record(s) from before; they are "
                     "written to {database} in order", path=str(self.spool),
                     count=self._spooled, database=self.name)

    # -- writing --------------------------------------------------------------

    def add(self, record: Mapping[str, Any]) -> None:
        """Store one record, or spool it while the database is unreachable.

        Raises CdrError for an invalid record (nothing stored or spooled) and for a
        spool that cannot be written (the record is then lost to the database).
        """
        row_values(record)  # an invalid record is refused now, not at replay
        with self._lock:
            if self._up and not self._spooled:
                try:
                    self._connected().add(record)
                    return
                except CdrUnavailable as e:
                    self._went_down(e)
            self._append(record)

    def get(self, call_id: str) -> CdrRow | None:
        """One call's stored row; CdrUnavailable at once while the database is down."""
        with self._lock:
            if not self._up:
                raise CdrUnavailable(f"CDR database {self.name} is unreachable")
            try:
                store = self._connected()
            except CdrUnavailable as e:
                self._went_down(e)
                raise
        return store.get(call_id)

    def replay(self) -> int:
        """Check that the database answers and write the spooled records to it in order;
        returns how many were written. What it does not take stays spooled for the next
        call. Also notices an outage, or its end, while no call ends."""
        with self._lock:
            try:
                store = self._connected()
                store.ping()
            except CdrUnavailable as e:
                self._went_down(e)
                return 0
            was_down = not self._up
            written = self._replay_spool(store) if self._spooled else 0
            if self._spooled:
                return written
            self._show_up()
            if was_down:
                log.info("CDR database {database} reachable again: {count} spooled "
                         "record(s) written", database=self.name, count=written)
            elif written:
                log.info("CDR database {database}: {count} spooled record(s) written",
                         database=self.name, count=written)
            return written

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    # -- internals (lock held) -------------------------------------------------------

    def _connected(self) -> CdrStore:
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def _went_down(self, error: CdrError) -> None:
        if self._up:
            self._up = False
            self._metrics.cdr_backend_up.set(0)
            log.error("CDR database {database} unreachable ({error}): call records are "
                      "spooled to {path} and written when it answers", database=self.name,
                      error=str(error), path=str(self.spool))

    def _show_up(self) -> None:
        self._up = True
        self._metrics.cdr_backend_up.set(1)

    def _append(self, record: Mapping[str, Any]) -> None:
        try:
            line = json.dumps(dict(record), sort_keys=True, allow_nan=False) + "\n"
        except (TypeError, ValueError) as e:
            raise CdrError(f"call record is not JSON: {e}") from e
        try:
            fd = os.open(self.spool, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise CdrError(f"cannot spool the record to {self.spool}: {e}") from e
        self._spooled += 1
        self._metrics.cdr_spooled_records.set(self._spooled)

    def _replay_spool(self, store: CdrStore) -> int:
        """Write the spool's records in order; how many were written."""
        try:
            lines = self.spool.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            lines = []  # removed by hand: nothing left to write
        except OSError as e:  # the records stay there for the operator
            log.error("CDR spool {path} cannot be read, not replayed: {error}",
                      path=str(self.spool), error=str(e))
            return 0
        done = written = 0
        try:
            for line in lines:
                if line.strip() and self._replay_line(store, line):
                    written += 1
                done += 1
        except CdrUnavailable as e:
            self._went_down(e)
        finally:
            if done or not lines:
                self._rewrite(lines[done:])
        return written

    def _replay_line(self, store: CdrStore, line: str) -> bool:
        """Write one spooled record; False (logged) if it cannot ever be written.
        CdrUnavailable stops the replay."""
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            store.add(record)
        except CdrUnavailable:
            raise
        except (ValueError, CdrError) as e:
            log.error("dropped a spooled call record that cannot be written ({error}): "
                      "{line}", error=str(e), line=line)
            return False
        return True

    def _rewrite(self, rest: list[str]) -> None:
        """Replace the spool by the lines not yet written (atomically, fsynced)."""
        remaining = [line for line in rest if line.strip()]
        try:
            if remaining:
                temp = self.spool.with_name(f".{self.spool.name}.tmp")
                with temp.open("w", encoding="utf-8") as f:
                    f.write("".join(f"{line}\n" for line in remaining))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(temp, self.spool)
            else:
                self.spool.unlink(missing_ok=True)
        except OSError as e:  # the written ones stay too: replayed again, still one row each
            log.error("CDR spool {path} cannot be rewritten: {error}", path=str(self.spool),
                      error=str(e))
            return
        self._spooled = len(remaining)
        self._metrics.cdr_spooled_records.set(self._spooled)

    def _count_spooled(self) -> int:
        try:
            text = self.spool.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return 0
        except OSError as e:
            log.error("CDR spool {path} cannot be read: {error}", path=str(self.spool),
                      error=str(e))
            return 0
        return sum(1 for line in text.splitlines() if line.strip())
