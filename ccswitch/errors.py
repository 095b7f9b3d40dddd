"""One error tree for ccswitch.

Operator-facing errors carry a stable ``error_id`` and details; SIP-facing
errors carry the status code to answer with.
"""

from __future__ import annotations


class CCSwitchError(Exception):
    """Base of every error ccswitch raises on purpose."""

    error_id = "ccswitch.error"


class ConfigError(CCSwitchError):
    """A config or dialplan file is invalid: names the file, key and reason."""

    error_id = "config.invalid"

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        super().__init__(f"{file}: {key}: {reason}")


class SipError(CCSwitchError):
    """A SIP-facing error: ``status`` is the response code to answer with."""

    error_id = "sip.error"

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status} {reason}")


class SipParseError(SipError):
    """A SIP message could not be parsed; answer 400 (or the given code) or drop."""

    error_id = "sip.parse"

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(status, reason)


class SdpError(SipError):
    """An SDP body is malformed or has nothing we can accept (488)."""

    error_id = "sip.sdp"

    def __init__(self, reason: str, status: int = 488) -> None:
        super().__init__(status, reason)


class IllegalTransition(CCSwitchError):
    """A state machine got an event it does not accept in its current state."""

    error_id = "state.illegal_transition"

    def __init__(self, machine: str, state: str, event: str) -> None:
        self.machine = machine
        self.state = state
        self.event = event
        super().__init__(f"{machine}: event {event!r} not allowed in state {state!r}")


class MediaError(CCSwitchError):
    """RTP ports exhausted, a prompt file unreadable, and the like."""

    error_id = "media.error"


class RecordingError(CCSwitchError):
    """A recording could not be written or finalised."""

    error_id = "recording.error"
