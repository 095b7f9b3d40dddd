"""The call note: what is known about a call in progress, kept on disk for crash recovery.

A note is opened when the caller is answered (200 OK), whether or not the call
will ever be recorded, at ``<directory>/.incomplete/<safe id>.call``. It is
append-only JSON lines, one line per fact, written as the fact happens:

- ``accepted``: call id, SIP Call-ID, caller, dialed number, queue, group,
  arrival time, short-abandon threshold (the first line);
- ``queued``: the QA notice was heard, the call waits in its queue;
- ``offered``: an agent (``agent_id``) or a vendor's trunk (``vendor``, ``trunk``)
  is rung;
- ``answered``: that agent or vendor answered and is bridged;
- ``recording``: the recorder started; ``wav`` is its temp file's name;
- ``paused`` / ``resumed``: the recording was paused or resumed.

Every line carries ``at`` (epoch seconds) and, except ``recording``, ``paused``
and ``resumed``, ``record``: the engine record's progress fields as they stand
then (``progress``); a later line's ``record`` supersedes an earlier one. The
facts come from the engine's actions as the call runtime carries them out
(``fact_for``), so the note holds what the engine decided, nothing derived.

Durability: one ``write`` per fact on a descriptor opened with ``O_APPEND``,
no fsync. That is a few hundred bytes into the page cache per fact, so the
call path stays fast, and a killed process (the failure this is for) loses
nothing it wrote. A power cut may lose the latest facts, as it may lose the
last second of audio, which is not fsynced either. When the call's record is
stored the note is removed; recovery (``recovery.py``) turns every note left
behind into an ``interrupted`` record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final, Mapping

import attrs
from twisted.logger import Logger

from ccswitch.recording.recorder import INCOMPLETE_DIR, _open_exclusive, safe_call_id
from ccswitch.routing import actions as act
from ccswitch.routing.record import CallRecord
from ccswitch.routing.target import TargetKind

__all__ = [
    "NOTE_SUFFIX", "CallNote", "NoteFacts", "NotedOffer", "accepted", "fact_for", "progress",
    "read_note",
]

log = Logger()

NOTE_SUFFIX: Final = ".call"
def progress(record: CallRecord) -> dict[str, Any]:
    """The engine record's fields a note keeps up to date, JSON-ready."""
    return {"announced_at": record.announced_at, "queued_at": record.queued_at,
            "qa_notice_played": record.qa_notice_played, "agent_id": record.agent_id,
            "answered_at": record.answered_at, "route": record.route.value,
            "vendor": record.vendor, "overflow_reason": record.overflow_reason,
            "overflowed_at": record.overflowed_at}


class CallNote:
    """One call's note; ``add`` per fact (reactor thread), ``discard`` once at the end.

    A disk error never reaches the call: it is logged once and the note stops
    growing (recovery still uses what was written).
    """

    def __init__(self, fd: int, path: Path, call_id: str) -> None:
        self._fd: int | None = fd
        self.path = path
        self.call_id = call_id

    @classmethod
    def open(cls, directory: Path, call_id: str, at: float,
             accepted: Mapping[str, Any]) -> CallNote | None:
        """Create the note and write its ``accepted`` line; None (logged) if the disk refuses."""
        incomplete = Path(directory) / INCOMPLETE_DIR
        flags = os.O_APPEND | os.O_NOFOLLOW
        try:
            try:
                fd, path = _open_exclusive(incomplete, safe_call_id(call_id), NOTE_SUFFIX, flags)
            except FileNotFoundError:
                incomplete.mkdir(parents=True, exist_ok=True)
                fd, path = _open_exclusive(incomplete, safe_call_id(call_id), NOTE_SUFFIX, flags)
        except OSError as e:
            log.error("call {call_id}: no call note, a crash would leave no record: {error}",
                      call_id=call_id, error=str(e))
            return None
        note = cls(fd, path, call_id)
        note.add("accepted", at, **accepted)
        return note

    def add(self, fact: str, at: float, **fields: Any) -> None:
        """Append one fact (one write, no fsync)."""
        if self._fd is None:
            return
        line = json.dumps({"fact": fact, "at": at, **fields}, sort_keys=True,
                          separators=(",", ":"), default=str).encode("utf-8") + b"\n"
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(f"short write ({written} of {len(line)} bytes)")
        except OSError as e:
            log.error("call {call_id}: call note {path} not written, later facts are lost "
                      "in a crash: {error}", call_id=self.call_id, path=str(self.path),
                      error=str(e))
            self._close()

    def discard(self) -> None:
        """The call's record is stored: close and remove the note (any thread)."""
        self._close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warn("call {call_id}: cannot remove {path}: {error}", call_id=self.call_id,
                     path=str(self.path), error=str(e))

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


