"""Agent presence that survives a restart (the embedded state store).

The node keeps, per agent, whether it is logged out, ready or not ready, in one
small JSON file written atomically (temp file, then rename) after every change.
On start the routing engine is put back into those states, so a crash or a
restart does not log every agent in or out behind the supervisors' backs.

What is stored is the presence the agent returns to once free: an agent on a
call counts as ready, unless a pause or logout is waiting for the call's end.
The dialplan's ``logged_in`` is stored too: when it differs on start-up (the file
was edited while the node was down), the dialplan wins for that agent.
:class:`PresenceKeeper` decides when to save and also hands each change to the
shared state when there is one.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

from twisted.logger import Logger

from ccswitch.clock import Clock, DelayedCall
from ccswitch.errors import CCSwitchError

log = Logger()

PRESENCES = ("logged_out", "ready", "not_ready")


class PresenceError(CCSwitchError):
    """The presence file cannot be written."""

    error_id = "state.presence"


class PresenceFile:
    """``{"agents": {id: {"presence": ..., "logged_in": bool}}}`` at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, tuple[str, bool]]:
        """agent id -> (presence, the dialplan's logged_in then); {} when absent or
        unreadable (logged: the dialplan's logged_in then decides)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            log.error("agent presence {path} unreadable, using the dialplan: {error}",
                      path=str(self.path), error=str(e))
            return {}
        agents = data.get("agents") if isinstance(data, dict) else None
        out: dict[str, tuple[str, bool]] = {}
        for agent_id, entry in (agents or {}).items():
            if (isinstance(entry, dict) and entry.get("presence") in PRESENCES
                    and isinstance(entry.get("logged_in"), bool)):
                out[str(agent_id)] = (entry["presence"], entry["logged_in"])
        return out

    def save(self, presence: Mapping[str, tuple[str, bool]]) -> None:
        """Replace the file (temp + rename: a reader or a crash sees old or new, whole)."""
        body = json.dumps({"agents": {agent_id: {"presence": p, "logged_in": logged_in}
                                      for agent_id, (p, logged_in) in sorted(presence.items())}},
                          indent=1, sort_keys=True)
        temp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, body.encode("utf-8"))
            finally:
                os.close(fd)
            os.replace(temp, self.path)
        except OSError as e:
            raise PresenceError(f"cannot write {self.path}: {e}") from e


class PresenceKeeper:
    """Saves agent presence after each burst of changes and tells the shared state.

    :meth:`changed` is cheap and may be called after every agent state change: one
    save runs on the next reactor turn, and only when the presence really changed
    (a call ending leaves a ready agent ready). The file is written off the reactor
    when there is a worker pool; worker threads may run saves out of order, so each
    save carries a sequence number and an older one never overwrites a newer one.
    """

    def __init__(self, *, clock: Clock, current: Callable[[], dict[str, tuple[str, bool]]],
                 store: PresenceFile | None,
                 defer_to_thread: Callable[..., Any] | None = None) -> None:
        self._clock = clock
        self._current = current
        self._store = store
        self._defer_to_thread = defer_to_thread
        self._shared: Callable[[Mapping[str, tuple[str, bool]]], None] | None = None
        self._pending: DelayedCall | None = None
        self._saved: dict[str, tuple[str, bool]] | None = None
        self._seq = self._written = 0
        self._lock = threading.Lock()

    def share(self, push: Callable[[Mapping[str, tuple[str, bool]]], None]) -> None:
        """Also hand every change to ``push`` (the shared state's presence hook)."""
        self._shared = push

    def changed(self) -> None:
        """Save once, after the current burst of changes."""
        if (self._store is None and self._shared is None) or (
                self._pending is not None and self._pending.active()):
            return
        self._pending = self._clock.callLater(0, self._save)

    def _save(self) -> None:
        presence = self._current()
        if presence == self._saved:
            return
        self._saved = presence
        if self._shared is not None:
            self._shared(presence)
        if self._store is None:
            return
        self._seq += 1
        store, seq = self._store, self._seq

        def save() -> None:
            with self._lock:
                if seq < self._written:
                    return
                self._written = seq
                try:
                    store.save(presence)
                except CCSwitchError as e:
                    log.error("agent presence not saved: {error}", error=str(e))

        if self._defer_to_thread is None:
            save()
        else:
            self._defer_to_thread(save).addErrback(
                lambda f: log.failure("saving agent presence failed", f))
