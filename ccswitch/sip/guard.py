"""Flood and scanner guard for the SIP edge (sans-I/O).

A small policy the transport consults; it does no I/O and does not log.
Time comes from an injected clock (anything with ``seconds()``: the reactor in
production, ``twisted.internet.task.Clock`` in tests).

``SourceGuard.check`` runs once per incoming *request* (never per response), before
parsing goes further, and answers with a ``Verdict``. The caller drops everything
but ``ALLOW`` without answering (an answer confirms a live host to the scanner)
and counts metrics by verdict. Per source it keeps a token bucket (``rate``
tokens a second, ``burst`` deep). A source that keeps knocking on an empty bucket
(``ban_after`` refusals within ``ban_seconds`` of the first one) is banned for
``ban_seconds``; the request that triggers the ban gets ``BANNED`` and its key is
queued for ``take_new_bans`` so the adapter logs each ban once. Requests with a
known scanner ``User-Agent`` get ``SCANNER``; they still spend a token, so a
scanner flood ends in a ban like any other flood.

Sources are keyed by IPv4 address, and IPv6 by ``ipv6_prefix`` (default /64: one
subscriber's allocation, so an attacker cannot dodge the limit by walking its own
/64). IPv4-mapped IPv6 addresses count as their IPv4 address. ``exempt`` networks
(the PBX, carrier trunks) bypass everything; exempt your trunks, because UDP
sources can be spoofed and a spoofed flood could otherwise get a trunk banned.

Memory is bounded by ``max_sources`` per table (the IPv6 key cache, cleared
whenever it fills, is a third):

* the bucket table is an LRU: a new source beyond the bound forgets the least
  recently seen one, which then starts again with a full bucket;
* bans live in a separate table, not in the LRU. A spoofed flood of fresh
  addresses churns the LRU at line rate; had bans lived there, a few thousand
  spoofed datagrams would silently lift the ban of the real attacker. Entering
  the ban table costs a source ``burst + ban_after`` requests, so churning it is
  far harder. When it is full anyway, the ban closest to its end is dropped
  first (all bans last ``ban_seconds``, so that is the oldest). A banned source
  keeps no bucket; when its ban ends it starts with the tokens an empty bucket
  would have gained during the ban (usually a full bucket), so a source never
  gets more than ``burst + rate * elapsed`` requests through. Only LRU eviction
  breaks that bound: an evicted source comes back with a full bucket.
"""

from __future__ import annotations

import collections
import enum
import ipaddress

from ccswitch.clock import TimeSource
from ccswitch.model import GuardConfig

__all__ = ["SourceGuard", "Verdict"]


class Verdict(enum.StrEnum):
    """What to do with one incoming request."""

    ALLOW = "allow"
    SCANNER = "scanner"  # drop silently: a known scanner User-Agent
    RATE_LIMITED = "rate_limited"  # drop: over the per-source rate; not (yet) banned
    BANNED = "banned"  # drop: the source is serving (or just earned) a temporary ban

class _Source:
    """Bucket and refusal window of one source (mutable, one per tracked source)."""

    __slots__ = ("tokens", "stamp", "refused", "window_start", "exempt")

    def __init__(self, tokens: float, stamp: float, exempt: bool) -> None:
        self.tokens = tokens
        self.stamp = stamp
        self.refused = 0
        self.window_start = stamp
        self.exempt = exempt


