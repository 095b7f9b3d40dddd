"""Store events over Redis pub/sub: their JSON form and the listener behind
:meth:`~ccswitch.state.redis_store.RedisStore.subscribe`.

A listener opens its own pub/sub connection and reads it on a daemon thread; a lost
connection is logged and reopened with backoff (events published meanwhile are lost),
until the subscription or the store is closed. A malformed message is logged and
dropped.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import TYPE_CHECKING, Callable

import redis
import redis.client
from twisted.logger import Logger

from ccswitch.state.store import PRESENCES, EventKind, StoreEvent

if TYPE_CHECKING:
    from ccswitch.state.redis_store import RedisStore

log = Logger()


def event_json(event: StoreEvent) -> str:
    """``event`` as published on the events channel (read back by decode_event)."""
    return json.dumps({"kind": str(event.kind), "agent": event.agent, "node": event.node,
                       "presence": event.presence, "idle_since": event.idle_since})


def decode_event(data: str) -> StoreEvent | None:
    """A pub/sub message as a StoreEvent; None (logged) when it is not one."""
    try:
        raw = json.loads(data)
        idle = raw.get("idle_since")
        presence = raw.get("presence")
        if not (isinstance(raw["agent"], str) and isinstance(raw["node"], str)
                and (presence is None or presence in PRESENCES)
                and (idle is None or isinstance(idle, (int, float)))):
            raise ValueError("bad field types")
        return StoreEvent(kind=EventKind(raw["kind"]), agent=raw["agent"], node=raw["node"],
                          presence=presence,
                          idle_since=None if idle is None else float(idle))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        log.warn("state store: dropped a malformed event {data!r}: {error}",
                 data=data, error=str(e))
        return None


class Listener:
    """One subscription: a pub/sub connection read by a daemon thread."""

    def __init__(self, store: RedisStore, callback: Callable[[StoreEvent], None]) -> None:
        self._store = store
        self._callback = callback
        self._stop = threading.Event()
        self._pubsub: redis.client.PubSub | None = self._open()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"ccswitch-state-events-{store.node}")
        self._thread.start()

    def _open(self) -> redis.client.PubSub:
        """A pub/sub connection subscribed to the events channel (confirmed)."""
        store = self._store
        pubsub: redis.client.PubSub = store._client.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(store._events)
            deadline = time.monotonic() + max(store._timeout, 0.1) * 4
            while time.monotonic() < deadline:
                message = pubsub.get_message(timeout=store._timeout)
                if message is not None and message.get("type") == "subscribe":
                    return pubsub
            raise redis.TimeoutError("no subscribe confirmation")
        except BaseException:
            with contextlib.suppress(Exception):
                pubsub.close()
            raise

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            pubsub = self._pubsub
            if pubsub is None:
                try:
                    pubsub = self._pubsub = self._open()
                except (redis.RedisError, OSError) as e:
                    log.warn("state store events: reconnect failed, retry in {delay}s: "
                             "{error}", delay=backoff, error=str(e))
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                log.info("state store events: reconnected to {where}",
                         where=self._store.where)
                backoff = 0.05
            try:
                message = pubsub.get_message(timeout=0.2)
            except (redis.RedisError, OSError, ValueError) as e:
                log.warn("state store events: connection lost: {error}", error=str(e))
                self._drop()
                continue
            if message is None or message.get("type") != "message":
                continue
            event = decode_event(message["data"])
            if event is None:
                continue
            try:
                self._callback(event)
            except Exception:
                log.failure("state store events: subscriber failed on {kind} {agent}",
                            kind=str(event.kind), agent=event.agent)
        self._drop()

    def _drop(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                pubsub.close()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=2.0)
        self._store._forget(self)
