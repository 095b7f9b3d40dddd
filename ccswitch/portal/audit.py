"""The portal's audit trail: one JSON line per login, logout, failed login, lockout and
recording playback (allowed or refused), appended to a file only its owner can read,
and the same event as a structured log line (``audit=<event>``)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from twisted.logger import Logger

from ccswitch.portal.auth import Clock

log = Logger()


class AuditLog:
    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: str, **fields: Any) -> None:
        """Append one event; a failed write is logged, never raised to the request."""
        entry = {"at": round(self._clock.seconds(), 3), "event": event, **fields}
        line = json.dumps(entry, sort_keys=True, default=str)
        log.info("portal audit: {event} {fields}", event=event, fields=fields, audit=event)
        try:
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    os.write(fd, line.encode("utf-8") + b"\n")
                finally:
                    os.close(fd)
        except OSError as e:
            log.error("portal audit: cannot append to {path}: {error}", path=str(self.path),
                      error=str(e))
