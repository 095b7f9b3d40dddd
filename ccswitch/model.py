"""Typed configuration: what the loader (``ccswitch.config``) builds from YAML.

The engine and adapters only ever see these frozen objects, never raw dicts.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from pathlib import Path
from typing import Mapping, Union

import attrs

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class Strategy(enum.Enum):
    """How a queue picks the in-house agent(s) to offer a call to."""

    LONGEST_IDLE = "longest_idle"
    RING_ALL = "ring_all"


@attrs.frozen(kw_only=True)
class Agent:
    """An in-house agent: a SIP URI that ccswitch rings."""

    id: str
    uri: str
    name: str | None = None
    logged_in: bool = True


@attrs.frozen(kw_only=True)
class Group:
    """A named set of agents (by id), in the order they were listed."""

    name: str
    agents: tuple[str, ...]


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


@attrs.frozen(kw_only=True)
class RtpConfig:
    address: str = "127.0.0.1"
    port_min: int = 20000
    port_max: int = 29999


@attrs.frozen(kw_only=True)
class HttpConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 9060


@attrs.frozen(kw_only=True)
class RecordingConfig:
    directory: Path
    compressed_format: str | None = None


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
    state: str = "embedded"
    source: Path | None = None
