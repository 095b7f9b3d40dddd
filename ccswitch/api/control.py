"""The node side of the operator API: agents, queues and calls from the routing engine and
the call runtime, recordings from the CDR store."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ccswitch.api.http import NotFound
from ccswitch.cdr.spool import SpoolingWriter
from ccswitch.recording import ledger
from ccswitch.routing import events as ev
from ccswitch.routing.engine import RoutingEngine
from ccswitch.routing.runtime import UnknownAgent
from ccswitch.calls.runtime import CallController

_AGENT_EVENTS: dict[str, type[ev.AgentLogin | ev.AgentLogout | ev.AgentPause | ev.AgentReady]] = {
    "login": ev.AgentLogin, "logout": ev.AgentLogout, "pause": ev.AgentPause,
    "ready": ev.AgentReady,
}

log = Logger()

#: Appended with one JSON line per recording download, in the recordings directory.
DOWNLOAD_LOG = "downloads.log"


class NodeControl:
    """Implements ``ccswitch.api.http.Control`` for one node."""

    def __init__(self, *, engine: RoutingEngine, controller: CallController, cdr: SpoolingWriter,
                 recordings: Path, clock: Any,
                 defer_to_thread: Callable[[Callable[[], object]], Deferred[object]]) -> None:
        self._engine = engine
        self._controller = controller
        self._cdr = cdr
        self._recordings = recordings.resolve()
        self._clock = clock
        self._defer_to_thread = defer_to_thread

    def agents(self) -> list[dict[str, Any]]:
        agents = self._engine.view.agents
        return [{"agent_id": agent_id, "state": agent.state.value, "call_id": agent.call_id,
                 "pending": agent.pending, "groups": list(agent.groups)}
                for agent_id, agent in sorted(agents.items())]

    def queues(self) -> list[dict[str, Any]]:
        queues = self._engine.view.queues
        return [{"queue": name, "group": queue.group, "waiting": queue.depth}
                for name, queue in sorted(queues.items())]

    def calls(self) -> list[dict[str, Any]]:
        """The calls in progress, oldest first, as JSON-ready dicts."""
        now = self._clock.seconds()
        in_engine = self._engine.view.calls
        out = []
        for call_id, recording in self._controller.recording_states().items():
            info = in_engine.get(call_id)
            if info is None:
                continue  # ending right now
            record = info.record
            out.append({
                "call_id": call_id, "queue": record.queue, "state": str(info.state),
                "caller": record.caller, "dialed": record.dialed,
                "agent_id": record.agent_id, "route": str(record.route),
                "vendor": record.vendor, "overflow_reason": record.overflow_reason,
                "seconds": round(now - record.arrived_at, 3),
                "recording": str(recording),
            })
        return out

    def agent_action(self, agent_id: str, action: str) -> dict[str, Any]:
        self._controller.control(_AGENT_EVENTS[action](agent_id=agent_id))
        agent = self._engine.view.agents.get(agent_id)
        if agent is None:
            raise UnknownAgent(agent_id)
        return {"agent_id": agent_id, "state": str(agent.state)}

    def recording_action(self, call_id: str, action: str) -> dict[str, Any]:
        try:
            state = self._controller.pause_recording(call_id, action == "pause")
        except KeyError:
            raise NotFound(f"no call {call_id!r} in progress") from None
        return {"call_id": call_id, "recording": str(state)}

    def recording_file(self, call_id: str) -> Path:
        row = self._cdr.get(call_id)
        if row is None or row.recording_path is None:
            raise NotFound(f"no recording for call {call_id!r}")
        path = Path(row.recording_path).resolve()
        if not path.is_relative_to(self._recordings) or not path.is_file():
            raise NotFound(f"the recording of call {call_id!r} is not on this node")
        return path

    def log_download(self, entry: dict[str, Any]) -> None:
        """One line in downloads.log now, and a ledger entry written off the reactor (it
        fsyncs and may wait for ``ccswitch purge`` to finish its own entry)."""
        at = self._clock.seconds()
        path = Path(entry["path"])
        done = self._defer_to_thread(functools.partial(
            ledger.append, self._recordings, "download", at, call_id=entry["call_id"],
            client=entry["client"], file=path.relative_to(self._recordings).as_posix(),
            decrypted=entry.get("decrypted", False)))
        done.addErrback(lambda f: log.error("recording {call_id}: download not entered in "
                                            "the ledger: {error}", call_id=entry["call_id"],
                                            error=str(f.value)))
        line = json.dumps({"at": round(at, 3), **entry}, sort_keys=True)
        fd = os.open(self._recordings / DOWNLOAD_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     0o600)
        try:
            os.write(fd, line.encode("utf-8") + b"\n")
        finally:
            os.close(fd)
