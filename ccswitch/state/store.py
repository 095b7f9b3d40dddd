"""The shared state store: what several ccswitch nodes serving one center must agree on.

One node's routing engine decides locally; the store arbitrates what is shared:

* **agent presence** (logged_out / ready / not_ready), set by any node;
* **agent reservations**: an agent is held by one (node, call) at a time, with a
  time-to-live the holder keeps refreshing, so the reservation of a node that dies
  expires;
* **global queue order**: every node lists its callers waiting for an agent (not
  ringing one) with their queue-entry time; a reservation for a call is refused while
  an older caller, on a live node, waits in any queue the agent serves;
* **vendor channels**: per vendor, the calls each node has there; a channel is only
  granted under ``max_channels`` counted over live nodes;
* **the record stream**: every call detail record, appended once per call to a bounded
  stream for external consumers.

Changes other nodes must react to come back through :meth:`StateStore.subscribe` as
:class:`StoreEvent` values. Every method is blocking and may raise
:class:`StoreUnavailable` (the Redis store when Redis cannot be reached); the node calls
them off the reactor and falls back to local knowledge meanwhile.

Implementations: :class:`ccswitch.state.embedded.EmbeddedState` (in-process: one node,
or several nodes in one process for tests) and :class:`ccswitch.state.redis_store.RedisStore`.
The same behaviour tests (``tests/state/test_store_behaviour.py``) run against both.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Mapping, Protocol, Sequence

import attrs

from ccswitch.errors import CCSwitchError

PRESENCES = ("logged_out", "ready", "not_ready")


class StoreUnavailable(CCSwitchError):
    """The shared store cannot be reached (or answered nonsense); nothing was changed
    that the caller can rely on."""

    error_id = "state.unavailable"


class Grant(enum.StrEnum):
    """The answer to a reservation request."""

    GRANTED = "granted"
    BUSY = "busy"  # held by another (node, call)
    OLDER_CALLER = "older_caller"  # an older caller on a live node waits for this agent
    NOT_READY = "not_ready"  # the agent's shared presence is not ready


@attrs.frozen(kw_only=True)
class Reservation:
    """The result of :meth:`StateStore.reserve`."""

    grant: Grant
    holder: str | None = None  # "node/call" holding the agent (BUSY)
    older: str | None = None  # "node/call" of the older caller (OLDER_CALLER)


class EventKind(enum.StrEnum):
    PRESENCE = "presence"  # an agent's shared presence changed
    BUSY = "busy"  # an agent was reserved by some node
    FREE = "free"  # an agent's reservation ended (released or expired)


@attrs.frozen(kw_only=True)
class StoreEvent:
    """Something another node (or this one) changed."""

    kind: EventKind
    agent: str
    node: str  # the node that made the change ("" for an expiry noticed by the store)
    presence: str | None = None  # PRESENCE: the new presence
    idle_since: float | None = None  # FREE: when the agent became free (longest-idle order)


@attrs.frozen(kw_only=True)
class Waiting:
    """One caller of this node waiting for an agent."""

    queue: str
    call: str
    queued_at: float


def record_call_id(record: Mapping[str, Any]) -> str:
    """The call id a record is appended under; ValueError when it has none."""
    call = record.get("call_id")
    if not isinstance(call, str) or not call:
        raise ValueError(f"a call record needs a call_id, got {call!r}")
    return call


class Subscription(Protocol):
    def close(self) -> None: ...


class StateStore(Protocol):
    """The shared state of one center, as seen by one node (``node``)."""

    node: str

    def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot be reached."""

    def heartbeat(self, ttl: float) -> bool:
        """This node is alive for ``ttl`` more seconds (its waiting callers and vendor
        channels count only while it is). False when the store no longer has what this
        node put there at its last :meth:`resync` (never resynced, or the data was lost:
        Redis restarted empty, flushed, failed over to an empty replica): the node must
        resync and publish its presence again."""

    def set_presence(self, agent: str, presence: str) -> None:
        """Set an agent's shared presence (one of PRESENCES) and tell every node."""

    def presences(self) -> dict[str, str]:
        """Every agent's shared presence that was ever set."""

    def enqueue(self, queue: str, call: str, queued_at: float) -> None:
        """This node's ``call`` waits in ``queue`` since ``queued_at`` (idempotent)."""

    def dequeue(self, queue: str, call: str) -> None:
        """``call`` no longer waits (offered, answered, overflowed or gone); idempotent."""

    def reserve(self, agent: str, call: str, queue: str, queues: Sequence[str],
                ttl: float) -> Reservation:
        """Atomically: if ``agent``'s presence is not ready -> NOT_READY; if held by anyone
        -> BUSY; if a caller older than ``call`` (by queued_at, then call id) waits on a
        live node in any of ``queues`` (the queues the agent serves) -> OLDER_CALLER;
        else hold it for (this node, ``call``) for ``ttl`` seconds, take ``call`` out of
        ``queue``'s waiting list, tell every node (BUSY) and return GRANTED."""

    def refresh(self, agent: str, call: str, ttl: float) -> bool:
        """Extend this node's hold on ``agent`` for ``call``; False if it is not held so."""

    def release(self, agent: str, call: str, idle_since: float) -> None:
        """End this node's hold on ``agent`` for ``call`` (nothing if not held so) and tell
        every node (FREE, with ``idle_since``)."""

    def holders(self) -> dict[str, str]:
        """agent -> "node/call" of every live hold."""

    def acquire_channel(self, vendor: str, call: str, max_channels: int) -> bool:
        """Take one of ``vendor``'s channels for this node's ``call`` if fewer than
        ``max_channels`` are in use on live nodes (idempotent per call)."""

    def release_channel(self, vendor: str, call: str) -> None:
        """Give back the channel ``call`` holds (idempotent)."""

    def channels_in_use(self, vendor: str) -> int:
        """Channels of ``vendor`` in use on live nodes."""

    def append_record(self, record: Mapping[str, Any]) -> None:
        """Append a call detail record to the bounded record stream, once per call: a
        record whose ``call_id`` this node already appended adds nothing (a replay of a
        write that timed out but was carried out). Raises ValueError without a
        ``call_id``."""

    def resync(self, *, waiting: Sequence[Waiting], holds: Mapping[str, str],
               channels: Mapping[str, Sequence[str]]) -> None:
        """Replace everything the store has for this node with the node's own view (at
        start, after an outage or a loss of data): its waiting callers, its holds (agent
        -> call) and its vendor channels (vendor -> calls); from now on
        :meth:`heartbeat` is True until the store loses data again."""

    def subscribe(self, callback: Callable[[StoreEvent], None]) -> Subscription:
        """Call ``callback`` (on some thread) for every change any node makes."""

    def close(self) -> None:
        """Release connections; the store is not used afterwards."""
