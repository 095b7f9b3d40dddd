"""Typed configuration: what the loader (``ccswitch.config``) builds from YAML.

The engine and adapters only ever see these frozen objects, never raw dicts.
The SIP edge's limits (:class:`GuardConfig`, :class:`AdmissionConfig`) check their
own values when built, so a bad value fails the same way from YAML or from code.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Union

import attrs

from ccswitch.errors import CCSwitchError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    from ccswitch.routing.calendar import Calendar

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class Transport(enum.StrEnum):
    """A SIP transport, spelled as in config and URI ``transport`` parameters."""

    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"

    @property
    def reliable(self) -> bool:
        """Whether the transport retransmits by itself (RFC 3261 17: no timers A, E, G)."""
        return self is not Transport.UDP

    @property
    def via_name(self) -> str:
        return self.value.upper()


@attrs.frozen(kw_only=True)
class TlsIdentity:
    """A certificate (PEM, leaf first, then any intermediates) and its private key."""

    certificate: Path
    key: Path


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


class CatchUpPeriod(enum.StrEnum):
    """How long a share keeps the credit its vendor could not use (config ``catch_up``)."""

    NONE = "none"  # at most SHARE_CREDIT_CAP calls (the behaviour before catch_up existed)
    CALLS = "calls"  # at most ``CatchUp.calls`` calls
    HOUR = "hour"  # all of it, until the end of the clock hour
    DAY = "day"  # all of it, until the end of the day


#: Share credit a vendor can save up under ``catch_up: none``, in calls.
SHARE_CREDIT_CAP = 3.0


@attrs.frozen(kw_only=True)
class CatchUp:
    """A share's catch-up policy: credit saved while the vendor could not take calls is
    kept until the end of the clock ``period`` (hour or day, in the time zone of
    ``calendar``, else UTC), or up to ``calls`` calls. Hour and day also set the period
    over which the achieved split is reported."""

    period: CatchUpPeriod = CatchUpPeriod.HOUR
    calls: int | None = None
    calendar: str | None = None

    @property
    def cap(self) -> float | None:
        """The most credit kept, in calls; None: all of it until the period ends."""
        if self.period is CatchUpPeriod.NONE:
            return SHARE_CREDIT_CAP
        if self.period is CatchUpPeriod.CALLS:
            assert self.calls is not None
            return float(self.calls)
        return None


@attrs.frozen(kw_only=True)
class OverflowRule:
    """One overflow rule of a queue: a condition and the vendors to try, in order.

    Exactly the field of the condition is set: ``seconds`` (wait_exceeds),
    ``length`` (queue_length_exceeds), ``calendar`` (outside_hours),
    ``service_level`` (service_level_below) or ``percent`` and ``catch_up`` (share,
    whose ``vendors`` is the one vendor of the contract).
    """

    condition: Condition
    vendors: tuple[str, ...]
    seconds: float | None = None
    length: int | None = None
    calendar: str | None = None
    service_level: ServiceLevel | None = None
    percent: float | None = None
    catch_up: CatchUp = CatchUp()


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
    ``probe_interval`` s, 0 = no probes: straight back in) decide. Evidence that the
    trunks are dead takes it out at once: a probe round none of its trunks answered
    within ``probe_timeout`` s, or an answered leg that was sending RTP and then fell
    silent for ``dead_media_timeout`` s (0: no such check), or an answered leg whose
    in-dialog OPTIONS (every ``keepalive_interval`` s) got 481, 408 or nothing.
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
    probe_timeout: float = 4.0
    dead_media_timeout: float = 5.0
    keepalive_interval: float = 30.0
    """In-dialog OPTIONS to each answered leg this often (0: none): 481, 408 or no answer
    within ``probe_timeout`` means the dialog is dead (the leg is lost)."""
    tls: TlsIdentity | None = None
    """The client certificate shown to the trunks over TLS (mutual TLS), if any."""


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

    @property
    def rule_names(self) -> tuple[str, ...]:
        """A stable name per overflow rule, in order: its condition, then ``#n`` on the n-th
        rule of the same condition (``wait_exceeds``, ``wait_exceeds#2``)."""
        seen: dict[Condition, int] = {}
        names = []
        for rule in self.overflow:
            n = seen[rule.condition] = seen.get(rule.condition, 0) + 1
            names.append(rule.condition.value if n == 1 else f"{rule.condition.value}#{n}")
        return tuple(names)


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


# -- the quality program (a dialplan file's ``qa:`` section) ---------------------------


@attrs.frozen(kw_only=True)
class SamplingRules:
    """Which finished calls are flagged for review (``ccswitch.qa.sampling`` decides).

    Percentages are of calls, 0-100; the most specific one applies: the call's
    vendor, else its queue, else its route (``inhouse`` / ``vendor``), else
    ``percent``. Minimums are per ISO week (Monday 00:00 UTC); None = no rule.
    """

    seed: str
    percent: float = 0.0
    queue_percent: Mapping[str, float] = attrs.Factory(dict)
    route_percent: Mapping[str, float] = attrs.Factory(dict)
    vendor_percent: Mapping[str, float] = attrs.Factory(dict)
    min_per_agent_week: int = 0
    min_per_vendor_week: int = 0
    longer_than_s: float | None = None
    shorter_than_s: float | None = None
    repeat_caller_hours: float | None = None


class QuestionKind(enum.StrEnum):
    """How a scorecard question is answered."""

    YES_NO = "yes_no"
    SCALE_1_5 = "scale_1_5"
    SCALE_0_10 = "scale_0_10"


@attrs.frozen(kw_only=True)
class Question:
    """One scorecard question; ``auto_fail`` (yes/no only): a "no" makes the score 0."""

    id: str
    text: str
    kind: QuestionKind
    weight: float = 1.0
    auto_fail: bool = False
    allow_na: bool = True


@attrs.frozen(kw_only=True)
class ScorecardSection:
    """A titled group of questions; its weight multiplies its questions' weights."""

    title: str
    questions: tuple[Question, ...]
    weight: float = 1.0


@attrs.frozen(kw_only=True)
class Scorecard:
    """An evaluation form, versioned: evaluations store the version they were scored on.

    It applies to calls of the ``queues`` listed and/or the ``routes`` (``inhouse``,
    ``vendor``) listed.
    """

    name: str
    version: int
    sections: tuple[ScorecardSection, ...]
    queues: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()

    def questions(self) -> dict[str, Question]:
        """Every question by id."""
        return {q.id: q for s in self.sections for q in s.questions}


@attrs.frozen(kw_only=True)
class QaConfig:
    """The quality program: sampling rules and the scorecards by name."""

    sampling: SamplingRules | None = None
    scorecards: Mapping[str, Scorecard] = attrs.Factory(dict)

    def scorecard_for(self, queue: str, route: str) -> Scorecard | None:
        """The form for a call: the first (by name) listing its queue, else the first
        listing its route (``inhouse`` / ``vendor``), else None."""
        cards = sorted(self.scorecards.values(), key=lambda c: c.name)
        return (next((c for c in cards if queue in c.queues), None)
                or next((c for c in cards if route in c.routes), None))


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
    #: The quality program's sampling rules and scorecards (a ``qa:`` section), if any.
    qa: QaConfig | None = None

    def route(self, dialed: str) -> Queue | None:
        """The queue for a dialed number, first matching route wins."""
        for route in self.routes:
            if route.matches(dialed):
                return self.queues[route.queue]
        return None


# -- SIP edge limits (what ccswitch.sip.guard enforces) ---------------------------------


# Default scanner User-Agent substrings, matched case-insensitively anywhere in the
# header. Each is the stock User-Agent of an attack tool, reported in the wild:
#   friendly-scanner  SIPVicious svmap/svwar/svcrack default (EnableSecurity/sipvicious
#                     issue #84; kb.smartvox.co.uk "When friendly-scanner gets aggressive";
#                     2600hz/kazoo-configs-kamailio sanity.cfg)
#   sipvicious        the same suite under its own name (common Kamailio/iptables block lists)
#   sipcli            sipcli/v1.8, sipcli/v2.2 (smartvox.co.uk "How to spot hacker INVITE
#                     requests" 2016, 2017; kazoo sanity.cfg)
#   sundayddr         kazoo sanity.cfg
#   pplsip            default User-Agent of every SIPPTS tool (Pepelux/sippts); kazoo sanity.cfg
#   vaxsipuseragent   VaxSIPUserAgent/3.1 in attack INVITEs (smartvox.co.uk 2017)
# Left out on purpose, as they would drop real traffic: Cisco-SIPGateway (real Cisco
# IOS gateways and CUBE trunks), PortSIP (a commercial softphone SDK), "SIP Call" and
# SimpleSIP (too generic), sipsak and SIPp (operators' test tools; our own e2e
# tests use SIPp), iWar (an IAX2 war dialler, not a SIP User-Agent).
DEFAULT_SCANNER_AGENTS: tuple[str, ...] = (
    "friendly-scanner", "sipvicious", "sipcli", "sundayddr", "pplsip", "vaxsipuseragent",
)


class GuardConfigError(CCSwitchError, ValueError):
    """A guard or admission setting is invalid (names the setting and the reason)."""

    error_id = "config.guard"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_number(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise GuardConfigError(f"{attribute.name} must be a finite number > 0, got {value!r}")


def _optional_positive_number(
    _: object, attribute: attrs.Attribute[float | None], value: float | None,
) -> None:
    if value is not None:
        if not _is_number(value) or not math.isfinite(value) or value <= 0:
            raise GuardConfigError(
                f"{attribute.name} must be a finite number > 0 or None, got {value!r}")


_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _int_at_least(minimum: int, maximum: int | None = None) -> _Validator:
    def check(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise GuardConfigError(f"{attribute.name} must be an integer, got {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise GuardConfigError(f"{attribute.name} must be {bound}, got {value}")
    return check


def _optional_int_at_least(minimum: int) -> _Validator:
    inner = _int_at_least(minimum)

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            inner(instance, attribute, value)
    return check


def _agents(_: object, attribute: attrs.Attribute[tuple[str, ...]], value: object) -> None:
    if not isinstance(value, tuple):
        raise GuardConfigError(f"{attribute.name} must be a tuple of strings, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise GuardConfigError(f"{attribute.name} entries must be non-empty strings, "
                                   f"got {item!r}")


def _networks(_: object, attribute: attrs.Attribute[tuple[IPNetwork, ...]], value: object) -> None:
    if not isinstance(value, tuple):
        raise GuardConfigError(f"{attribute.name} must be a tuple of IP networks, got {value!r}")
    for item in value:
        if not isinstance(item, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            raise GuardConfigError(f"{attribute.name} entries must be ipaddress networks "
                                   f"(ip_network('10.0.0.0/8')), got {item!r}")



@attrs.frozen(kw_only=True)
class GuardConfig:
    """Per-source limits; every source outside ``exempt`` gets its own bucket."""

    rate: float = attrs.field(default=20.0, validator=_positive_number)
    """Requests a second per source (token bucket refill)."""
    burst: int = attrs.field(default=60, validator=_int_at_least(1))
    """Bucket size: requests a fresh or long-quiet source may send at once."""
    ban_after: int = attrs.field(default=100, validator=_int_at_least(1))
    """Refusals for rate within one ban window (``ban_seconds`` from the first) -> ban."""
    ban_seconds: float = attrs.field(default=300.0, validator=_positive_number)
    scanner_agents: tuple[str, ...] = attrs.field(default=DEFAULT_SCANNER_AGENTS,
                                                  validator=_agents)
    """Case-insensitive User-Agent substrings that mark a scanner."""
    exempt: tuple[IPNetwork, ...] = attrs.field(default=(), validator=_networks)
    """Networks never limited nor banned (the PBX, carrier trunks)."""
    max_sources: int = attrs.field(default=10000, validator=_int_at_least(1))
    """Bound on sources tracked (and, separately, on live bans)."""
    ipv6_prefix: int = attrs.field(default=64, validator=_int_at_least(1, 128))
    """IPv6 sources are grouped by this prefix length (128: per address)."""


@attrs.frozen(kw_only=True)
class AdmissionConfig:
    """Node-wide limits on new calls; None switches a limit off."""

    max_calls: int | None = attrs.field(default=None, validator=_optional_int_at_least(0))
    """Concurrent calls on this node (0 refuses every call: drain)."""
    max_call_rate: float | None = attrs.field(default=None,
                                              validator=_optional_positive_number)
    """New calls a second (token bucket, burst ``max(1, rate)``)."""
    retry_after: int = attrs.field(default=5, validator=_int_at_least(0))
    """Seconds, for the ``Retry-After`` header of the 503."""


@attrs.frozen(kw_only=True)
class Listener:
    """One SIP listening socket (config ``sip.listen``)."""

    transport: Transport
    host: str
    port: int  # 0: any free port (tests)


class ClientVerify(enum.StrEnum):
    """Whether inbound TLS peers must show a certificate (config ``verify_client``)."""

    NONE = "none"
    OPTIONAL = "optional"  # asked for, checked against ``ca`` when shown
    REQUIRED = "required"  # mutual TLS: no valid certificate, no connection


@attrs.frozen(kw_only=True)
class TlsConfig:
    """``sip.tls``: this node's certificate, the CAs it trusts, inbound client checks."""

    identity: TlsIdentity
    ca: Path | None = None  # None: the system's trusted CAs (outbound only)
    verify_client: ClientVerify = ClientVerify.NONE


@attrs.frozen(kw_only=True)
class ConnectionLimits:
    """``sip.connections``: TCP and TLS connection limits."""

    idle_timeout: float = attrs.field(default=120.0, validator=_positive_number)
    """A connection with no complete message (nor keep-alive) for this long is closed."""
    max_per_source: int = attrs.field(default=32, validator=_int_at_least(1))
    """Inbound connections one IP address may hold open at once."""


@attrs.frozen(kw_only=True)
class SipConfig:
    listen_host: str = "127.0.0.1"  # the UDP listener (the first of ``listeners``)
    listen_port: int = 5060
    listeners: tuple[Listener, ...] = ()  # empty: UDP on listen_host:listen_port only
    tls: TlsConfig | None = None
    connections: ConnectionLimits = attrs.Factory(ConnectionLimits)
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
    #: Private key to decrypt sealed recordings while they are downloaded (a trade-off:
    #: the node can then read them); None: downloads are the sealed files as they are.
    recording_key: Path | None = None


@attrs.frozen(kw_only=True)
class PortalConfig:
    """The supervisor portal under ``/portal`` on the HTTP port (config key ``portal``)."""

    audit_log: Path  # JSON lines: logins, logouts, failures, lockouts, recording playback
    session_ttl: float = 8 * 3600.0  # seconds from login to a forced new login
    user_failures: int = 5  # failed logins per user name within ``lockout`` -> locked
    source_failures: int = 20  # failed logins per source address within ``lockout`` -> locked
    lockout: float = 300.0  # seconds: the counting window and the lockout's length
    max_body: int = 16 * 1024  # bytes: a larger request body is refused (413)
    sl_threshold: float = 20.0  # seconds: service-level threshold on the wallboard and charts
    tz: str = "UTC"  # the time zone of "today" and of the comparison's days and weeks
    #: cookies always get Secure (behind a TLS reverse proxy); else only over TLS itself
    secure_cookies: bool = False
    #: the center's other nodes (``http://host:port`` of their HTTP port), whose waiting
    #: callers the wallboard adds through their operator API (the shared API token)
    peers: tuple[str, ...] = ()


class RecordingStart(enum.StrEnum):
    """When a call's recording starts (config key ``recordings.start``)."""

    AFTER_NOTICE = "after_notice"  # once the caller heard the whole QA notice
    ANSWER = "answer"  # from the answer, so the notice itself is on the recording


class HoldAudio(enum.StrEnum):
    """What the recording's channel of a held party carries (``recordings.hold_audio``)."""

    MOH = "moh"  # the music on hold it hears, as every prompt played to it
    SILENCE = "silence"  # only the party's own audio, no music


@attrs.frozen(kw_only=True)
class RecordingConfig:
    directory: Path
    compressed_format: str | None = None
    start: RecordingStart = RecordingStart.AFTER_NOTICE
    hold_audio: HoldAudio = HoldAudio.MOH
    #: ``recordings.encrypt.public_key``: recordings are sealed to this key (None: WAVs).
    public_key_file: Path | None = None
    public_key: X25519PublicKey | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen(kw_only=True)
class CdrConfig:
    """Where call detail records go: a SQLite file (this node's history) or a PostgreSQL
    URL (the center's, shared by its nodes), optionally also JSON lines.

    ``directory`` holds the node's own files next to the records (agent presence, the
    spools of records waiting for an unreachable database or state store); by default
    the SQLite file's folder. A PostgreSQL database needs it given.
    """

    database: Path | str
    jsonl: Path | None = None
    directory: Path | None = attrs.field(default=None)

    @directory.validator
    def _check_directory(self, attribute: "attrs.Attribute[Path | None]",
                         value: Path | None) -> None:
        if value is None and not isinstance(self.database, Path):
            raise ValueError("a CDR database URL needs a directory for the node's files")

    @property
    def node_directory(self) -> Path:
        """Where this node keeps its own files (see the class docstring)."""
        if self.directory is not None:
            return self.directory
        assert isinstance(self.database, Path)  # the validator saw to it
        return self.database.parent


class StateKind(enum.StrEnum):
    """Where the center's shared state lives (config key ``state``)."""

    EMBEDDED = "embedded"  # in this process: a single node
    REDIS = "redis"  # a Redis server or Sentinel set, named by a URL, shared by the nodes


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
    state: str = StateKind.EMBEDDED.value  # or the Redis URL shared by the center's nodes
    node: str = "ccswitch"  # this node's name in the shared state (config key ``node``)
    hold_ttl: float = 15.0  # shared state: a dead node's agent holds expire after this
    portal: PortalConfig | None = None  # None: no /portal
    source: Path | None = None

    @property
    def state_kind(self) -> StateKind:
        """Embedded, or Redis when ``state`` is a Redis URL."""
        return StateKind.EMBEDDED if self.state == StateKind.EMBEDDED.value else StateKind.REDIS