@attrs.frozen(kw_only=True)
class NotedOffer:
    """An ``offered`` fact: the call rang an agent, or a vendor's trunk."""

    agent_id: str | None
    vendor: str | None
    trunk: str | None
    at: float


@attrs.frozen(kw_only=True)
class NoteFacts:
    """What a note says, merged: ``record`` holds the accepted fields overlaid by the
    latest progress; the rest are the facts recovery needs to place the call in time."""

    call_id: str
    record: Mapping[str, Any]
    last_at: float | None
    offers: tuple[NotedOffer, ...] = ()
    wav: str | None = None
    recording_started_at: float | None = None
    #: [from, to] pairs; ``to`` None for a pause still running at the crash.
    pauses: tuple[tuple[float, float | None], ...] = ()


def read_note(path: Path) -> NoteFacts:
    """Parse a note; lines that do not parse (a torn last write) are skipped with a log
    line. OSError if it cannot be read; ValueError if it has no usable ``accepted`` line."""
    record: dict[str, Any] = {}
    call_id: str | None = None
    last_at: float | None = None
    offers: list[NotedOffer] = []
    pauses: list[tuple[float, float | None]] = []
    wav: str | None = None
    recording_at: float | None = None
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = json.loads(raw)
        except ValueError:
            line = None
        at = line.get("at") if isinstance(line, dict) else None
        if (not isinstance(line, dict) or isinstance(at, bool)
                or not isinstance(at, (int, float))):
            log.warn("call note {path}: line {number} unreadable, skipped", path=str(path),
                     number=number)
            continue
        fact = line.get("fact")
        at = float(at)
        last_at = at if last_at is None else max(last_at, at)
        fields = line.get("record")
        if fact == "accepted":
            if isinstance(line.get("call_id"), str) and line["call_id"]:
                call_id = line["call_id"]
            record.update({k: v for k, v in line.items() if k not in ("fact", "at")})
        elif isinstance(fields, dict):
            record.update(fields)
        if fact == "offered":
            agent, vendor, trunk = line.get("agent_id"), line.get("vendor"), line.get("trunk")
            offers.append(NotedOffer(agent_id=agent if isinstance(agent, str) else None,
                                     vendor=vendor if isinstance(vendor, str) else None,
                                     trunk=trunk if isinstance(trunk, str) else None, at=at))
        elif fact == "recording" and isinstance(line.get("wav"), str):
            wav, recording_at = line["wav"], at
        elif fact == "paused":
            pauses.append((at, None))
        elif fact == "resumed" and pauses and pauses[-1][1] is None:
            pauses[-1] = (pauses[-1][0], at)
    if call_id is None:
        raise ValueError(f"{path} has no accepted line with a call id")
    return NoteFacts(call_id=call_id, record=record, last_at=last_at, offers=tuple(offers),
                     wav=wav, recording_started_at=recording_at, pauses=tuple(pauses))


def accepted(record: CallRecord, sip_call_id: str) -> dict[str, Any]:
    """The ``accepted`` line's fields: who called what, into which queue, and when."""
    return {"call_id": record.call_id, "sip_call_id": sip_call_id, "caller": record.caller,
            "dialed": record.dialed, "queue": record.queue, "group": record.group,
            "arrived_at": record.arrived_at,
            "short_abandon_threshold": record.short_abandon_threshold}


def fact_for(action: act.Action, record: CallRecord) -> tuple[str, dict[str, Any]] | None:
    """The fact an engine action carried out on a call adds to its note (with the
    engine's record as it stands), or None for an action that tells nothing new."""
    fields: dict[str, Any] = {"record": progress(record)}
    if isinstance(action, act.StartMusicOnHold):
        return "queued", fields
    if isinstance(action, act.Ring):
        if action.target.kind is TargetKind.AGENT:
            return "offered", {**fields, "agent_id": action.target.id}
        return "offered", {**fields, "vendor": action.target.id, "trunk": action.uri}
    if isinstance(action, act.Bridge):
        if action.target.kind is TargetKind.AGENT:
            return "answered", {**fields, "agent_id": action.target.id}
        return "answered", {**fields, "vendor": action.target.id}
    return None