class SourceGuard:
    """Per-source token buckets, scanner User-Agents and temporary bans."""

    def __init__(self, config: GuardConfig, clock: TimeSource) -> None:
        self.config = config
        self._clock = clock
        self._rate = float(config.rate)
        self._burst = float(config.burst)
        self._ban_after = config.ban_after
        self._ban_seconds = float(config.ban_seconds)
        self._max = config.max_sources
        # Lower-case then plain ``in``: ~0.3 us a request, where an IGNORECASE regex costs ~2.
        self._agents = tuple(agent.lower() for agent in config.scanner_agents)
        self._exempt4 = tuple(n for n in config.exempt if n.version == 4)
        self._exempt6 = tuple(n for n in config.exempt if n.version == 6)
        self._v6_mask = ((1 << config.ipv6_prefix) - 1) << (128 - config.ipv6_prefix)
        self._v6_suffix = f"/{config.ipv6_prefix}"
        # key -> state, least recently seen first.
        self._sources: collections.OrderedDict[str, _Source] = collections.OrderedDict()
        # key -> ban end; insertion order is end order while ban_seconds is fixed.
        self._bans: dict[str, float] = {}
        self._new_bans: collections.deque[str] = collections.deque(maxlen=config.max_sources)
        # IPv6 address -> bucket key (None: exempt); parsing costs ~9 us, a hit ~0.1 us.
        self._v6_keys: dict[str, str | None] = {}

    def is_banned(self, source_ip: str) -> bool:
        """Whether ``source_ip`` serves a live ban: a cheap look before any parsing (the
        datagram can then be dropped unread); O(1), nothing when there are no bans."""
        if not self._bans:
            return False
        key = self._key(source_ip)
        end = None if key is None else self._bans.get(key)
        return end is not None and self._clock.seconds() < end

    def _key(self, source_ip: str) -> str | None:
        """The bucket key of a source: the IPv4 address, or the IPv6 prefix (cached);
        None for an exempt IPv6 source."""
        if ":" not in source_ip:
            return source_ip
        v6_keys = self._v6_keys
        if source_ip in v6_keys:
            return v6_keys[source_ip]
        v6_key = self._v6_key(source_ip)
        if len(v6_keys) >= self._max:
            v6_keys.clear()  # amortised O(1); a miss only costs a parse
        v6_keys[source_ip] = v6_key
        return v6_key

    def check(self, source_ip: str, user_agent: str | None) -> Verdict:
        """The verdict for one incoming request from ``source_ip``; O(1)."""
        now = self._clock.seconds()
        key = self._key(source_ip)
        if key is None:
            return Verdict.ALLOW
        fresh = self._burst
        bans = self._bans
        if bans:
            end = bans.get(key)
            if end is not None:
                if now < end:
                    return Verdict.BANNED
                del bans[key]
                # Banned on an empty bucket, refilled at ``rate`` since the ban began.
                refilled = (now - end + self._ban_seconds) * self._rate
                if refilled < fresh:
                    fresh = refilled
        sources = self._sources
        state = sources.get(key)
        if state is None:
            state = _Source(fresh, now, self._v4_exempt(key))
            if len(sources) >= self._max:
                sources.popitem(last=False)
            sources[key] = state
        else:
            sources.move_to_end(key)
        if state.exempt:
            return Verdict.ALLOW
        elapsed = now - state.stamp
        if elapsed > 0:
            tokens = state.tokens + elapsed * self._rate
            state.tokens = tokens if tokens < self._burst else self._burst
        state.stamp = now  # also re-anchors after a clock that stepped back
        if state.tokens >= 1.0:
            state.tokens -= 1.0
            if user_agent and self._agents:
                lowered = user_agent.lower()
                for agent in self._agents:
                    if agent in lowered:
                        return Verdict.SCANNER
            return Verdict.ALLOW
        return self._refuse(key, state, now)

    def banned(self) -> dict[str, float]:
        """Live bans: source key (IPv4 address or IPv6 prefix) -> ban end, in clock seconds."""
        now = self._clock.seconds()
        return {key: end for key, end in self._bans.items() if now < end}

    def take_new_bans(self) -> list[str]:
        """Source keys banned since the last call, oldest first; each is reported once."""
        taken = list(self._new_bans)
        self._new_bans.clear()
        return taken

    def _refuse(self, key: str, state: _Source, now: float) -> Verdict:
        if state.refused == 0 or now - state.window_start >= self._ban_seconds:
            state.window_start = now
            state.refused = 0
        state.refused += 1
        if state.refused < self._ban_after:
            return Verdict.RATE_LIMITED
        del self._sources[key]
        bans = self._bans
        # Drop ended bans from the front (the soonest ending), then the soonest live one.
        while bans:
            first = next(iter(bans))
            if bans[first] > now and len(bans) < self._max:
                break
            del bans[first]
        bans[key] = now + self._ban_seconds
        self._new_bans.append(key)
        return Verdict.BANNED

    def _v4_exempt(self, key: str) -> bool:
        if not self._exempt4:
            return False
        try:
            address = ipaddress.IPv4Address(key)
        except ValueError:
            return False
        return any(address in network for network in self._exempt4)

    def _v6_key(self, source_ip: str) -> str | None:
        """The bucket key of an IPv6 source, or None when it is exempt."""
        try:
            address = ipaddress.IPv6Address(source_ip)
        except ValueError:
            return source_ip  # not an address: track it verbatim, never raise
        mapped = address.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        if self._exempt6 and any(address in network for network in self._exempt6):
            return None
        prefix = ipaddress.IPv6Address(int(address) & self._v6_mask)
        return prefix.compressed + self._v6_suffix
