"""Typed configuration: what the loader (``ccswitch.config``) builds from YAML.

The engine and adapters only ever see these frozen objects, never raw dicts.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import attrs

from ccswitch.sip.guard import AdmissionConfig, GuardConfig
from ccswitch.sip.guard import IPNetwork as IPNetwork  # re-exported for config and b2bua

if TYPE_CHECKING:
    from ccswitch.routing.calendar import Calendar



class Strategy(enum.Enum):
    """How a queue picks the in-house agent(s) to offer a call to."""

    LONGEST_IDLE = "longest_idle"
    RING_ALL = "ring_all"


@attrs.frozen(kw_only=True)
class Agent:
    """An in-house agent: a SIP URI that ccswitch rings.

    A phone that sends no response at all (not even 100 Trying) within
    ``no_response_timeout`` seconds of an offer (0: no such check), or that an INVITE
    cannot be sent to, is taken out of rotation (``unreachable``) and sent
    OPTIONS every ``probe_interval`` seconds until it answers anything.
    """

    id: str
    uri: str
    name: str | None = None
    logged_in: bool = True
    no_response_timeout: float = 3.0
    probe_interval: float = 10.0


@attrs.frozen(kw_only=True)
class Group:
    """A named set of agents (by id), in the order they were listed."""

    name: str
    agents: tuple[str, ...]


class Condition(enum.StrEnum):
    """What makes an overflow rule fire (the value is the ``reason`` metric label)."""

    WAIT_EXCEEDS = "wait_exceeds"
    NO_AGENTS_LOGGED_IN = "no_agents_logged_in"
    NO_AGENTS_AVAILABLE = "no_agents_available"
    QUEUE_LENGTH_EXCEEDS = "queue_length_exceeds"
    OUTSIDE_HOURS = "outside_hours"
    SERVICE_LEVEL_BELOW = "service_level_below"
    SHARE = "share"


#: The overflow reason recorded when the queue's ``max_wait`` sends a call on.
MAX_WAIT_REASON = "max_wait"


@attrs.frozen(kw_only=True)
class ServiceLevel:
    """``service_level_below``: in-house SL over the last ``window`` seconds.

    The rule turns on when SL < ``percent`` and off again only once SL >=
    ``percent + hysteresis``; with fewer than ``min_calls`` calls in the window
    it is off.
    """

    percent: float
    within: float
    window: float
    hysteresis: float = 5.0
    min_calls: int = 10


@attrs.frozen(kw_only=True)
class OverflowRule:
    """One overflow rule of a queue: a condition and the vendors to try, in order.

    Exactly the field of the condition is set: ``seconds`` (wait_exceeds),
    ``length`` (queue_length_exceeds), ``calendar`` (outside_hours),
    ``service_level`` (service_level_below) or ``percent`` (share, whose
    ``vendors`` is the one vendor of the contract).
    """

    condition: Condition
    vendors: tuple[str, ...]
    seconds: float | None = None
    length: int | None = None
    calendar: str | None = None
    service_level: ServiceLevel | None = None
    percent: float | None = None


@attrs.frozen(kw_only=True)
class MaxWait:
    """The most a caller waits in queue, then: these vendors, else the announcement
    (if any) and a hang-up."""

    seconds: float
    vendors: tuple[str, ...] = ()
    announcement: Path | None = None


@attrs.frozen(kw_only=True)
class Vendor:
    """An outsourced vendor group behind one or more SIP trunk URIs (tried in order).

    Health: ``failures`` failed attempts or OPTIONS probes in a row take it out of
    rotation for ``cooldown`` seconds; then OPTIONS probes (every
    ``probe_interval`` s, 0 = no probes: straight back in) decide.
    """

    name: str
    trunks: tuple[str, ...]
    max_channels: int
    schedule: str | None = None
    username: str | None = None
    password: str | None = None
    ring_timeout: float = 30.0
    failures: int = 3
    cooldown: float = 60.0
    probe_interval: float = 30.0


@attrs.frozen(kw_only=True)
class Queue:
    """A queue: which group serves it, how, and what callers hear."""

    name: str
    group: str
    strategy: Strategy = Strategy.LONGEST_IDLE
    announcement: Path
    music_on_hold: Path | None = None
    ring_timeout: float = 15.0
    max_misses: int = 3
    wrap_up: float = 5.0
    short_abandon: float = 5.0
    overflow: tuple[OverflowRule, ...] = ()
    max_wait: MaxWait | None = None
    inhouse_takeover: bool = True


@attrs.frozen(kw_only=True)
class Route:
    """Maps a dialed number (Request-URI user) to a queue: exact or regex."""

    queue: str
    number: str | None = None
    pattern: re.Pattern[str] | None = None

    def matches(self, dialed: str) -> bool:
        if self.number is not None:
            return dialed == self.number
        assert self.pattern is not None
        return self.pattern.fullmatch(dialed) is not None


@attrs.frozen(kw_only=True)
class Dialplan:
    """Every dialplan file merged: agents, groups, queues and routes."""

    agents: Mapping[str, Agent]
    groups: Mapping[str, Group]
    queues: Mapping[str, Queue]
    routes: tuple[Route, ...]
    vendors: Mapping[str, Vendor] = attrs.Factory(dict)
    calendars: Mapping[str, Calendar] = attrs.Factory(dict)
    files: tuple[Path, ...] = ()

    def route(self, dialed: str) -> Queue | None:
        """The queue for a dialed number, first matching route wins."""
        for route in self.routes:
            if route.matches(dialed):
                return self.queues[route.queue]
        return None


@attrs.frozen(kw_only=True)
class SipConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 5060
    advertised_host: str = "127.0.0.1"
    trusted: tuple[IPNetwork, ...] = ()
    user_agent: str = "ccswitch"
    max_message_size: int = 65535
    admission: AdmissionConfig = attrs.Factory(AdmissionConfig)  # overload: 503 + Retry-After
    flood: GuardConfig = attrs.Factory(GuardConfig)  # per-source rate limit, bans, scanners


@attrs.frozen(kw_only=True)
class RtpConfig:
    address: str = "127.0.0.1"
    port_min: int = 20000
    port_max: int = 29999
    timeout: float = 60.0  # no RTP from a leg for this long ends the call; 0 = never


@attrs.frozen(kw_only=True)
class HttpConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 9060
    api_token_file: Path | None = None  # None: no /api (only /metrics and /healthz)


@attrs.frozen(kw_only=True)
class RecordingConfig:
    directory: Path
    compressed_format: str | None = None
    # after_notice: recording starts once the caller heard the whole QA notice;
    # answer: from the answer, so the notice itself is on the recording
    start: str = "after_notice"


@attrs.frozen(kw_only=True)
class CdrConfig:
    """Where call detail records go: a SQLite database, optionally also JSON lines."""

    database: Path
    jsonl: Path | None = None


@attrs.frozen(kw_only=True)
class Config:
    """The whole service configuration, dialplans included."""

    sip: SipConfig
    rtp: RtpConfig
    http: HttpConfig
    recordings: RecordingConfig
    cdr: CdrConfig
    dialplan_dir: Path
    dialplan: Dialplan
    state: str = "embedded"  # or the Redis URL shared by the center's nodes
    node: str = "ccswitch"  # this node's name in the shared state (config key ``node``)
    hold_ttl: float = 15.0  # shared state: a dead node's agent holds expire after this
    source: Path | None = None
