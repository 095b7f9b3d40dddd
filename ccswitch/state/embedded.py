"""The embedded (in-process) state store: the default for a single node.

:class:`EmbeddedState` is the shared state of one center kept in memory behind one
lock; :meth:`EmbeddedState.view` gives the :class:`EmbeddedStore` one node sees (a
:class:`~ccswitch.state.store.StateStore`). One node uses one view; tests put several
views of one state side by side to play several nodes.

Time comes from an injected clock (anything with ``seconds() -> float``, e.g. the
reactor or ``twisted.internet.task.Clock``); holds and node liveness expire by it, the
way Redis keys expire by their TTL. Rules shared with the Redis store:

* the node making a call always counts as live for it; any other node counts while
  its last :meth:`~EmbeddedStore.heartbeat` has not run out;
* waiting callers of dead nodes met by :meth:`~EmbeddedStore.reserve` are removed;
  vendor channels of dead nodes are kept but not counted (a node that comes back
  counts them again, and its :meth:`~EmbeddedStore.resync` replaces them);
* a call that does not wait in the ``queue`` it reserves for is newer than every
  waiting caller;
* an agent whose presence was never set is not ready;
* an expired hold raises no event: other nodes notice it by polling ``holders()``
  (or when a reservation succeeds);
* ``resync`` raises no event and never takes an agent another node holds;
* a record is appended once per (node, call id) while it is kept (Redis: for
  ``record_dedup_ttl``).

Subscribers of every view get every event, called synchronously on the thread that
made the change, outside the lock; one that raises is logged, the others still run.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Mapping, Sequence

from twisted.logger import Logger

from ccswitch.clock import TimeSource
from ccswitch.state.store import (
    PRESENCES, EventKind, Grant, Reservation, StoreEvent, Subscription, Waiting,
    record_call_id,
)

log = Logger()


class _WallClock:
    def seconds(self) -> float:
        return time.time()


Callback = Callable[[StoreEvent], None]


class _Subscription:
    def __init__(self, state: EmbeddedState, token: int) -> None:
        self._state = state
        self._token = token

    def close(self) -> None:
        self._state._unsubscribe(self._token)


class EmbeddedState:
    """The shared state of one center, in memory (thread-safe).

    ``record_maxlen``: records kept (oldest dropped first). ``resync_hold_ttl``: seconds
    a hold put back by ``resync`` lives unless refreshed (resync carries no TTL).
    """

    def __init__(self, clock: TimeSource | None = None, *,
                 record_maxlen: int = 10000, resync_hold_ttl: float = 10.0) -> None:
        if record_maxlen < 1:
            raise ValueError("record_maxlen must be at least 1")
        self.resync_hold_ttl = resync_hold_ttl
        self.clock: TimeSource = clock if clock is not None else _WallClock()
        self._lock = threading.Lock()
        self._presence: dict[str, str] = {}
        self._holds: dict[str, tuple[str, str, float]] = {}  # agent -> node, call, expires
        self._waiting: dict[str, dict[tuple[str, str], float]] = {}  # queue -> (node, call)
        self._alive: dict[str, float] = {}  # node -> liveness expiry
        self._channels: dict[str, dict[str, set[str]]] = {}  # vendor -> node -> calls
        # (node, call id) and the record; a call appended again while kept adds nothing
        self._records: collections.deque[tuple[tuple[str, str], dict[str, Any]]] = \
            collections.deque(maxlen=record_maxlen)
        self._recorded: set[tuple[str, str]] = set()
        self._subscribers: dict[int, Callback] = {}
        self._synced: set[str] = set()  # nodes resynced since the data was last lost
        self._next_token = 0

    def view(self, node: str) -> EmbeddedStore:
        """The store as ``node`` sees it."""
        return EmbeddedStore(self, node)

    def records(self) -> list[dict[str, Any]]:
        """The record stream, oldest first (at most ``record_maxlen``)."""
        with self._lock:
            return [dict(r) for _, r in self._records]

    def lose_data(self) -> None:
        """Forget everything, as a Redis restarted without persistence does."""
        with self._lock:
            self._presence.clear()
            self._holds.clear()
            self._waiting.clear()
            self._alive.clear()
            self._channels.clear()
            self._records.clear()
            self._recorded.clear()
            self._synced.clear()

    # -- internals, called by EmbeddedStore (the lock held where noted) --

    def _now(self) -> float:
        return self.clock.seconds()

    def _live(self, node: str, me: str, now: float) -> bool:
        """Lock held."""
        return node == me or self._alive.get(node, float("-inf")) > now

    def _hold(self, agent: str, now: float) -> tuple[str, str] | None:
        """The live hold on ``agent`` (dropping an expired one). Lock held."""
        held = self._holds.get(agent)
        if held is None:
            return None
        if held[2] <= now:
            del self._holds[agent]
            return None
        return held[0], held[1]

    def _subscribe(self, callback: Callback) -> tuple[int, _Subscription]:
        with self._lock:
            token = self._next_token
            self._next_token += 1
            self._subscribers[token] = callback
        return token, _Subscription(self, token)

    def _unsubscribe(self, token: int) -> None:
        with self._lock:
            self._subscribers.pop(token, None)

    def _publish(self, event: StoreEvent) -> None:
        """Call every subscriber; never with the lock held."""
        with self._lock:
            callbacks = list(self._subscribers.values())
        for callback in callbacks:
            try:
                callback(event)
            except Exception:
                log.failure("state store: subscriber failed on {kind} {agent}",
                            kind=str(event.kind), agent=event.agent)


def _ms(ttl: float) -> float:
    """A TTL as the store keeps it (whole milliseconds, at least one, like Redis PX)."""
    return max(1, round(ttl * 1000)) / 1000.0


class EmbeddedStore:
    """One node's view of an :class:`EmbeddedState` (a StateStore)."""

    def __init__(self, state: EmbeddedState, node: str) -> None:
        if not node or "/" in node:
            raise ValueError(f"node id must be non-empty without '/': {node!r}")
        self.node = node
        self._state = state
        self._tokens: list[int] = []

    def records(self) -> list[dict[str, Any]]:
        """The record stream, oldest first."""
        return self._state.records()

    def ping(self) -> None:
        """Always reachable."""

    def heartbeat(self, ttl: float) -> bool:
        s = self._state
        with s._lock:
            s._alive[self.node] = s._now() + _ms(ttl)
            return self.node in s._synced

    def set_presence(self, agent: str, presence: str) -> None:
        if presence not in PRESENCES:
            raise ValueError(f"unknown presence {presence!r}")
        s = self._state
        with s._lock:
            s._presence[agent] = presence
        s._publish(StoreEvent(kind=EventKind.PRESENCE, agent=agent, node=self.node,
                              presence=presence))

    def presences(self) -> dict[str, str]:
        s = self._state
        with s._lock:
            return dict(s._presence)

    def enqueue(self, queue: str, call: str, queued_at: float) -> None:
        s = self._state
        with s._lock:
            s._waiting.setdefault(queue, {})[(self.node, call)] = float(queued_at)

    def dequeue(self, queue: str, call: str) -> None:
        s = self._state
        with s._lock:
            entries = s._waiting.get(queue)
            if entries is not None:
                entries.pop((self.node, call), None)

    def reserve(self, agent: str, call: str, queue: str, queues: Sequence[str],
                ttl: float) -> Reservation:
        s = self._state
        me = (self.node, call)
        with s._lock:
            now = s._now()
            if s._presence.get(agent) != "ready":
                return Reservation(grant=Grant.NOT_READY)
            held = s._hold(agent, now)
            if held is not None:
                return Reservation(grant=Grant.BUSY, holder=f"{held[0]}/{held[1]}")
            own = s._waiting.get(queue, {}).get(me)
            mine = (own, call) if own is not None else None
            oldest: tuple[float, str, str] | None = None  # queued_at, call, node
            for name in queues:
                entries = s._waiting.get(name)
                if not entries:
                    continue
                for (node, other), queued_at in list(entries.items()):
                    if (node, other) == me:
                        continue
                    if not s._live(node, self.node, now):
                        del entries[(node, other)]
                        continue
                    if mine is not None and (queued_at, other) >= mine:
                        continue
                    if oldest is None or (queued_at, other) < oldest[:2]:
                        oldest = (queued_at, other, node)
            if oldest is not None:
                return Reservation(grant=Grant.OLDER_CALLER,
                                   older=f"{oldest[2]}/{oldest[1]}")
            s._holds[agent] = (self.node, call, now + _ms(ttl))
            s._waiting.get(queue, {}).pop(me, None)
        s._publish(StoreEvent(kind=EventKind.BUSY, agent=agent, node=self.node))
        return Reservation(grant=Grant.GRANTED)

    def refresh(self, agent: str, call: str, ttl: float) -> bool:
        s = self._state
        with s._lock:
            now = s._now()
            if s._hold(agent, now) != (self.node, call):
                return False
            s._holds[agent] = (self.node, call, now + _ms(ttl))
            return True

    def release(self, agent: str, call: str, idle_since: float) -> None:
        s = self._state
        with s._lock:
            if s._hold(agent, s._now()) != (self.node, call):
                return
            del s._holds[agent]
        s._publish(StoreEvent(kind=EventKind.FREE, agent=agent, node=self.node,
                              idle_since=idle_since))

    def holders(self) -> dict[str, str]:
        s = self._state
        with s._lock:
            now = s._now()
            out: dict[str, str] = {}
            for agent in list(s._holds):
                held = s._hold(agent, now)
                if held is not None:
                    out[agent] = f"{held[0]}/{held[1]}"
            return out

    def _in_use(self, vendor: str, now: float) -> int:
        """Lock held."""
        s = self._state
        return sum(len(calls) for node, calls in s._channels.get(vendor, {}).items()
                   if s._live(node, self.node, now))

    def acquire_channel(self, vendor: str, call: str, max_channels: int) -> bool:
        s = self._state
        with s._lock:
            mine = s._channels.get(vendor, {}).get(self.node)
            if mine is not None and call in mine:
                return True
            if self._in_use(vendor, s._now()) >= max_channels:
                return False
            s._channels.setdefault(vendor, {}).setdefault(self.node, set()).add(call)
            return True

    def release_channel(self, vendor: str, call: str) -> None:
        s = self._state
        with s._lock:
            s._channels.get(vendor, {}).get(self.node, set()).discard(call)

    def channels_in_use(self, vendor: str) -> int:
        s = self._state
        with s._lock:
            return self._in_use(vendor, s._now())

    def append_record(self, record: Mapping[str, Any]) -> None:
        key = (self.node, record_call_id(record))
        s = self._state
        with s._lock:
            if key in s._recorded:
                return
            if len(s._records) == s._records.maxlen:
                s._recorded.discard(s._records[0][0])
            s._records.append((key, dict(record)))
            s._recorded.add(key)

    def resync(self, *, waiting: Sequence[Waiting], holds: Mapping[str, str],
               channels: Mapping[str, Sequence[str]]) -> None:
        s = self._state
        with s._lock:
            now = s._now()
            for entries in s._waiting.values():
                for key in [k for k in entries if k[0] == self.node]:
                    del entries[key]
            for w in waiting:
                s._waiting.setdefault(w.queue, {})[(self.node, w.call)] = float(w.queued_at)
            for agent in list(s._holds):
                held = s._hold(agent, now)
                if held is not None and held[0] == self.node:
                    del s._holds[agent]
            for agent, call in holds.items():
                if s._hold(agent, now) is None:
                    s._holds[agent] = (self.node, call, now + _ms(s.resync_hold_ttl))
            for per_node in s._channels.values():
                per_node.pop(self.node, None)
            for vendor, calls in channels.items():
                if calls:
                    s._channels.setdefault(vendor, {})[self.node] = set(calls)
            s._synced.add(self.node)

    def subscribe(self, callback: Callable[[StoreEvent], None]) -> Subscription:
        token, subscription = self._state._subscribe(callback)
        self._tokens.append(token)
        return subscription

    def close(self) -> None:
        for token in self._tokens:
            self._state._unsubscribe(token)
        self._tokens.clear()
