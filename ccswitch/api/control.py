"""The node side of the operator API: agents, queues and calls from the routing engine and
the B2BUA, recordings from the CDR store."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ccswitch.api.http import NotFound
from ccswitch.cdr.spool import SpoolingWriter
from ccswitch.routing import events as ev
from ccswitch.routing.engine import RoutingEngine
from ccswitch.sip.b2bua import CallController

_AGENT_EVENTS: dict[str, type[ev.AgentLogin | ev.AgentLogout | ev.AgentPause | ev.AgentReady]] = {
    "login": ev.AgentLogin, "logout": ev.AgentLogout, "pause": ev.AgentPause,
    "ready": ev.AgentReady,
}

#: Appended with one JSON line per recording download, in the recordings directory.
DOWNLOAD_LOG = "downloads.log"


class NodeControl:
    """Implements ``ccswitch.api.http.Control`` for one node."""

    def __init__(self, *, engine: RoutingEngine, controller: CallController, cdr: SpoolingWriter,
                 recordings: Path, clock: Any) -> None:
        self._engine = engine
        self._controller = controller
        self._cdr = cdr
        self._recordings = recordings.resolve()
        self._clock = clock

    def agents(self) -> list[dict[str, Any]]:
        snapshot = self._engine.snapshot()["agents"]
        return [{"agent_id": agent_id, "state": info["state"], "call_id": info["call_id"],
                 "pending": info["pending"], "groups": self._engine.agent_groups(agent_id)}
                for agent_id, info in sorted(snapshot.items())]

    def queues(self) -> list[dict[str, Any]]:
        depths = self._engine.queue_depths()
        groups = self._engine.queue_groups()
        return [{"queue": name, "group": groups[name], "waiting": depths.get(name, 0)}
                for name in sorted(groups)]

    def calls(self) -> list[dict[str, Any]]:
        return self._controller.live_calls()

    def agent_action(self, agent_id: str, action: str) -> dict[str, Any]:
        self._controller.control(_AGENT_EVENTS[action](agent_id=agent_id))
        return {"agent_id": agent_id, "state": str(self._engine.agent_state(agent_id))}

    def recording_action(self, call_id: str, action: str) -> dict[str, Any]:
        try:
            state = self._controller.pause_recording(call_id, action == "pause")
        except KeyError:
            raise NotFound(f"no call {call_id!r} in progress") from None
        return {"call_id": call_id, "recording": state}

    def recording_file(self, call_id: str) -> Path:
        row = self._cdr.get(call_id)
        if row is None or row.recording_path is None:
            raise NotFound(f"no recording for call {call_id!r}")
        path = Path(row.recording_path).resolve()
        if not path.is_relative_to(self._recordings) or not path.is_file():
            raise NotFound(f"the recording of call {call_id!r} is not on this node")
        return path

    def log_download(self, entry: dict[str, Any]) -> None:
        line = json.dumps({"at": round(self._clock.seconds(), 3), **entry}, sort_keys=True)
        fd = os.open(self._recordings / DOWNLOAD_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     0o600)
        try:
            os.write(fd, line.encode("utf-8") + b"\n")
        finally:
            os.close(fd)
