"""The Redis state store: several ccswitch nodes sharing one center.

Configured as ``state: redis://host:port/db`` (also ``rediss://`` and ``unix://``, as
redis-py reads them) or, through Redis Sentinel,
``state: redis+sentinel://[:password@]host1:port1,host2:port2/service_name[/db]``
(sentinel port defaults to 26379, db to 0; the password is the master's). Standalone
or Sentinel only: the scripts build key names, so Redis Cluster is not supported.

Every decision that reads and writes several keys runs in one Lua script, registered
once (EVALSHA, reloaded by redis-py after a Redis restart), so it is atomic across
nodes. Every Redis failure (connection, timeout, script or reply error) surfaces as
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

:meth:`RedisStore.subscribe` opens its own pub/sub connection and a daemon thread; a
lost connection is logged and reopened with backoff (events published meanwhile are
lost: poll ``holders()``/``presences()`` after ``StoreUnavailable``), until the
subscription or the store is closed.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
import urllib.parse
from typing import Any, Callable, Iterator, Mapping, Sequence

import attrs
import redis
import redis.client
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry
from twisted.logger import Logger

from ccswitch.errors import CCSwitchError
from ccswitch.state.store import (
    PRESENCES, EventKind, Grant, Reservation, StoreEvent, StoreUnavailable,
    Subscription, Waiting, record_call_id,
)

log = Logger()

SENTINEL_PORT = 26379
_EXACT_TRIM_BELOW = 1000


class StateUrlError(CCSwitchError):
    """A ``state:`` URL cannot be understood."""

    error_id = "state.url"


@attrs.frozen(kw_only=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL names."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = None


def parse_sentinel_url(url: str) -> SentinelTarget:
    """``redis+sentinel://[:password@]h1[:p1],h2[:p2]/service[/db]`` -> SentinelTarget."""
    scheme, sep, rest = url.partition("://")
    if scheme != "redis+sentinel" or not sep:
        raise StateUrlError(f"not a redis+sentinel:// URL: {url!r}")
    netloc, _, path = rest.partition("/")
    password: str | None = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        secret = userinfo.partition(":")[2] if ":" in userinfo else userinfo
        password = urllib.parse.unquote(secret) or None
    sentinels: list[tuple[str, int]] = []
    for part in netloc.split(","):
        sentinels.append(_host_port(part, url))
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise StateUrlError(f"{url!r}: a sentinel URL names the service: "
                            "redis+sentinel://host:port,host:port/<service>[/db]")
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise StateUrlError(f"db must be a number in {url!r}")
        db = int(parts[1])
    return SentinelTarget(sentinels=tuple(sentinels), service=urllib.parse.unquote(parts[0]),
                          db=db, password=password)


def check_url(url: str) -> None:
    """Raise StateUrlError naming what is wrong with a state store URL (``redis://``,
    ``rediss://``, ``unix://`` or ``redis+sentinel://``); nothing is connected."""
    scheme = url.partition("://")[0]
    if scheme == "redis+sentinel":
        parse_sentinel_url(url)
        return
    if scheme not in ("redis", "rediss", "unix"):
        raise StateUrlError(f"unsupported state store URL scheme {scheme!r}")
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise StateUrlError(f"{url!r}: bad port {parts.netloc.rpartition(':')[2]!r}")
    if scheme != "unix" and not parts.hostname:
        raise StateUrlError(f"{url!r} has no host")


def _host_port(part: str, url: str) -> tuple[str, int]:
    part = part.strip()
    if part.startswith("["):
        host, bracket, tail = part[1:].partition("]")
        if not bracket:
            raise StateUrlError(f"unclosed '[' in {url!r}")
        port_text = tail[1:] if tail.startswith(":") else tail
    else:
        host, _, port_text = part.partition(":")
    if not host:
        raise StateUrlError(f"empty sentinel host in {url!r}")
    if not port_text:
        return host, SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise StateUrlError(f"{url!r}: bad port {port_text!r} for a sentinel")
    return host, int(port_text)


