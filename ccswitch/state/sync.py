"""Keeps one node's routing engine and the shared state store in step.

Runs on the reactor; every store call goes to one dedicated worker thread (so they
stay in order and never block the reactor) and comes back as a Deferred.

- Before ringing an agent the node reserves it (:meth:`reserve`): refused means another
  node holds it or owes it to an older caller, and the engine is told (``AgentTaken``).
  Holds are released when the engine frees the agent and refreshed meanwhile.
- Before ringing a vendor the node takes a channel (:meth:`acquire_channel`): refused
  means the vendor is full over all nodes (``VendorFull``).
- After every batch of engine work (:meth:`changed`) the node's waiting callers and its
  vendor channels are pushed to the store, and after an agent's presence changed
  (:meth:`presence_changed`, from the call runtime) that presence.
- What other nodes change comes back as store events and is fed to the engine
  (``AgentBusyElsewhere``, ``AgentFreeElsewhere``, ``PresenceSet``). Every tick the node
  also compares its remote agents with the store's holds, which catches expiries (a
  dead node) and lost events.
- **Resync**: at start, after an outage, and when a heartbeat finds the store lost
  this node's data (Redis restarted empty, flushed, failed over), the node replaces its
  entries there with its own view (``resync``), replays the record spool in order,
  takes the shared presence and publishes its own for every agent the store lacks.
- **Degraded mode**: when the store cannot be reached, calls go on and new calls are
  routed on local knowledge alone (reservations are granted locally, so two nodes may
  then offer one agent); ``ccswitch_state_backend_up`` is 0 and records are spooled to a
  local file. Other nodes' holds run out here ``hold_ttl`` after they were last seen
  (:class:`~ccswitch.state.remote.RemoteHolds`), as they would in the store, so their
  agents are offered again; one still busy refuses the offer (486), a failed offer.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from twisted.internet import defer, task, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from ccswitch.metrics.registry import Metrics
from ccswitch.routing import events as ev
from ccswitch.routing.engine import RoutingEngine
from ccswitch.routing.states import AgentState
from ccswitch.routing.view import EngineView
from ccswitch.state.remote import RemoteHolds
from ccswitch.state.store import (
    EventKind, Grant, StateStore, StoreEvent, StoreUnavailable, Subscription, Waiting,
)

log = Logger()

T = TypeVar("T")

#: What a node has in the store: its waiting callers, holds (agent -> call) and vendor
#: channels (vendor -> calls).
View = tuple[list[Waiting], dict[str, str], dict[str, list[str]]]

#: How long a hold lives without a refresh, and how often the node refreshes (a third).
HOLD_TTL = 15.0


class SharedState:
    """The node's side of the shared store (see the module docstring)."""

    def __init__(self, *, store: StateStore, engine: RoutingEngine,
                 feed: Callable[[ev.Event], None], reactor: Any, metrics: Metrics,
                 spool: Path, hold_ttl: float = HOLD_TTL) -> None:
        self.store = store
        self._engine = engine
        self._feed = feed
        self._reactor = reactor
        self._metrics = metrics
        self._spool = spool
        self._spool_lock = threading.Lock()
        self._ttl = hold_ttl
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="state-store")
        self._up = True
        self._recovering = False
        self._holds: dict[str, str] = {}  # agent -> call, this node's holds
        self._channels: dict[tuple[str, str], bool] = {}  # (vendor, call) held
        self._waiting: dict[str, Waiting] = {}  # call -> what the store has
        self._presence: dict[str, str] = {}  # what the store has, as far as known here
        self._remote = RemoteHolds(hold_ttl)  # other nodes' holds, for degraded mode
        self._subscription: Subscription | None = None
        self._loop: task.LoopingCall | None = None
        self._dirty = False

    # -- life cycle ------------------------------------------------------------

    def start(self) -> None:
        """Connect (blocking): resync, take the shared presence, follow other nodes'
        changes; during an outage start degraded and do that on recovery."""
        self._pool.start()
        self._reactor.addSystemEventTrigger("after", "shutdown", self._pool.stop)
        self._metrics.state_backend_up.set(1)
        view = self._view()
        try:
            presences = self._resync(view)
        except StoreUnavailable as e:
            self._went_down(e)
        else:
            self._resynced(view, presences, "node joined the shared state")
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self._reactor
        self._loop.start(self._ttl / 3, now=False)

    def _subscribe(self) -> None:
        """Follow other nodes' changes (blocking; raises StoreUnavailable)."""
        self._subscription = self.store.subscribe(
            lambda event: self._reactor.callFromThread(self._on_event, event))

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._subscription is not None:
            self._subscription.close()
        self.store.close()

    @property
    def up(self) -> bool:
        return self._up

    # -- hooks from the call runtime ------------------------------------------------

    def reserve(self, call_id: str, agent_id: str, queue: str) -> defer.Deferred[Any]:
        """Hold ``agent_id`` for ``call_id`` (True), or False when another node has it or
        owes it to an older caller. Degraded: True (local knowledge)."""
        if not self._up:
            return defer.succeed(True)
        self._release_stale()  # in store order, before this reservation
        view = self._engine.view
        groups = set(view.agents[agent_id].groups)
        # The queues whose group holds the agent: the callers it may be owed to.
        queues = sorted(name for name, q in view.queues.items() if q.group in groups)

        def done(result: Any) -> bool:
            if result.grant is Grant.GRANTED:
                self._holds[agent_id] = call_id
                self._waiting.pop(call_id, None)
                return True
            log.debug("reservation of {agent} for {call_id} refused: {grant} ({who})",
                      agent=agent_id, call_id=call_id, grant=str(result.grant),
                      who=result.holder or result.older)
            return False

        d = self._run(self.store.reserve, agent_id, call_id, queue, queues, self._ttl)
        d.addCallback(done)
        d.addErrback(self._degraded_answer, True)
        return d

    def acquire_channel(self, call_id: str, vendor: str,
                        max_channels: int) -> defer.Deferred[Any]:
        """One of ``vendor``'s channels for ``call_id`` (True), or False when the vendor
        is full over all nodes. Degraded: True (the local cap still applies)."""
        if (vendor, call_id) in self._channels or not self._up:
            return defer.succeed(True)
        self._release_stale()

        def done(granted: bool) -> bool:
            if granted:
                self._channels[(vendor, call_id)] = True
            return granted

        d = self._run(self.store.acquire_channel, vendor, call_id, max_channels)
        d.addCallback(done)
        d.addErrback(self._degraded_answer, True)
        return d

    def changed(self) -> None:
        """The engine did some work: push waiting callers, holds, channels and presence
        once the reactor is done with this batch."""
        if not self._dirty:
            self._dirty = True
            self._reactor.callLater(0, self._push)

    def record(self, record: Mapping[str, Any]) -> None:
        """Append a call record to the shared stream (any thread; blocking); spooled
        locally while the store is unreachable or older records wait in the spool."""
        line = json.dumps(record, sort_keys=True, default=str)
        with self._spool_lock:
            if self._up and not self._spool_waiting():
                try:
                    self.store.append_record(record)
                    return
                except StoreUnavailable as e:
                    self._reactor.callFromThread(self._went_down, e)
            fd = os.open(self._spool, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line.encode("utf-8") + b"\n")
            finally:
                os.close(fd)

    # -- pushing local changes -------------------------------------------------------

    def _push(self) -> None:
        self._dirty = False
        if not self._up:
            return
        waiting = {call: Waiting(queue=queue, call=call, queued_at=at)
                   for queue, call, at in self._engine.view.waiting()}
        for call, entry in waiting.items():
            if self._waiting.get(call) != entry:
                self._waiting[call] = entry
                self._fire(self.store.enqueue, entry.queue, call, entry.queued_at)
        for call in [c for c in self._waiting if c not in waiting]:
            entry = self._waiting.pop(call)
            self._fire(self.store.dequeue, entry.queue, call)
        self._release_stale()

    def presence_changed(self, presence: Mapping[str, tuple[str, bool]]) -> None:
        """The engine's agent presence (``EngineView.presence()``) after a change: what
        differs from what the store has (as known here) is set in the store. While the
        store is unreachable nothing is pushed; the resync on recovery publishes it."""
        if not self._up:
            return
        for agent, (value, _) in presence.items():
            if self._presence.get(agent) != value:
                self._presence[agent] = value
                self._fire(self.store.set_presence, agent, value)

    def _release_stale(self) -> None:
        """Give back the holds and channels the engine no longer uses."""
        view = self._engine.view
        busy = view.busy_agents()
        now = self._reactor.seconds()
        for agent, call in list(self._holds.items()):
            if busy.get(agent) != call:
                del self._holds[agent]
                self._fire(self.store.release, agent, call, now)
        for vendor, call in [key for key in self._channels
                             if _call_vendor(view, key[1]) != key[0]]:
            del self._channels[(vendor, call)]
            self._fire(self.store.release_channel, vendor, call)

    # -- other nodes' changes --------------------------------------------------------------

    def _on_event(self, event: StoreEvent) -> None:
        if event.node == self.store.node:
            return
        if event.kind is EventKind.PRESENCE and event.presence is not None:
            self._presence[event.agent] = event.presence
            self._feed(ev.PresenceSet(agent_id=event.agent, presence=event.presence))
        elif event.kind is EventKind.BUSY:
            self._remote.seen(event.agent, self._reactor.seconds())
            self._feed(ev.AgentBusyElsewhere(agent_id=event.agent))
        elif event.kind is EventKind.FREE:
            self._feed(ev.AgentFreeElsewhere(agent_id=event.agent,
                                             idle_since=event.idle_since))

    def _take_presences(self, presences: Mapping[str, str]) -> None:
        for agent, presence in presences.items():
            self._presence[agent] = presence
            self._feed(ev.PresenceSet(agent_id=agent, presence=presence))

    # -- the tick: heartbeat, refresh, reconcile, recover ---------------------------------

    def _tick(self) -> defer.Deferred[Any] | None:
        if not self._up:
            self._expire_remote_holds()
            return self._try_recover("state store reachable again")
        holds = dict(self._holds)
        d = self._run(self._beat, holds)
        d.addCallback(self._beaten)
        d.addErrback(self._degraded_answer, None)
        return d

    def _beat(self, holds: Mapping[str, str]) -> dict[str, str] | None:
        """(store thread) heartbeat, refresh our holds, read everyone's holds; None when
        the store lost this node's data."""
        if not self.store.heartbeat(self._ttl):
            return None
        for agent, call in holds.items():
            self.store.refresh(agent, call, self._ttl)
        return self.store.holders()

    def _beaten(self, holders: dict[str, str] | None) -> defer.Deferred[Any] | None:
        if holders is not None:
            self._reconcile(holders)
            return None
        # Until the resync is done the store cannot arbitrate (no presence, no holds):
        # route on local knowledge meanwhile, as during an outage.
        self._up = False
        self._metrics.state_backend_up.set(0)
        log.error("state store lost this node's shared state (Redis restarted empty, "
                  "flushed or failed over?): publishing it again")
        return self._try_recover("state store refilled")

    def _reconcile(self, holders: dict[str, str]) -> None:
        """Agents remote here but held by nobody are free (an expiry, a lost event); agents
        ready here but held by another node are busy."""
        prefix = f"{self.store.node}/"
        now = self._reactor.seconds()
        for agent_id, agent in self._engine.view.agents.items():
            state = agent.state
            holder = holders.get(agent_id)
            if holder is not None and not holder.startswith(prefix):
                self._remote.seen(agent_id, now)
            if state is AgentState.REMOTE and holder is None:
                self._feed(ev.AgentFreeElsewhere(agent_id=agent_id))
            elif (state is AgentState.READY and holder is not None
                  and not holder.startswith(prefix)):
                self._feed(ev.AgentBusyElsewhere(agent_id=agent_id))

    def _expire_remote_holds(self) -> None:
        """Degraded: free the agents whose other node's hold ran out by local reckoning."""
        remote = [agent_id for agent_id, agent in self._engine.view.agents.items()
                  if agent.state is AgentState.REMOTE]
        for agent in self._remote.expired(remote, self._reactor.seconds()):
            log.info("agent {agent}: another node's hold not seen for {ttl}s (state store "
                     "unreachable): free on local knowledge", agent=agent, ttl=self._ttl)
            self._feed(ev.AgentFreeElsewhere(agent_id=agent))

    def _view(self) -> View:
        """What this node has in the store: waiting callers, holds, vendor channels."""
        view = self._engine.view
        waiting = [Waiting(queue=q, call=c, queued_at=at) for q, c, at in view.waiting()]
        channels: dict[str, list[str]] = {}
        for call_id, call in view.calls.items():
            if call.vendor is not None:
                channels.setdefault(call.vendor, []).append(call_id)
        return waiting, view.busy_agents(), channels

    def _resync(self, view: View) -> dict[str, str]:
        """(blocking: the store thread, or the reactor at start) Put this node's ``view``
        in the store, replay the record spool and return the shared presence."""
        waiting, holds, channels = view
        self.store.ping()
        if self._subscription is None:
            self._subscribe()
        self.store.heartbeat(self._ttl)
        self.store.resync(waiting=waiting, holds=holds, channels=channels)
        self._replay_spool()
        return self.store.presences()

    def _resynced(self, view: View, presences: dict[str, str], what: str) -> None:
        """The store has ``view`` and ``presences``: take the shared presence, publish
        this node's for every agent the store lacks (all of them after a loss of data)."""
        waiting, holds, channels = view
        self._up = True
        self._metrics.state_backend_up.set(1)
        self._holds = dict(holds)
        self._waiting = {w.call: w for w in waiting}
        self._channels = {(v, c): True for v, calls in channels.items() for c in calls}
        log.info("{what}: node re-synchronised ({holds} hold(s), {waiting} waiting "
                 "caller(s))", what=what, holds=len(holds), waiting=len(waiting))
        self._presence = {}  # what was pushed before may be gone: the store's is below
        self._take_presences(presences)
        self.presence_changed(self._engine.view.presence())
        self.changed()

    def _try_recover(self, what: str) -> defer.Deferred[Any] | None:
        if self._recovering:
            return None
        self._recovering = True
        view = self._view()

        def still_down(failure: Failure) -> Failure | None:
            return None if isinstance(failure.value, StoreUnavailable) else failure

        d = self._run(self._resync, view)
        d.addCallbacks(lambda presences: self._resynced(view, presences, what), still_down)
        d.addBoth(self._recovery_done)
        return d

    def _recovery_done(self, result: object) -> None:
        self._recovering = False
        if isinstance(result, Failure):  # not StoreUnavailable (still_down took that)
            log.failure("state store resync failed; retried at the next tick", result)

    def _spool_waiting(self) -> bool:
        try:
            return self._spool.stat().st_size > 0
        except FileNotFoundError:
            return False

    def _replay_spool(self) -> None:
        """(store thread) append spooled records in order; what the store refuses stays
        spooled; a line that is not a record (torn by a crash, edited) is logged and
        dropped rather than blocking the ones after it."""
        with self._spool_lock:
            try:
                text = self._spool.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                return
            except OSError as e:  # the records stay there for the operator
                log.error("record spool {path} cannot be read, not replayed: {error}",
                          path=str(self._spool), error=str(e))
                return
            lines = text.splitlines()
            done = 0
            try:
                for line in lines:
                    if line.strip():
                        self._replay_line(line)
                    done += 1
            finally:
                rest = "".join(f"{line}\n" for line in lines[done:])
                temp = self._spool.with_name(f".{self._spool.name}.tmp")
                temp.write_text(rest, encoding="utf-8")
                os.replace(temp, self._spool)
            if done:
                log.info("replayed {count} spooled call record(s) to the state store",
                         count=done)

    def _replay_line(self, line: str) -> None:
        """(store thread, spool lock held) append one spooled record."""
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            self.store.append_record(record)
        except ValueError as e:  # StoreUnavailable is not one: it stops the replay
            log.error("dropped a spooled call record that cannot be replayed ({error}): "
                      "{line}", error=str(e), line=line)

    # -- plumbing ---------------------------------------------------------------------------

    def _fire(self, f: Callable[..., Any], *args: Any) -> None:
        """Run a store call whose result nobody waits for; failures are logged."""
        d = self._run(f, *args)
        d.addErrback(self._degraded_answer, None)
        d.addErrback(lambda failure: log.failure("state store call {call} failed", failure,
                                                 call=getattr(f, "__name__", repr(f))))

    def _run(self, f: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        d: defer.Deferred[T] = threads.deferToThreadPool(self._reactor, self._pool, f, *args)
        return d

    def _degraded_answer(self, failure: Failure, answer: T) -> T | Failure:
        """An errback: the store is unreachable -> degraded mode and ``answer``; any
        other failure goes on (and is logged where it ends)."""
        if not isinstance(failure.value, StoreUnavailable):
            return failure
        self._went_down(failure.value)
        return answer

    def _went_down(self, error: BaseException) -> None:
        if self._up:
            self._up = False
            self._metrics.state_backend_up.set(0)
            log.error("state store unreachable, routing on local knowledge: {error}",
                      error=str(error))


def _call_vendor(view: EngineView, call_id: str) -> str | None:
    """The vendor a call is offered to or bridged with now (None: none, or no such call)."""
    call = view.calls.get(call_id)
    return None if call is None else call.vendor
