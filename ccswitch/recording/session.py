"""One call's recording from start to finish: :class:`RecordingSession`.

The call runtime starts the session when the engine says so, adds each party the
caller is bridged with, pauses and resumes it for the operator API (PCI: silence
on both channels; the pauses go into the sidecar), and stops it when the call
ends. :func:`close_files` then runs off the reactor: it finishes the WAV and its
sidecar, hands the call's record to the CDR sink, removes the call note (only
then: a crash before it still leaves a record) and makes the optional
compressed copy.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, Callable, Mapping

import attrs
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from twisted.logger import Logger

from ccswitch.errors import RecordingError
from ccswitch.media.engine import MediaEngine, MediaLeg
from ccswitch.recording.finished import FinishedCall, RecordingFacts
from ccswitch.recording.note import CallNote
from ccswitch.recording.recorder import CallRecorder, export_compressed

log = Logger()

#: Told of a recording that failed: (call id, the error); safe on any thread.
OnFailure = Callable[[str, Exception], None]


class RecordingState(enum.StrEnum):
    """Where a call's recording stands (the operator API shows it)."""

    NOT_STARTED = "not_started"  # recordings.start after_notice: the notice still plays
    RECORDING = "recording"
    PAUSED = "paused"
    FAILED = "failed"


class RecordingSession:
    """The recording of one call; every method but the properties runs on the reactor."""

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self._on_failure: OnFailure | None = None
        self.started_at: float | None = None
        self.recorder: CallRecorder | None = None
        self.error: str | None = None
        self.pauses: list[list[float | None]] = []  # [from, to] epoch s; to None: paused now
        self._media: MediaEngine | None = None
        self._caller: MediaLeg | None = None

    @property
    def started(self) -> bool:
        return self.started_at is not None

    @property
    def state(self) -> RecordingState:
        if self.started_at is None:
            return RecordingState.NOT_STARTED
        if self.recorder is None or self.error is not None:
            return RecordingState.FAILED
        if self.pauses and self.pauses[-1][1] is None:
            return RecordingState.PAUSED
        return RecordingState.RECORDING

    def start(self, *, directory: Path, now: float, metadata: Mapping[str, Any],
              media: MediaEngine, caller: MediaLeg, note: CallNote | None,
              on_failure: OnFailure, seal: X25519PublicKey | None = None,
              compressed_format: str | None = None) -> None:
        """Open the WAV in ``.incomplete`` and tap the caller's audio into its left channel;
        ``on_failure`` hears of a failure, now or later. With ``seal`` (the public key of
        ``recordings.encrypt``) the recording is sealed as it is written, and so is its
        compressed copy, made while recording rather than from a clear WAV afterwards."""
        self.started_at = now
        self._on_failure = on_failure
        try:
            self.recorder = CallRecorder(
                directory, self.call_id, now, metadata, seal=seal,
                sealed_copy=compressed_format if seal is not None else None)
        except RecordingError as e:
            self.failed(e)
            return
        if note is not None:
            note.add("recording", now, wav=self.recorder.temp_path.name)
        self._media, self._caller = media, caller
        media.record(caller, self.recorder, on_error=self.failed)

    def add_party(self, leg: MediaLeg) -> None:
        """Record ``leg`` (the agent or vendor bridged with the caller) on the right channel."""
        if self._media is not None and self.recorder is not None:
            self._media.record_agent(leg, self.recorder)

    def failed(self, error: Exception) -> None:
        self.error = str(error)
        if self._on_failure is not None:
            self._on_failure(self.call_id, error)

    def pause(self, paused: bool, now: float, note: CallNote | None) -> RecordingState:
        """Pause (or resume) the recording; RecordingError when none is in progress."""
        tap = None if self._media is None or self._caller is None else \
            self._media.tap_for(self._caller)
        if tap is None or self.recorder is None:
            raise RecordingError(f"call {self.call_id} has no recording in progress")
        was_paused = tap.paused
        tap.paused = paused
        if paused and not was_paused:
            self.pauses.append([now, None])
        elif not paused and was_paused:
            self.pauses[-1][1] = now
        if note is not None and paused != was_paused:
            note.add("paused" if paused else "resumed", now)
        log.info("call {call_id}: recording {what}", call_id=self.call_id,
                 what="paused" if paused else "resumed")
        return self.state

    def facts(self, ended_at: float | None) -> RecordingFacts:
        """What the call's record says of its recording; a pause still running ends at
        ``ended_at`` (the call's end)."""
        return RecordingFacts(
            started_at=self.started_at, error=self.error,
            pauses=tuple((start, end if end is not None else ended_at)
                         for start, end in self.pauses if start is not None))

    def stop(self) -> None:
        """The call ended: no more audio goes into the file."""
        if self._media is not None and self._caller is not None:
            self._media.stop_recording(self._caller)


def close_files(*, finished: FinishedCall, recorder: CallRecorder | None,
                hand_off: Callable[[FinishedCall], None] | None, note: CallNote | None,
                compressed_format: str | None, on_failure: OnFailure) -> None:
    """Finalise the recording (its sidecar gets ``finished`` as it stands; the record
    handed on gets the file's path or error too), hand the record to the CDR sink,
    remove the call note, then make the optional compressed copy (any thread)."""
    call_id = finished.record.call_id
    wav: Path | None = None
    if recorder is not None and finished.recording is not None:
        facts = finished.recording
        try:
            result = recorder.finish(finished.to_dict())
        except RecordingError as e:
            on_failure(call_id, e)
            facts = attrs.evolve(facts, error=str(e))
        else:
            wav = result.path
            facts = attrs.evolve(facts, path=str(wav),
                                 error=facts.error if facts.error is not None else result.error)
        finished = attrs.evolve(finished, recording=facts)
    if hand_off is not None:
        try:
            hand_off(finished)
        except Exception:
            log.failure("call {call_id}: storing the call record failed", call_id=call_id)
    if note is not None:
        note.discard()
    if wav is not None and compressed_format is not None and not (
            recorder is not None and recorder.sealed):  # a sealed recorder made its own
        try:
            export_compressed(wav, compressed_format)
        except RecordingError as e:
            log.error("call {call_id}: compressed copy failed: {error}", call_id=call_id,
                      error=str(e))
