"""The record of a finished call as it leaves the call runtime: :class:`FinishedCall`.

It carries the routing engine's frozen :class:`~ccswitch.routing.record.CallRecord`
and what only the runtime knows: the caller's SIP Call-ID, the node, and the
recording's facts (:class:`RecordingFacts`; none for a call rejected before it
was set up). The recorder's sidecar, the CDR writer and the shared-state stream
each take :meth:`FinishedCall.to_dict` at the edge where they serialise.
"""

from __future__ import annotations

from typing import Any

import attrs

from ccswitch.routing.record import CallRecord, epoch, iso_utc


@attrs.frozen(kw_only=True)
class RecordingFacts:
    """When a call's recording started (None: never), its pauses as (from, to) epoch
    seconds, and, once the file is finished, its path or what went wrong."""

    started_at: float | None = None
    pauses: tuple[tuple[float, float | None], ...] = ()
    path: str | None = None
    error: str | None = None


@attrs.frozen(kw_only=True)
class FinishedCall:
    """A finished (or rejected) call: the engine's record plus the runtime's facts."""

    record: CallRecord
    sip_call_id: str
    node: str | None = None
    recording: RecordingFacts | None = None  # None: rejected before a recording could be

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready record: ``CallRecord.to_dict()`` plus these facts."""
        out = self.record.to_dict()
        out["sip_call_id"] = self.sip_call_id
        recording = self.recording
        if recording is not None:
            out["recording_started_at"] = epoch(recording.started_at)
            out["recording_started_at_iso"] = iso_utc(recording.started_at)
            if recording.pauses:
                out["recording_pauses"] = [{"from": start, "to": end}
                                           for start, end in recording.pauses]
            if recording.error is not None:
                out["recording_error"] = recording.error
            if recording.path is not None:
                out["recording_path"] = recording.path
        if self.node is not None:
            out["node"] = self.node
        return out
