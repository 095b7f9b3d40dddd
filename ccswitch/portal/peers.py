"""The center's other nodes, as the wallboard sees them: their waiting callers, read once
a second from each peer's operator API (``GET /api/v1/calls`` with the shared token).

A peer that does not answer within ``TIMEOUT`` seconds, or answers anything but a calls
list, counts as down and adds no callers until it answers again (stale counts would
mislead more than a missing node that the wallboard shows as down).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import attrs
from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

log = Logger()

TIMEOUT = 2.0
#: Call states in which a caller waits (announcement, queue, ringing agents, offered to a
#: vendor), as ``GET /api/v1/calls`` names them.
WAITING_STATES = frozenset({"announcing", "queued", "ringing", "overflow"})


@attrs.frozen(kw_only=True)
class PeerState:
    url: str
    up: bool
    #: (queue, seconds since the caller arrived) of each caller waiting there
    waiting: tuple[tuple[str, float], ...] = ()


def waiting_calls(body: bytes) -> tuple[tuple[str, float], ...]:
    """The waiting callers in an ``/api/v1/calls`` answer; ValueError if it is not one."""
    data = json.loads(body)
    calls = data.get("calls") if isinstance(data, dict) else None
    if not isinstance(calls, list):
        raise ValueError("no calls list")
    out = []
    for call in calls:
        if not isinstance(call, dict):
            raise ValueError("a call is not an object")
        queue, state, seconds = call.get("queue"), call.get("state"), call.get("seconds")
        if state in WAITING_STATES and isinstance(queue, str) \
                and isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
            out.append((queue, float(seconds)))
    return tuple(out)


class Peers:
    """Polls the peers (see the module docstring); ``states`` holds the last answers."""

    def __init__(self, reactor: Any, urls: Sequence[str], token: str) -> None:
        self._reactor = reactor
        self._agent = Agent(reactor, connectTimeout=TIMEOUT)
        self._urls = tuple(urls)
        self._auth = Headers({b"Authorization": [f"Bearer {token}".encode("ascii")]})
        self.states: tuple[PeerState, ...] = tuple(PeerState(url=u, up=False) for u in urls)

    def poll(self) -> "Deferred[None]":
        """Ask every peer once; ``states`` is replaced when all have answered or failed."""
        asks = [self._ask(url) for url in self._urls]
        done: Deferred[Any] = DeferredList(asks, consumeErrors=True)

        def store(results: list[tuple[bool, Any]]) -> None:
            fresh = tuple(state for ok, state in results if ok)
            for old, new in zip(self.states, fresh):
                if old.up != new.up:
                    log.info("portal: peer {url} is {now}", url=new.url,
                             now="up" if new.up else "down")
            self.states = fresh

        done.addCallback(store)
        return done

    def _ask(self, url: str) -> "Deferred[PeerState]":
        asked: Deferred[Any] = self._agent.request(
            b"GET", f"{url}/api/v1/calls".encode("ascii"), self._auth)

        def body(response: Any) -> "Deferred[bytes]":
            if response.code != 200:
                raise ValueError(f"HTTP {response.code}")
            read: Deferred[bytes] = readBody(response)
            return read

        def parsed(data: bytes) -> PeerState:
            return PeerState(url=url, up=True, waiting=waiting_calls(data))

        def failed(failure: Any) -> PeerState:
            log.debug("portal: peer {url}: {error}", url=url, error=failure.getErrorMessage())
            return PeerState(url=url, up=False)

        asked.addCallback(body)
        asked.addCallback(parsed)
        # One deadline for connecting, the headers and the body alike.
        timer = self._reactor.callLater(TIMEOUT, asked.cancel)

        def stop_timer(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        asked.addBoth(stop_timer)
        asked.addErrback(failed)
        return asked
