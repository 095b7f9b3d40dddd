"""Who a call is offered to: a frozen :class:`Target` naming an agent or a vendor.

One family of leg events (``LegRinging``, ``LegAnswered``, ``LegFailed``,
``LegHungUp``) and actions (``Ring``, ``Cancel``, ``Bridge``, ``Hangup``) carries
a target, so an agent and a vendor are handled alike by the adapter, and a new
kind of leg is a new :class:`TargetKind` rather than a new set of classes.
"""

from __future__ import annotations

import enum
from typing import Any, Final, Literal

import attrs


class TargetKind(enum.StrEnum):
    """The kinds of party a call can be offered to."""

    AGENT = "agent"
    VENDOR = "vendor"


def _non_empty(instance: Any, attribute: "attrs.Attribute[Any]", value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string, got {value!r}")


@attrs.frozen
class Target:
    """An agent (by id) or a vendor (by name) a call is offered to."""

    kind: TargetKind = attrs.field(converter=TargetKind)
    id: str = attrs.field(validator=_non_empty)

    @classmethod
    def agent(cls, agent_id: str) -> Target:
        return cls(TargetKind.AGENT, agent_id)

    @classmethod
    def vendor(cls, name: str) -> Target:
        return cls(TargetKind.VENDOR, name)

    @property
    def is_agent(self) -> bool:
        return self.kind is TargetKind.AGENT

    def __str__(self) -> str:
        return f"{self.kind.value} {self.id}"


#: The caller's side of a call, where an event may name it instead of a target.
CALLER: Final = "caller"
Caller = Literal["caller"]
