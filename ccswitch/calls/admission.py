"""Whether a new call may start: trusted sources and the node's call limits (sans-I/O).

``CallAdmission.admit`` runs once per new INVITE that passed trust and routing. Over
``max_calls`` concurrent calls or the ``max_call_rate`` bucket (burst
``max(1, rate)``) it returns a ``Refusal`` for a 503 with ``Retry-After``
(RFC 3261 21.5.4, 20.33), so callers retry elsewhere or later instead of every
call on the node degrading. ``max_calls=0`` refuses every call: a drain switch.
"""

from __future__ import annotations

import ipaddress

import attrs

from ccswitch.clock import TimeSource
from ccswitch.model import AdmissionConfig, IPNetwork

__all__ = ["CallAdmission", "Refusal", "is_trusted"]


def is_trusted(host: str, trusted: tuple[IPNetwork, ...]) -> bool:
    """Whether an INVITE from ``host`` may start a call (it is in a trusted network)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in trusted)


@attrs.frozen(kw_only=True)
class Refusal:
    """Answer the INVITE with ``status reason`` and ``Retry-After: retry_after``."""

    status: int
    reason: str
    retry_after: int
    limit: str  # which limit refused: calls (max_calls) or rate (max_call_rate)


class CallAdmission:
    """Refuses new calls with 503 + Retry-After above the concurrent or rate limit."""

    def __init__(self, config: AdmissionConfig, clock: TimeSource) -> None:
        self.config = config
        self._clock = clock
        self._max_calls = config.max_calls
        self._rate = None if config.max_call_rate is None else float(config.max_call_rate)
        self._burst = 0.0 if self._rate is None else max(1.0, self._rate)
        self._tokens = self._burst
        self._stamp = clock.seconds()
        self._call_limit = Refusal(status=503, reason="Service Unavailable (call limit)",
                                   retry_after=config.retry_after, limit="calls")
        self._rate_limit = Refusal(status=503, reason="Service Unavailable (call rate limit)",
                                   retry_after=config.retry_after, limit="rate")

    def admit(self, active_calls: int) -> Refusal | None:
        """None to accept one new call (spending a rate token), else why to refuse it."""
        if self._max_calls is not None and active_calls >= self._max_calls:
            return self._call_limit
        rate = self._rate
        if rate is None:
            return None
        now = self._clock.seconds()
        elapsed = now - self._stamp
        if elapsed > 0:
            tokens = self._tokens + elapsed * rate
            self._tokens = tokens if tokens < self._burst else self._burst
        self._stamp = now
        if self._tokens < 1.0:
            return self._rate_limit
        self._tokens -= 1.0
        return None

