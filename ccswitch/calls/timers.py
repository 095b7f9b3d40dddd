"""The engine's timers on a clock: ``StartTimer`` and ``CancelTimer`` carried out.

:class:`TimerRunner` keeps one delayed call per :class:`TimerId`; starting a timer
that runs replaces it, and a timer that fires is handed back as a ``TimerFired``
event. The call runtime and the routing tests' driver both use it.
"""

from __future__ import annotations

from typing import Callable

from ccswitch.clock import Clock, DelayedCall
from ccswitch.routing import actions as act
from ccswitch.routing import events as ev
from ccswitch.routing.timers import TimerId


class TimerRunner:
    """Runs the engine's timers on ``clock``; fired ones go to ``fired``."""

    def __init__(self, clock: Clock, fired: Callable[[ev.TimerFired], None]) -> None:
        self._clock = clock
        self._fired = fired
        self._timers: dict[TimerId, tuple[DelayedCall, float]] = {}  # with its due time

    def carry_out(self, action: act.Action) -> bool:
        """Carry out ``action`` if it is a timer action; False for any other action."""
        if isinstance(action, act.StartTimer):
            self.start(action.timer_id, action.delay)
        elif isinstance(action, act.CancelTimer):
            self.cancel(action.timer_id)
        else:
            return False
        return True

    def start(self, timer_id: TimerId, delay: float) -> None:
        self.cancel(timer_id)
        self._timers[timer_id] = (self._clock.callLater(delay, self._fire, timer_id),
                                  self._clock.seconds() + delay)

    def cancel(self, timer_id: TimerId) -> None:
        timer = self._timers.pop(timer_id, None)
        if timer is not None and timer[0].active():
            timer[0].cancel()

    def pending(self) -> dict[TimerId, float]:
        """The timers that have not fired or been cancelled yet, with when they are due."""
        return {tid: due for tid, (dc, due) in self._timers.items() if dc.active()}

    def _fire(self, timer_id: TimerId) -> None:
        self._timers.pop(timer_id, None)
        self._fired(ev.TimerFired(timer_id=timer_id))