def _ms(ttl: float) -> int:
    return max(1, round(ttl * 1000))


def _event_json(event: StoreEvent) -> str:
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


# -- Lua scripts ------------------------------------------------------------------

_BYTES_BEFORE = """
local function before(a, b)
  local n = math.min(#a, #b)
  for k = 1, n do
    local x, y = string.byte(a, k), string.byte(b, k)
    if x ~= y then return x < y end
  end
  return #a < #b
end
"""

# KEYS: presence, hold:<agent>, wait:<queue>, holds
# ARGV: prefix, agent, node, call, ttl_ms, busy_json, events, queue...
_RESERVE = _BYTES_BEFORE + """
if redis.call('HGET', KEYS[1], ARGV[2]) ~= 'ready' then return {'not_ready'} end
local held = redis.call('GET', KEYS[2])
if held then return {'busy', held} end
local prefix, node, call = ARGV[1], ARGV[3], ARGV[4]
local me = node .. '/' .. call
local mine = redis.call('ZSCORE', KEYS[3], me)
local myscore = mine and tonumber(mine) or nil
local live = {}
live[node] = true
local best_score, best_call, best_member = nil, nil, nil
for i = 8, #ARGV do
  local key = prefix .. 'wait:' .. ARGV[i]
  local entries
  if mine then
    entries = redis.call('ZRANGEBYSCORE', key, '-inf', mine, 'WITHSCORES')
  else
    entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  end
  for j = 1, #entries, 2 do
    local member = entries[j]
    local score = tonumber(entries[j + 1])
    if best_score and score > best_score then break end
    local slash = string.find(member, '/', 1, true)
    if member ~= me and slash then
      local owner = string.sub(member, 1, slash - 1)
      local other = string.sub(member, slash + 1)
      local alive = live[owner]
      if alive == nil then
        alive = redis.call('EXISTS', prefix .. 'node:' .. owner) == 1
        live[owner] = alive
      end
      if not alive then
        redis.call('ZREM', key, member)
      elseif (not myscore) or score < myscore or before(other, call) then
        if (not best_score) or score < best_score
            or (score == best_score and before(other, best_call)) then
          best_score, best_call, best_member = score, other, member
        end
      end
    end
  end
end
if best_member then return {'older_caller', best_member} end
redis.call('SET', KEYS[2], me, 'PX', ARGV[5])
redis.call('SADD', KEYS[4], ARGV[2])
redis.call('ZREM', KEYS[3], me)
redis.call('PUBLISH', ARGV[7], ARGV[6])
return {'granted'}
"""

# KEYS: hold:<agent>, holds   ARGV: "node/call", agent, events, free_json
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""

# KEYS: hold:<agent>   ARGV: "node/call", ttl_ms
_REFRESH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

# KEYS: holds   ARGV: prefix  -> {agent, holder, ...}; forgets agents without a hold
_HOLDERS = """
local out = {}
for _, agent in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local holder = redis.call('GET', ARGV[1] .. 'hold:' .. agent)
  if holder then
    out[#out + 1] = agent
    out[#out + 1] = holder
  else
    redis.call('SREM', KEYS[1], agent)
  end
end
return out
"""

_IN_USE = """
local function in_use(prefix, vendor, node, nodes_key)
  local total = 0
  for _, n in ipairs(redis.call('SMEMBERS', nodes_key)) do
    local count = redis.call('SCARD', prefix .. 'chan:' .. vendor .. ':' .. n)
    if count == 0 then
      redis.call('SREM', nodes_key, n)
    elseif n == node or redis.call('EXISTS', prefix .. 'node:' .. n) == 1 then
      total = total + count
    end
  end
  return total
end
"""

