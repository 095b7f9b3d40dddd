"""The CDR package's errors (a branch of the ccswitch error tree)."""

from __future__ import annotations

from ccswitch.errors import CCSwitchError


class CdrError(CCSwitchError):
    """The CDR database cannot be used, or a call record is invalid."""

    error_id = "cdr.error"


class CdrUnavailable(CdrError):
    """The CDR database cannot be reached now (server down, connection lost): the same
    request may succeed later, so a record is kept for a retry rather than dropped."""

    error_id = "cdr.unavailable"
