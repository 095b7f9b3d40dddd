"""What RFC 3261 server and client transactions share: the timer values, the states, the
table of legal transitions and the base class that runs a transaction's timers.

Each transaction kind is a small state machine whose legal transitions are the
``_TRANSITIONS`` table below; :meth:`Transaction._next` is the only reader. An event a
machine does not accept leaves its state unchanged (see :mod:`ccswitch.sip.transaction`).
Timers run through the layer's injected clock; a timer that fails is logged, never
raised into the clock's caller.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Callable

import attrs
from twisted.logger import Logger

from ccswitch.clock import DelayedCall

if TYPE_CHECKING:
    from ccswitch.sip.transaction import TransactionLayer

log = Logger()

Address = tuple[str, int]
# Key of a server transaction: RFC 3261 17.2.3 (branch, sent-by host, port, method) or
# the RFC 2543 fallback (call-id, cseq, from tag, sent-by, method).
ServerKey = tuple[object, ...]
ClientKey = tuple[str, str]

TIMER_D = 32.0
"""Timer D for unreliable transports: how long a completed INVITE client transaction
stays to re-ACK retransmitted non-2xx finals (RFC 3261 17.1.1.2, at least 32 s)."""


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class Timers:
    """RFC 3261 timer base values in seconds; B, F, H, J, L, M are 64*T1."""

    t1: float = attrs.field(default=0.5, validator=_positive)
    t2: float = attrs.field(default=4.0, validator=_positive)
    t4: float = attrs.field(default=5.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.t2 < self.t1:
            raise ValueError(f"t2 ({self.t2}) must be >= t1 ({self.t1})")

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H, J, L and M."""
        return 64 * self.t1


class State(enum.Enum):
    """Transaction states of RFC 3261 17 plus Accepted from RFC 6026."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


# -- transitions as data -------------------------------------------------------

# A transaction's kind (its ``_kind``): the first element of its keys in _TRANSITIONS.
IST, NIST, ICT, NICT = "INVITE server", "non-INVITE server", "INVITE client", \
    "non-INVITE client"

_S = State
_TRANSITIONS: dict[tuple[str, State, str], State] = {
    # INVITE server (RFC 3261 17.2.1 with RFC 6026 Accepted).
    (IST, _S.PROCEEDING, "send 1xx"): _S.PROCEEDING,
    (IST, _S.PROCEEDING, "send 2xx"): _S.ACCEPTED,
    (IST, _S.PROCEEDING, "send 300-699"): _S.COMPLETED,
    (IST, _S.ACCEPTED, "ack"): _S.ACCEPTED,
    (IST, _S.ACCEPTED, "timer L"): _S.TERMINATED,
    (IST, _S.COMPLETED, "ack"): _S.CONFIRMED,
    (IST, _S.COMPLETED, "timer H"): _S.TERMINATED,
    (IST, _S.CONFIRMED, "timer I"): _S.TERMINATED,
    # non-INVITE server (17.2.2); "no answer" ends a transaction the TU never answered.
    (NIST, _S.TRYING, "send 1xx"): _S.PROCEEDING,
    (NIST, _S.PROCEEDING, "send 1xx"): _S.PROCEEDING,
    (NIST, _S.TRYING, "send 2xx"): _S.COMPLETED,
    (NIST, _S.PROCEEDING, "send 2xx"): _S.COMPLETED,
    (NIST, _S.TRYING, "send 300-699"): _S.COMPLETED,
    (NIST, _S.PROCEEDING, "send 300-699"): _S.COMPLETED,
    (NIST, _S.TRYING, "no answer"): _S.TERMINATED,
    (NIST, _S.PROCEEDING, "no answer"): _S.TERMINATED,
    (NIST, _S.COMPLETED, "timer J"): _S.TERMINATED,
    # INVITE client (17.1.1 with RFC 6026 Accepted).
    (ICT, _S.CALLING, "1xx"): _S.PROCEEDING,
    (ICT, _S.PROCEEDING, "1xx"): _S.PROCEEDING,
    (ICT, _S.CALLING, "2xx"): _S.ACCEPTED,
    (ICT, _S.PROCEEDING, "2xx"): _S.ACCEPTED,
    (ICT, _S.ACCEPTED, "2xx"): _S.ACCEPTED,
    (ICT, _S.CALLING, "300-699"): _S.COMPLETED,
    (ICT, _S.PROCEEDING, "300-699"): _S.COMPLETED,
    (ICT, _S.COMPLETED, "300-699"): _S.COMPLETED,
    (ICT, _S.CALLING, "timer B"): _S.TERMINATED,
    (ICT, _S.CALLING, "transport error"): _S.TERMINATED,
    (ICT, _S.PROCEEDING, "cancel timeout"): _S.TERMINATED,
    (ICT, _S.COMPLETED, "timer D"): _S.TERMINATED,
    (ICT, _S.ACCEPTED, "timer M"): _S.TERMINATED,
    # non-INVITE client (17.1.2).
    (NICT, _S.TRYING, "1xx"): _S.PROCEEDING,
    (NICT, _S.PROCEEDING, "1xx"): _S.PROCEEDING,
    (NICT, _S.TRYING, "2xx"): _S.COMPLETED,
    (NICT, _S.PROCEEDING, "2xx"): _S.COMPLETED,
    (NICT, _S.TRYING, "300-699"): _S.COMPLETED,
    (NICT, _S.PROCEEDING, "300-699"): _S.COMPLETED,
    (NICT, _S.COMPLETED, "300-699"): _S.COMPLETED,
    (NICT, _S.COMPLETED, "2xx"): _S.COMPLETED,
    (NICT, _S.TRYING, "timer F"): _S.TERMINATED,
    (NICT, _S.TRYING, "transport error"): _S.TERMINATED,
    (NICT, _S.PROCEEDING, "timer F"): _S.TERMINATED,
    (NICT, _S.COMPLETED, "timer K"): _S.TERMINATED,
}


class Transaction:
    """State, timers and the transition check shared by both transaction kinds."""

    _kind: str

    def __init__(self, layer: TransactionLayer, initial: State) -> None:
        self._layer = layer
        self.state = initial
        self._timers: dict[str, DelayedCall] = {}

    def _next(self, event: str) -> State | None:
        """The state ``event`` leads to, or None when this machine does not accept it."""
        return _TRANSITIONS.get((self._kind, self.state, event))

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def _start_timer(self, name: str, delay: float, fire: Callable[[], None]) -> None:
        old = self._timers.pop(name, None)
        if old is not None and old.active():
            old.cancel()
        self._timers[name] = self._layer._clock.callLater(delay, self._timer_fired, name, fire)

    def _timer_fired(self, name: str, fire: Callable[[], None]) -> None:
        self._timers.pop(name, None)
        if self.state is State.TERMINATED:
            return
        try:
            fire()
        except Exception:
            log.failure("{kind} transaction: timer {timer} failed", kind=self._kind,
                        timer=name)

    def _stop_timer(self, name: str) -> None:
        call = self._timers.pop(name, None)
        if call is not None and call.active():
            call.cancel()

    def _terminate(self) -> None:
        self.state = State.TERMINATED
        for call in self._timers.values():
            if call.active():
                call.cancel()
        self._timers.clear()

