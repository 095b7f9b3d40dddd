"""RecordingSession: its state before, without and after a failed start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ccswitch.errors import RecordingError
from ccswitch.recording.session import RecordingSession, RecordingState

# A failed start never reaches the media engine or the caller's media leg.
NONE: Any = None


def test_session_not_started_until_start() -> None:
    """A new session (recordings.start after_notice, notice still playing) is not_started."""
    session = RecordingSession("c1")
    assert session.state is RecordingState.NOT_STARTED and not session.started


def test_start_that_cannot_open_the_file_fails_and_reports(tmp_path: Path) -> None:
    """A recordings directory that is a file: the session is failed and on_failure hears it."""
    blocker = tmp_path / "recordings"
    blocker.write_text("not a directory")
    heard: list[str] = []
    session = RecordingSession("c1")
    session.start(directory=blocker, now=1.0, metadata={}, media=NONE, caller=NONE, note=None,
                  on_failure=lambda call_id, error: heard.append(call_id))
    assert session.state is RecordingState.FAILED and heard == ["c1"]
    assert session.started_at == 1.0 and session.error is not None


def test_pause_without_a_recording_raises() -> None:
    """Pausing a call that records nothing raises RecordingError and records no pause."""
    session = RecordingSession("c1")
    with pytest.raises(RecordingError):
        session.pause(True, 1.0, None)
    assert session.pauses == []
