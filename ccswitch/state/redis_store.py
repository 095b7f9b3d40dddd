"""The Redis state store: several ccswitch nodes sharing one center.

Configured as ``state: redis://host:port/db`` (also ``rediss://`` and ``unix://``, as
redis-py reads them) or, through Redis Sentinel,
``state: redis+sentinel://[:password@]host1:port1,host2:port2/service_name[/db]``
(sentinel port defaults to 26379, db to 0; the password is the master's). Standalone
or Sentinel only: the scripts build key names, so Redis Cluster is not supported.

Every decision that reads and writes several keys runs in one Lua script
(:mod:`ccswitch.state.redis_scripts`), registered once (EVALSHA, reloaded by redis-py
after a Redis restart), so it is atomic across nodes. Every Redis failure (connection,
timeout, script or reply error) surfaces as
:class:`~ccswitch.state.store.StoreUnavailable`. Commands are not retried (a retried
script could run twice); the node falls back and calls ``resync`` when Redis returns.

Key layout (``<p>`` is the prefix, ``ccswitch:`` by default; ``<node>`` must not
contain ``/``)::

    <p>node:<node>            string "1", PX = the heartbeat TTL: the node is live
    <p>synced:<node>          string, no TTL: a token the node's last resync set; gone or
                                     another token = Redis lost data since (restart
                                     without persistence, FLUSHALL, failover to an
                                     empty or lagging replica): the node resyncs
    <p>presence               hash   agent -> logged_out | ready | not_ready
    <p>hold:<agent>           string "<node>/<call>", PX = the reservation TTL
    <p>holds                  set    agents that may have a hold key (pruned by holders)
    <p>wait:<queue>           zset   member "<node>/<call>", score queued_at
    <p>queues                 set    queue names that had a waiting caller (for resync)
    <p>chan:<vendor>:<node>   set    calls of <node> holding a channel of <vendor>
    <p>chan-nodes:<vendor>    set    nodes that may have a chan:<vendor>:<node> set
    <p>vendors                set    vendors that had a channel (for resync)
    <p>records                stream call detail records, one field "record" = JSON,
                                     trimmed to stream_maxlen (MAXLEN ~ from 1000 up,
                                     exact below)
    <p>recorded:<node>/<call> string "1", PX = record_dedup_ttl: the call's record is
                                     in the stream (a replay adds nothing)
    <p>events                 pub/sub channel, JSON {"kind", "agent", "node",
                                     "presence", "idle_since"} = a StoreEvent

Shared rules (the embedded store follows them too): the calling node always counts
as live for itself; other nodes while their ``node:`` key exists. ``reserve`` removes
the waiting entries of dead nodes it meets; channel sets of dead nodes are kept but
not counted. Ties in queue order are broken by call id, byte order. A call that does
not wait in the ``queue`` it reserves for is newer than every waiting caller. An
agent whose presence was never set is not ready.

A hold that expires (its node died) raises no event: keyspace notifications are not
needed. Other nodes notice lazily: a reservation succeeds once the key is gone, and
the adapter polls :meth:`RedisStore.holders`. ``resync`` raises no event either and
never takes an agent another node holds; holds it puts back live ``resync_hold_ttl``.

:meth:`RedisStore.subscribe` opens its own pub/sub connection and a daemon thread
(:mod:`ccswitch.state.redis_events`); a lost connection is logged and reopened with
backoff (events published meanwhile are lost: poll ``holders()``/``presences()`` after
``StoreUnavailable``), until the subscription or the store is closed. The ``state:`` URL
is parsed in :mod:`ccswitch.state.redis_url`.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import urllib.parse
from typing import Any, Callable, Iterator, Mapping, Sequence

import redis
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from ccswitch.state.redis_events import Listener, event_json
from ccswitch.state.redis_scripts import (
    ACQUIRE, APPEND, COUNT, HOLDERS, REFRESH, RELEASE, RESERVE, RESYNC,
)
from ccswitch.state.redis_url import StateUrlError, check_url, parse_sentinel_url
from ccswitch.state.store import (
    PRESENCES, EventKind, Grant, Reservation, StoreEvent, StoreUnavailable,
    Subscription, Waiting, record_call_id,
)

_EXACT_TRIM_BELOW = 1000


def _ms(ttl: float) -> int:
    return max(1, round(ttl * 1000))


class RedisStore:
    """The shared state of one center in Redis, as seen by ``node`` (a StateStore).

    ``record_dedup_ttl``: seconds a call's ``recorded:`` marker lives, so a spooled record
    replayed within that time is not appended twice (a day covers any outage the spool
    rides out; at 100 000 calls a day the markers take about 10 MB).
    """

    def __init__(self, client: redis.Redis, *, node: str, where: str,
                 prefix: str = "ccswitch:", stream_maxlen: int = 100000,
                 socket_timeout: float = 0.5, resync_hold_ttl: float = 10.0,
                 record_dedup_ttl: float = 86400.0,
                 extra_clients: Sequence[redis.Redis] = ()) -> None:
        if not node or "/" in node:
            raise ValueError(f"node id must be non-empty without '/': {node!r}")
        if stream_maxlen < 1:
            raise ValueError("stream_maxlen must be at least 1")
        self.node = node
        self.where = where
        self._client = client
        self._extra = list(extra_clients)
        self._prefix = prefix
        self._events = prefix + "events"
        self._stream_maxlen = stream_maxlen
        self._timeout = socket_timeout
        self._resync_ms = _ms(resync_hold_ttl)
        self._dedup_ms = _ms(record_dedup_ttl)
        self._synced: str | None = None  # the token of this store's last resync
        self._listeners: list[Listener] = []
        self._listeners_lock = threading.Lock()
        self._reserve = client.register_script(RESERVE)
        self._release = client.register_script(RELEASE)
        self._refresh = client.register_script(REFRESH)
        self._holders = client.register_script(HOLDERS)
        self._acquire = client.register_script(ACQUIRE)
        self._count = client.register_script(COUNT)
        self._resync = client.register_script(RESYNC)
        self._append = client.register_script(APPEND)

    @classmethod
    def from_url(cls, url: str, *, node: str, prefix: str = "ccswitch:",
                 stream_maxlen: int = 100000, socket_timeout: float = 0.5,
                 resync_hold_ttl: float = 10.0) -> RedisStore:
        """A store on ``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://``;
        connects lazily (an unreachable Redis fails the first call, not this)."""
        common: dict[str, Any] = {
            "socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout,
            "decode_responses": True, "retry": Retry(NoBackoff(), 0),
        }
        check_url(url)
        scheme = url.partition("://")[0]
        if scheme == "redis+sentinel":
            target = parse_sentinel_url(url)
            sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
                list(target.sentinels),
                sentinel_kwargs={"socket_timeout": socket_timeout,
                                 "socket_connect_timeout": socket_timeout,
                                 "retry": Retry(NoBackoff(), 0)})
            client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
                target.service, db=target.db, password=target.password, **common)
            hosts = ",".join(f"{h}:{p}" for h, p in target.sentinels)
            return cls(client, node=node, where=f"sentinel {hosts} service {target.service}",
                       prefix=prefix, stream_maxlen=stream_maxlen,
                       socket_timeout=socket_timeout, resync_hold_ttl=resync_hold_ttl,
                       extra_clients=sentinel.sentinels)
        try:
            client = redis.Redis.from_url(url, **common)
        except ValueError as e:
            raise StateUrlError(f"bad state store URL: {e}") from e
        parts = urllib.parse.urlsplit(url)
        where = f"{parts.hostname or parts.path}:{parts.port or 6379}{parts.path}" \
            if scheme != "unix" else parts.path
        return cls(client, node=node, where=where, prefix=prefix,
                   stream_maxlen=stream_maxlen, socket_timeout=socket_timeout,
                   resync_hold_ttl=resync_hold_ttl)

    # -- helpers --

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except (redis.RedisError, OSError) as e:
            raise StoreUnavailable(
                f"state store redis {self.where}: {what} failed: "
                f"{type(e).__name__}: {e}") from e
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise StoreUnavailable(
                f"state store redis {self.where}: {what}: unexpected answer: {e}") from e

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    def _forget(self, listener: Listener) -> None:
        with self._listeners_lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # -- StateStore --

    def ping(self) -> None:
        with self._guard("ping"):
            self._client.ping()

    def heartbeat(self, ttl: float) -> bool:
        with self._guard("heartbeat"):
            pipe = self._client.pipeline(transaction=True)
            pipe.set(self._key("node", self.node), "1", px=_ms(ttl))
            pipe.get(self._key("synced", self.node))
            _, token = pipe.execute()
            return self._synced is not None and token == self._synced

    def set_presence(self, agent: str, presence: str) -> None:
        if presence not in PRESENCES:
            raise ValueError(f"unknown presence {presence!r}")
        message = event_json(StoreEvent(kind=EventKind.PRESENCE, agent=agent,
                                         node=self.node, presence=presence))
        with self._guard("set_presence"):
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(self._key("presence"), agent, presence)
            pipe.publish(self._events, message)
            pipe.execute()

    def presences(self) -> dict[str, str]:
        with self._guard("presences"):
            raw = self._client.hgetall(self._key("presence"))
            return {str(k): str(v) for k, v in dict(raw).items()}

    def enqueue(self, queue: str, call: str, queued_at: float) -> None:
        with self._guard("enqueue"):
            pipe = self._client.pipeline(transaction=True)
            pipe.zadd(self._key("wait", queue), {f"{self.node}/{call}": float(queued_at)})
            pipe.sadd(self._key("queues"), queue)
            pipe.execute()

    def dequeue(self, queue: str, call: str) -> None:
        with self._guard("dequeue"):
            self._client.zrem(self._key("wait", queue), f"{self.node}/{call}")

    def reserve(self, agent: str, call: str, queue: str, queues: Sequence[str],
                ttl: float) -> Reservation:
        busy = event_json(StoreEvent(kind=EventKind.BUSY, agent=agent, node=self.node))
        with self._guard("reserve"):
            reply = self._reserve(
                keys=[self._key("presence"), self._key("hold", agent),
                      self._key("wait", queue), self._key("holds")],
                args=[self._prefix, agent, self.node, call, _ms(ttl), busy, self._events,
                      *queues])
            answer = [str(x) for x in reply]
            grant = Grant(answer[0])
            if grant is Grant.BUSY:
                return Reservation(grant=grant, holder=answer[1])
            if grant is Grant.OLDER_CALLER:
                return Reservation(grant=grant, older=answer[1])
            return Reservation(grant=grant)

    def refresh(self, agent: str, call: str, ttl: float) -> bool:
        with self._guard("refresh"):
            return int(self._refresh(keys=[self._key("hold", agent)],
                                     args=[f"{self.node}/{call}", _ms(ttl)])) == 1

    def release(self, agent: str, call: str, idle_since: float) -> None:
        free = event_json(StoreEvent(kind=EventKind.FREE, agent=agent, node=self.node,
                                      idle_since=idle_since))
        with self._guard("release"):
            self._release(keys=[self._key("hold", agent), self._key("holds")],
                          args=[f"{self.node}/{call}", agent, self._events, free])

    def holders(self) -> dict[str, str]:
        with self._guard("holders"):
            flat = [str(x) for x in self._holders(keys=[self._key("holds")],
                                                  args=[self._prefix])]
            return dict(zip(flat[0::2], flat[1::2]))

    def acquire_channel(self, vendor: str, call: str, max_channels: int) -> bool:
        with self._guard("acquire_channel"):
            return int(self._acquire(
                keys=[self._key("chan-nodes", vendor), self._key("vendors"),
                      self._key("chan", vendor, self.node)],
                args=[self._prefix, vendor, self.node, call, max_channels])) == 1

    def release_channel(self, vendor: str, call: str) -> None:
        with self._guard("release_channel"):
            self._client.srem(self._key("chan", vendor, self.node), call)

    def channels_in_use(self, vendor: str) -> int:
        with self._guard("channels_in_use"):
            return int(self._count(keys=[self._key("chan-nodes", vendor)],
                                   args=[self._prefix, vendor, self.node]))

    def append_record(self, record: Mapping[str, Any]) -> None:
        marker = self._key("recorded", f"{self.node}/{record_call_id(record)}")
        data = json.dumps(dict(record), sort_keys=True, default=str)
        exact = "1" if self._stream_maxlen < _EXACT_TRIM_BELOW else "0"
        with self._guard("append_record"):
            self._append(keys=[self._key("records"), marker],
                         args=[data, self._stream_maxlen, exact, self._dedup_ms])

    def records(self) -> list[dict[str, Any]]:
        """The record stream, oldest first (decoded JSON records)."""
        with self._guard("records"):
            out: list[dict[str, Any]] = []
            for _id, fields in self._client.xrange(self._key("records")) or []:
                out.append(dict(json.loads(str((fields or {})["record"]))))
            return out

    def resync(self, *, waiting: Sequence[Waiting], holds: Mapping[str, str],
               channels: Mapping[str, Sequence[str]]) -> None:
        data = json.dumps({
            "waiting": [[w.queue, w.call, repr(float(w.queued_at))] for w in waiting],
            "holds": [[agent, call] for agent, call in holds.items()],
            "channels": [[vendor, list(calls)] for vendor, calls in channels.items()],
        })
        token = secrets.token_hex(8)
        with self._guard("resync"):
            self._resync(keys=[self._key("queues"), self._key("holds"), self._key("vendors"),
                               self._key("synced", self.node)],
                         args=[self._prefix, self.node, self._resync_ms, data, token])
        self._synced = token

    def subscribe(self, callback: Callable[[StoreEvent], None]) -> Subscription:
        with self._guard("subscribe"):
            listener = Listener(self, callback)
        with self._listeners_lock:
            self._listeners.append(listener)
        return listener

    def close(self) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.close()
        for client in (self._client, *self._extra):
            with contextlib.suppress(Exception):
                client.close()
