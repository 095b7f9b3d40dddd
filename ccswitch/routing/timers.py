"""The engine's timer ids: one frozen, hashable value class per kind of timer.

``StartTimer``, ``CancelTimer`` and ``TimerFired`` carry these; the adapter uses
them only as opaque keys of its pending timers, and the engine dispatches on the
class of the one that fired.
"""

from __future__ import annotations

from typing import Any, TypeAlias, Union

import attrs


def _non_empty(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string, got {value!r}")


@attrs.frozen
class RingTimer:
    """A call's offer round to in-house agents ran out (one per round)."""

    call_id: str = attrs.field(validator=_non_empty)


@attrs.frozen
class VendorRingTimer:
    """A call's offer to a vendor trunk ran out (the vendor's ring_timeout)."""

    call_id: str = attrs.field(validator=_non_empty)


@attrs.frozen
class WaitTimer:
    """A call reached the ``index``-th distinct wait_exceeds time of its queue."""

    call_id: str = attrs.field(validator=_non_empty)
    index: int = attrs.field(validator=attrs.validators.ge(0))


@attrs.frozen
class MaxWaitTimer:
    """A call waited its queue's max_wait."""

    call_id: str = attrs.field(validator=_non_empty)


@attrs.frozen
class WrapUpTimer:
    """An agent's wrap-up is over."""

    agent_id: str = attrs.field(validator=_non_empty)


@attrs.frozen
class ProbeTimer:
    """Time to probe a vendor's trunks again (its probe_interval)."""

    vendor: str = attrs.field(validator=_non_empty)


@attrs.frozen
class CooldownTimer:
    """A vendor taken out of rotation has cooled down."""

    vendor: str = attrs.field(validator=_non_empty)


@attrs.frozen
class NoResponseTimer:
    """An agent's phone sent no response to its offer of a call within the agent's
    ``no_response_timeout``."""

    call_id: str = attrs.field(validator=_non_empty)
    agent_id: str = attrs.field(validator=_non_empty)


@attrs.frozen
class AgentProbeTimer:
    """Time to probe an unreachable agent's phone again (its probe_interval)."""

    agent_id: str = attrs.field(validator=_non_empty)


TimerId: TypeAlias = Union[RingTimer, VendorRingTimer, WaitTimer, MaxWaitTimer, WrapUpTimer,
                           ProbeTimer, CooldownTimer, NoResponseTimer, AgentProbeTimer]

TIMER_KINDS: tuple[type, ...] = (RingTimer, VendorRingTimer, WaitTimer, MaxWaitTimer,
                                 WrapUpTimer, ProbeTimer, CooldownTimer, NoResponseTimer,
                                 AgentProbeTimer)