# KEYS: chan-nodes:<vendor>, vendors, chan:<vendor>:<node>
# ARGV: prefix, vendor, node, call, max
_ACQUIRE = _IN_USE + """
if redis.call('SISMEMBER', KEYS[3], ARGV[4]) == 1 then return 1 end
if in_use(ARGV[1], ARGV[2], ARGV[3], KEYS[1]) >= tonumber(ARGV[5]) then return 0 end
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('SADD', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""

# KEYS: chan-nodes:<vendor>   ARGV: prefix, vendor, node
_COUNT = _IN_USE + """
return in_use(ARGV[1], ARGV[2], ARGV[3], KEYS[1])
"""

# KEYS: records, recorded:<node>/<call>   ARGV: record json, maxlen, exact (0/1), dedup_ms
# A write that timed out may still be carried out, and its spooled copy replayed later:
# the marker makes the second append a no-op.
_APPEND = """
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[4]) then return 0 end
if ARGV[3] == '1' then
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*', 'record', ARGV[1])
else
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'record', ARGV[1])
end
return 1
"""

# KEYS: queues, holds, vendors, synced:<node>   ARGV: prefix, node, hold_ttl_ms, json, token
# json: {"waiting": [[queue, call, "queued_at"]], "holds": [[agent, call]],
#        "channels": [[vendor, [call...]]]}
_RESYNC = """
local prefix, node = ARGV[1], ARGV[2]
local mine = node .. '/'
local function owned(v) return string.sub(v, 1, #mine) == mine end
local data = cjson.decode(ARGV[4])
for _, q in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = prefix .. 'wait:' .. q
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if owned(m) then redis.call('ZREM', key, m) end
  end
  if redis.call('EXISTS', key) == 0 then redis.call('SREM', KEYS[1], q) end
end
for _, w in ipairs(data.waiting) do
  redis.call('ZADD', prefix .. 'wait:' .. w[1], w[3], mine .. w[2])
  redis.call('SADD', KEYS[1], w[1])
end
for _, agent in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local key = prefix .. 'hold:' .. agent
  local holder = redis.call('GET', key)
  if not holder then
    redis.call('SREM', KEYS[2], agent)
  elseif owned(holder) then
    redis.call('DEL', key)
    redis.call('SREM', KEYS[2], agent)
  end
end
for _, h in ipairs(data.holds) do
  if redis.call('SET', prefix .. 'hold:' .. h[1], mine .. h[2], 'NX', 'PX', ARGV[3]) then
    redis.call('SADD', KEYS[2], h[1])
  end
end
for _, v in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  redis.call('DEL', prefix .. 'chan:' .. v .. ':' .. node)
  redis.call('SREM', prefix .. 'chan-nodes:' .. v, node)
end
for _, c in ipairs(data.channels) do
  if #c[2] > 0 then
    local key = prefix .. 'chan:' .. c[1] .. ':' .. node
    for _, call in ipairs(c[2]) do redis.call('SADD', key, call) end
    redis.call('SADD', prefix .. 'chan-nodes:' .. c[1], node)
    redis.call('SADD', KEYS[3], c[1])
  end
end
redis.call('SET', KEYS[4], ARGV[5])
return 1
"""


class _Listener:
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
        self._listeners: list[_Listener] = []
        self._listeners_lock = threading.Lock()
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)
        self._refresh = client.register_script(_REFRESH)
        self._holders = client.register_script(_HOLDERS)
        self._acquire = client.register_script(_ACQUIRE)
        self._count = client.register_script(_COUNT)
        self._resync = client.register_script(_RESYNC)
        self._append = client.register_script(_APPEND)

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

    def _forget(self, listener: _Listener) -> None:
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
        message = _event_json(StoreEvent(kind=EventKind.PRESENCE, agent=agent,
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
        busy = _event_json(StoreEvent(kind=EventKind.BUSY, agent=agent, node=self.node))
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
        free = _event_json(StoreEvent(kind=EventKind.FREE, agent=agent, node=self.node,
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
            listener = _Listener(self, callback)
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
