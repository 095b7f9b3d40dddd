"""The package's clock protocols: how time is injected into cores and adapters.

Cores and adapters are handed their clock: the reactor in production,
``twisted.internet.task.Clock`` in tests. Both fit these protocols, which are the
parts of ``IReactorTime`` ccswitch uses. :class:`TimeSource` is for code that only
reads the time (the routing engine, the SIP guard, the embedded state store);
:class:`Clock` also schedules calls (the SIP transaction layer, the media engine).
This module imports nothing from Twisted, so sans-I/O cores can depend on it.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

__all__ = ["Clock", "DelayedCall", "TimeSource"]


class TimeSource(Protocol):
    """Anything with ``seconds()`` (an ``IReactorTime``, ``task.Clock``)."""

    def seconds(self) -> float: ...


class DelayedCall(Protocol):
    """What ``callLater`` returns (``twisted.internet.interfaces.IDelayedCall`` subset)."""

    def cancel(self) -> None: ...

    def active(self) -> bool: ...


class Clock(TimeSource, Protocol):
    """A time source that also schedules calls: the part of ``IReactorTime`` ccswitch uses."""

    def callLater(self, delay: float, callable: Callable[..., Any], /,
                  *args: Any, **kw: Any) -> DelayedCall: ...
