"""Configuration loader: service YAML and dialplan YAML into the typed objects of ``model``.

The loader is the only place that sees raw YAML. It validates everything it can
in one pass and reports *all* problems together, each as a
:class:`~ccswitch.errors.ConfigError` naming the file, the dotted key
(``queues.support.ring_timeout``, ``routes[1].pattern``) and the reason, with
the line number when it is known. ``ccswitch check`` and ``ccswitch run`` both
go through :func:`check_config`, so what ``check`` accepts is what ``run`` runs.

Relative paths resolve against the directory of the file that names them:
``recordings.directory`` and ``dialplans`` against the service config,
``announcement`` and ``music_on_hold`` against the dialplan file.

Route precedence: exact ``number`` routes are tried before any ``pattern``
route (exact numbers are unique, so their order never matters); pattern routes
are tried in file order (files sorted by name, then top to bottom). Patterns
must match the whole dialed number (``re.fullmatch``).
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import socket
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Collection, Final, Generic, Sequence, TypeVar

import attrs
import yaml
from twisted.logger import Logger

from ccswitch.errors import ConfigError
from ccswitch.model import (
    Agent, CdrConfig, Condition, Config, Dialplan, Group, HttpConfig, IPNetwork, MaxWait,
    OverflowRule, Queue, RecordingConfig, Route, RtpConfig, ServiceLevel, SipConfig, Strategy,
    Vendor,
)
from ccswitch.routing.calendar import Calendar, CalendarError
from ccswitch.sip.guard import AdmissionConfig, GuardConfig
from ccswitch.state.redis_store import StateUrlError, check_url

__all__ = [
    "CheckResult", "ConfigErrors", "check_config", "load_config", "load_dialplan_file",
    "load_dialplans", "read_token",
]

log = Logger()

T = TypeVar("T")

FILE_KEY: Final = "<file>"
"""The key used for problems with a file as a whole (unreadable, empty, not a mapping)."""

EXTENSION_PREFIX: Final = "x-"
"""Top-level dialplan keys with this prefix are ignored: use them to hold YAML anchors."""

COMPRESSED_FORMATS: Final = ("mp3", "ogg")
RECORDING_STARTS: Final = ("after_notice", "answer")
STATE_BACKENDS: Final = ("embedded",)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_NUMBER = re.compile(r"[A-Za-z0-9+*#._-]{1,64}")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_PORT_RANGE = re.compile(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*")


class ConfigErrors(ConfigError):
    """Every problem found in one load; ``str()`` lists one ``file: key: reason`` per line."""

    error_id = "config.invalid"

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        if not errors:
            raise ValueError("ConfigErrors needs at least one error")
        self.errors: list[ConfigError] = list(errors)
        first = self.errors[0]
        super().__init__(first.file, first.key, first.reason)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


@attrs.frozen(kw_only=True)
class CheckResult:
    """What ``ccswitch check`` reports: the config (None if any error), errors, warnings."""

    config: Config | None
    errors: list[ConfigError] = attrs.Factory(list)
    warnings: list[str] = attrs.Factory(list)

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.errors


# -- YAML with line numbers ------------------------------------------------------------


class _Map(dict[Any, Any]):
    """A YAML mapping that remembers its line, each key's line and repeated keys."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}
        self.duplicates: list[tuple[Any, int]] = []


class _Seq(list[Any]):
    """A YAML sequence that remembers its line and each item's line."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` building :class:`_Map` / :class:`_Seq` (still only safe types)."""


_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


def _construct_map(loader: yaml.SafeLoader, node: yaml.Node) -> _Map:
    assert isinstance(node, yaml.MappingNode)
    own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
    loader.flatten_mapping(node)
    merged = len(node.value) - own  # pairs from '<<' come first and may be overridden
    result = _Map(node.start_mark.line + 1)
    own_keys: set[Any] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                "found an unhashable key", key_node.start_mark)
        line = key_node.start_mark.line + 1
        if index < merged:
            result.key_lines.setdefault(key, line)
        elif key in own_keys:
            result.duplicates.append((key, line))
        else:
            own_keys.add(key)
            result.key_lines[key] = line
        result[key] = loader.construct_object(value_node, deep=True)
    return result


def _construct_seq(loader: yaml.SafeLoader, node: yaml.Node) -> _Seq:
    assert isinstance(node, yaml.SequenceNode)
    result = _Seq(node.start_mark.line + 1)
    for item in node.value:
        result.append(loader.construct_object(item, deep=True))
        result.item_lines.append(item.start_mark.line + 1)
    return result


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


class _Failed:
    """Marker: the file could not be read or parsed (the error is already recorded)."""


_FAILED: Final = _Failed()


# -- error collection ------------------------------------------------------------------


@attrs.define
class _Report:
    errors: list[ConfigError] = attrs.Factory(list)
    warnings: list[str] = attrs.Factory(list)


def _where(line: int | None) -> str:
    return f" (line {line})" if line else ""


@attrs.define
class _Checker:
    """Records problems found in one file."""

    file: str
    report: _Report

    def error(self, key: str, reason: str, line: int | None = None) -> None:
        self.report.errors.append(ConfigError(self.file, key, reason + _where(line)))

    def warn(self, key: str, reason: str, line: int | None = None) -> None:
        self.report.warnings.append(f"{self.file}: {key}: {reason}{_where(line)}")

    def read_yaml(self, path: Path) -> object:
        """The parsed YAML of ``path``, or ``_FAILED`` after recording why not."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.error(FILE_KEY, "file does not exist")
            return _FAILED
        except IsADirectoryError:
            self.error(FILE_KEY, "is a directory, not a YAML file")
            return _FAILED
        except UnicodeDecodeError as e:
            self.error(FILE_KEY, f"is not UTF-8 text (byte {e.start})")
            return _FAILED
        except OSError as e:
            self.error(FILE_KEY, f"cannot read: {e.strerror or e}")
            return _FAILED
        try:
            return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            problem = e.problem or e.context or "invalid YAML"
            if mark is None:
                self.error(FILE_KEY, f"YAML syntax error: {problem}")
            else:
                self.error(f"line {mark.line + 1}",
                           f"YAML syntax error: {problem} (column {mark.column + 1})")
            return _FAILED
        except yaml.YAMLError as e:
            self.error(FILE_KEY, f"YAML error: {e}")
            return _FAILED


def _join(path: str, name: object) -> str:
    return f"{path}.{name}" if path else str(name)


def _kind(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


@attrs.define
class _Section:
    """One YAML mapping being validated, with its dotted path in the file."""

    ck: _Checker
    data: _Map
    path: str

    def key(self, name: str) -> str:
        return _join(self.path, name)

    def line(self, name: str) -> int:
        return self.data.key_lines.get(name, self.data.line)

    def error(self, name: str, reason: str) -> None:
        self.ck.error(self.key(name), reason, self.line(name))

    def warn(self, name: str, reason: str) -> None:
        self.ck.warn(self.key(name), reason, self.line(name))

    def has(self, name: str) -> bool:
        return name in self.data

    def string(self, name: str, *, required: bool = False, what: str = "a string") -> str | None:
        if name not in self.data:
            return None
        value = self.data[name]
        if not isinstance(value, str):
            self.error(name, f"must be {what}, not {_kind(value)}")
            return None
        if not value.strip():
            self.error(name, f"must be {what}, not empty")
            return None
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            self.error(name, "must not contain control characters or line breaks")
            return None
        return value

    def number(self, name: str, *, minimum: float, inclusive: bool) -> float | None:
        if name not in self.data:
            return None
        value = self.data[name]
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.error(name, f"must be a number of seconds {bound}, not {_kind(value)}")
            return None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            self.error(name, f"must be a number of seconds {bound}, got {value!r}")
            return None
        return float(value)

    def integer(self, name: str, *, minimum: int, maximum: int | None = None) -> int | None:
        if name not in self.data:
            return None
        value = self.data[name]
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(name, f"must be a whole number {bounds}, not {_kind(value)}")
            return None
        if value < minimum or (maximum is not None and value > maximum):
            self.error(name, f"must be a whole number {bounds}, got {value}")
            return None
        return value

    def boolean(self, name: str) -> bool | None:
        if name not in self.data:
            return None
        value = self.data[name]
        if not isinstance(value, bool):
            self.error(name, f"must be true or false, not {_kind(value)}")
            return None
        return value


def _section(ck: _Checker, value: object, path: str, line: int, *,
             allowed: Collection[str], required: Collection[str] = (),
             what: str = "a mapping", extensions: bool = False) -> _Section | None:
    """Check that ``value`` is a mapping with only ``allowed`` keys and every ``required`` one.

    With ``extensions``, keys starting with ``x-`` are ignored (holders for YAML anchors).
    """
    key = path or FILE_KEY
    if not isinstance(value, _Map):
        ck.error(key, f"must be {what}, not {_kind(value)}", line)
        return None
    for dup, dup_line in value.duplicates:
        ck.error(_join(path, dup), "is given more than once in this mapping", dup_line)
    for name in value:
        if not isinstance(name, str):
            ck.error(_join(path, name), f"key must be a string, not {_kind(name)}",
                     value.key_lines.get(name, value.line))
        elif name not in allowed and not (extensions and name.startswith(EXTENSION_PREFIX)):
            close = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else (
                f" (allowed: {', '.join(sorted(allowed))})")
            ck.error(_join(path, name), f"unknown key{hint}", value.key_lines.get(name, line))
    for name in required:
        if name not in value:
            ck.error(_join(path, name), "is required", value.line)
    return _Section(ck=ck, data=value, path=path)


def _named_entries(ck: _Checker, value: object, path: str, line: int, what: str
                   ) -> list[tuple[str, object, int]]:
    """The (name, value, line) entries of a name->definition mapping, names checked."""
    if value is None:
        return []
    if not isinstance(value, _Map):
        ck.error(path, f"must be a mapping of {what} names to definitions, not {_kind(value)}",
                 line)
        return []
    for dup, dup_line in value.duplicates:
        ck.error(_join(path, dup), f"{what} {dup!r} is defined more than once in this file",
                 dup_line)
    entries = []
    for name, item in value.items():
        name_line = value.key_lines.get(name, value.line)
        if not isinstance(name, str):
            ck.error(_join(path, name), f"{what} name must be a string, not {_kind(name)} "
                     "(quote it)", name_line)
        elif not _NAME.fullmatch(name):
            ck.error(_join(path, name), f"{what} name must be 1-64 letters, digits, '_', '-' "
                     "or '.', starting with a letter or digit", name_line)
        else:
            entries.append((name, item, name_line))
    return entries


# -- small parsers (raise ValueError with an operator-facing reason) --------------------


def _parse_port(text: str, *, allow_zero: bool) -> int:
    if not text.isdigit() or len(text) > 5:
        raise ValueError(f"port {text!r} is not a number")
    port = int(text)
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise ValueError(f"port {port} is out of range {low}-65535")
    return port


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


def _parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` with an IP literal host; port 0 = any free port."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("missing ']' after the IPv6 address")
        host, rest = text[1:end], text[end + 1:]
        if not rest.startswith(":"):
            raise ValueError("expected [IPv6]:port, e.g. [::1]:5060")
        if _parse_ip(host).version != 6:
            raise ValueError("only IPv6 addresses go in brackets")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError("expected host:port, e.g. 127.0.0.1:5060")
        if ":" in host:
            raise ValueError("an IPv6 address must be in brackets, e.g. [::1]:5060")
        _parse_ip(host)
    return host, _parse_port(port_text, allow_zero=True)


def _uri_problem(uri: str) -> str | None:
    """Why ``uri`` is not a usable sip:/sips: URI with a host, or None."""
    scheme, colon, rest = uri.partition(":")
    if scheme.lower() not in ("sip", "sips") or not colon:
        return "must start with sip: or sips:"
    if any(c.isspace() for c in uri):
        return "must not contain spaces"
    hostport = re.split(r"[;?]", rest, maxsplit=1)[0].rpartition("@")[2]
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return "has no closing ']' after the IPv6 host"
        host, tail = hostport[1:end], hostport[end + 1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"host [{host}] is not an IPv6 address"
        if tail and not tail.startswith(":"):
            return f"unexpected {tail!r} after the host"
        port_text = tail[1:] if tail else None
    else:
        host, sep, port = hostport.partition(":")
        port_text = port if sep else None
        if not host:
            return "has no host"
        if not _HOSTNAME.fullmatch(host):
            return f"host {host!r} is not a valid host name or address"
    if port_text is not None:
        try:
            _parse_port(port_text, allow_zero=False)
        except ValueError as e:
            return str(e)
    return None


def _resolve(base: Path, text: str) -> Path:
    path = Path(text)
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def _wav_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable WAV file (checks the RIFF/WAVE header only), or None."""
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except FileNotFoundError:
        return f"file {_display(path)} does not exist"
    except IsADirectoryError:
        return f"{_display(path)} is a directory, not a WAV file"
    except PermissionError:
        return f"file {_display(path)} is not readable (permission denied)"
    except OSError as e:
        return f"cannot read {_display(path)}: {e.strerror or e}"
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return f"{_display(path)} is not a WAV file (no RIFF/WAVE header)"
    return None


# -- service config ---------------------------------------------------------------------


def _sound(sec: _Section, name: str, base: Path) -> Path | None:
    """A readable WAV file named by ``name`` (relative to ``base``), or None (absent, or
    the error is recorded)."""
    text = sec.string(name, what="a WAV file path")
    if text is None:
        return None
    path = _resolve(base, text)
    problem = _wav_problem(path)
    if problem is not None:
        sec.error(name, problem)
        return None
    return path


def _listen(sec: _Section, name: str) -> tuple[str, int] | None:
    text = sec.string(name, what="host:port, e.g. 127.0.0.1:5060")
    if text is None:
        return None
    try:
        return _parse_listen(text)
    except ValueError as e:
        sec.error(name, str(e))
        return None


def _parse_sip(ck: _Checker, value: object, line: int) -> SipConfig | None:
    sec = _section(ck, value, "sip", line, required=("listen", "trusted"), allowed=(
        "listen", "advertised_address", "trusted", "user_agent", "max_message_size",
        "max_calls", "max_call_rate", "retry_after", "flood"))
    if sec is None:
        return None
    before = len(ck.report.errors)
    listen = _listen(sec, "listen")
    advertised = sec.string("advertised_address", what="a host name or IP address")
    if advertised is not None:
        advertised = advertised.strip()
        if advertised.startswith("[") and advertised.endswith("]"):
            advertised = advertised[1:-1]
        try:
            if ipaddress.ip_address(advertised).is_unspecified:
                sec.error("advertised_address", f"{advertised} is a wildcard; give the "
                          "address other SIP peers reach this node at")
        except ValueError:
            if not _HOSTNAME.fullmatch(advertised):
                sec.error("advertised_address", f"{advertised!r} is not a host name or "
                          "IP address (no port here)")
    elif listen is not None and ipaddress.ip_address(listen[0]).is_unspecified:
        sec.error("listen", f"listening on the wildcard {listen[0]} needs "
                  "sip.advertised_address (the address peers send SIP to)")
    trusted: list[IPNetwork] = []
    raw = sec.data.get("trusted")
    if sec.has("trusted"):
        if not isinstance(raw, list):
            sec.error("trusted", f"must be a list of CIDR networks, not {_kind(raw)}")
        else:
            lines = raw.item_lines if isinstance(raw, _Seq) else []
            for i, item in enumerate(raw):
                item_line = lines[i] if i < len(lines) else sec.line("trusted")
                if not isinstance(item, str):
                    ck.error(f"sip.trusted[{i}]", f"must be a CIDR string such as "
                             f"10.0.0.0/8, not {_kind(item)}", item_line)
                    continue
                try:
                    trusted.append(ipaddress.ip_network(item.strip(), strict=True))
                except ValueError as e:
                    ck.error(f"sip.trusted[{i}]", f"invalid CIDR: {e}", item_line)
            if not raw:
                sec.warn("trusted", "is empty: every INVITE will be rejected")
    user_agent = sec.string("user_agent")
    max_size = sec.integer("max_message_size", minimum=1024, maximum=65535)
    max_calls = sec.integer("max_calls", minimum=0)
    max_call_rate = sec.number("max_call_rate", minimum=0, inclusive=False)
    retry_after = sec.integer("retry_after", minimum=1, maximum=3600)
    flood = _parse_flood(sec, tuple(trusted))
    if listen is None or flood is None or len(ck.report.errors) > before:
        return None
    host = advertised if advertised is not None else listen[0]
    return SipConfig(
        listen_host=listen[0], listen_port=listen[1], advertised_host=host,
        trusted=tuple(trusted), user_agent=user_agent.strip() if user_agent else "ccswitch",
        max_message_size=max_size if max_size is not None else 65535,
        admission=AdmissionConfig(max_calls=max_calls, max_call_rate=max_call_rate,
                                  retry_after=5 if retry_after is None else retry_after),
        flood=flood)


def _parse_flood(sip: _Section, trusted: tuple[IPNetwork, ...]) -> GuardConfig | None:
    """``sip.flood``: per-source limits. The trusted networks are always exempt (a
    spoofed flood must not get the PBX banned), plus any listed under ``exempt``."""
    if sip.data.get("flood") is None:
        return GuardConfig(exempt=trusted)
    sec = _section(sip.ck, sip.data["flood"], sip.key("flood"), sip.line("flood"),
                   allowed=("rate", "burst", "ban_after", "ban_seconds", "exempt",
                            "scanner_agents"))
    if sec is None:
        return None
    before = len(sip.ck.report.errors)
    fields: dict[str, Any] = {}
    for name, value in (("rate", sec.number("rate", minimum=0, inclusive=False)),
                        ("burst", sec.integer("burst", minimum=1)),
                        ("ban_after", sec.integer("ban_after", minimum=1)),
                        ("ban_seconds", sec.number("ban_seconds", minimum=0, inclusive=False))):
        if value is not None:
            fields[name] = value
    exempt = list(trusted)
    for i, item in enumerate(sec.data.get("exempt") or ()):
        try:
            exempt.append(ipaddress.ip_network(str(item).strip(), strict=True))
        except ValueError as e:
            sip.ck.error(f"{sec.key('exempt')}[{i}]", f"invalid CIDR: {e}", sec.line("exempt"))
    if sec.has("scanner_agents"):
        agents = sec.data["scanner_agents"]
        if not isinstance(agents, list) or not all(isinstance(a, str) and a for a in agents):
            sec.error("scanner_agents", "must be a list of User-Agent substrings")
        else:
            fields["scanner_agents"] = tuple(agents)
    if len(sip.ck.report.errors) > before:
        return None
    try:
        return GuardConfig(exempt=tuple(exempt), **fields)
    except ValueError as e:
        sip.error("flood", str(e))
        return None


def _parse_rtp(ck: _Checker, value: object, line: int) -> RtpConfig | None:
    sec = _section(ck, value, "rtp", line, allowed=("address", "ports", "timeout"),
                   required=("address", "ports"))
    if sec is None:
        return None
    address = sec.string("address", what="an IP address")
    ports = sec.string("ports", what="a port range such as 20000-29999")
    timeout = sec.number("timeout", minimum=0, inclusive=True)
    ok = address is not None and ports is not None and (
        timeout is not None or not sec.has("timeout"))
    if address is not None:
        try:
            if _parse_ip(address.strip()).is_unspecified:
                sec.error("address", f"{address} is a wildcard; RTP needs the concrete "
                          "address that is sent to phones in SDP")
                ok = False
        except ValueError as e:
            sec.error("address", str(e))
            ok = False
    port_min = port_max = 0
    if ports is not None:
        match = _PORT_RANGE.fullmatch(ports)
        if match is None:
            sec.error("ports", f"must be a range like 20000-29999, got {ports!r}")
            ok = False
        else:
            port_min, port_max = int(match.group(1)), int(match.group(2))
            if not (1 <= port_min <= 65535 and 1 <= port_max <= 65535):
                sec.error("ports", "ports must be between 1 and 65535")
                ok = False
            elif port_min % 2:
                sec.error("ports", f"must start on an even port (RTP even, RTCP odd), "
                          f"got {port_min}")
                ok = False
            elif port_max - port_min < 1:
                sec.error("ports", "range must hold at least 2 ports")
                ok = False
    if not ok or address is None:
        return None
    return RtpConfig(address=address.strip(), port_min=port_min, port_max=port_max,
                     timeout=60.0 if timeout is None else timeout)


def _parse_http(ck: _Checker, value: object, line: int, base: Path) -> HttpConfig | None:
    sec = _section(ck, value, "http", line, allowed=("listen", "api_token_file"),
                   required=("listen",))
    if sec is None:
        return None
    listen = _listen(sec, "listen")
    token_file: Path | None = None
    text = sec.string("api_token_file", what="a file path")
    if text is not None:
        token_file = _resolve(base, text)
        problem = _token_problem(token_file)
        if problem is not None:
            sec.error("api_token_file", problem)
            return None
        if token_file.stat().st_mode & 0o077:
            sec.warn("api_token_file", f"{_display(token_file)} is readable by other users; "
                     "chmod 600 it")
    if listen is None:
        return None
    return HttpConfig(listen_host=listen[0], listen_port=listen[1], api_token_file=token_file)


#: Shortest API token accepted (characters): guessing must be hopeless.
MIN_TOKEN_LENGTH: Final = 24


def read_token(path: Path) -> str:
    """The API token in ``path`` (surrounding whitespace removed); ValueError if unusable."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read {_display(path)}: {e}") from e
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() or ord(c) < 33 for c in token):
        raise ValueError(f"{_display(path)} must hold one token of at least "
                         f"{MIN_TOKEN_LENGTH} printable characters without spaces "
                         "(e.g. made by: openssl rand -hex 32)")
    return token


def _token_problem(path: Path) -> str | None:
    try:
        read_token(path)
    except ValueError as e:
        return str(e)
    return None


def _parse_recordings(ck: _Checker, value: object, line: int, base: Path
                      ) -> RecordingConfig | None:
    sec = _section(ck, value, "recordings", line,
                   allowed=("directory", "compressed_copy", "start"), required=("directory",))
    if sec is None:
        return None
    text = sec.string("directory", what="a directory path")
    fmt = sec.data.get("compressed_copy")
    ok = text is not None
    if fmt is not None and fmt not in COMPRESSED_FORMATS:
        sec.error("compressed_copy", f"must be null or one of {', '.join(COMPRESSED_FORMATS)}, "
                  f"got {fmt!r}")
        ok = False
    start = sec.data.get("start", "after_notice")
    if start not in RECORDING_STARTS:
        sec.error("start", f"must be one of {', '.join(RECORDING_STARTS)}, got {start!r}")
        ok = False
    if text is None:
        return None
    directory = _resolve(base, text)
    if directory.exists() and not directory.is_dir():
        sec.error("directory", f"{_display(directory)} exists and is not a directory")
        ok = False
    if not ok:
        return None
    return RecordingConfig(directory=directory, compressed_format=fmt, start=str(start))


def _parse_cdr(ck: _Checker, value: object, line: int, base: Path,
               recordings: RecordingConfig | None) -> CdrConfig | None:
    """``cdr:`` (optional): database path (default: cdr.sqlite in the recordings directory)
    and an optional JSON-lines copy."""
    if value is None:
        if recordings is None:
            return None
        return CdrConfig(database=recordings.directory / "cdr.sqlite")
    sec = _section(ck, value, "cdr", line, allowed=("database", "jsonl"))
    if sec is None:
        return None
    ok = True
    paths: dict[str, Path | None] = {"database": None, "jsonl": None}
    for key in paths:
        if not sec.has(key) or sec.data.get(key) is None:
            continue
        text = sec.string(key, what="a file path")
        if text is None:
            ok = False
            continue
        path = _resolve(base, text)
        if path.exists() and not path.is_file():
            sec.error(key, f"{_display(path)} exists and is not a file")
            ok = False
        paths[key] = path
    if not ok:
        return None
    database = paths["database"]
    if database is None:
        if recordings is None:
            return None
        database = recordings.directory / "cdr.sqlite"
    return CdrConfig(database=database, jsonl=paths["jsonl"])


def _parse_state(sec: _Section) -> str | None:
    """``state``: ``embedded`` (one node) or a Redis URL shared by every node of the
    center: ``redis://[:password@]host:port/db``, ``rediss://...`` (TLS) or
    ``redis+sentinel://host1:port1,host2:port2/service/db``."""
    if not sec.has("state"):
        return "embedded"
    state = sec.string("state", what="'embedded' or a redis:// URL")
    if state is None:
        return None
    state = state.strip()
    if state in STATE_BACKENDS:
        return state
    if state.startswith(REDIS_SCHEMES):
        try:
            check_url(state)
        except StateUrlError as e:
            sec.error("state", str(e))
            return None
        return state
    sec.error("state", f"unknown state backend {state!r}; use 'embedded' or a URL starting "
              f"with {', '.join(REDIS_SCHEMES)}")
    return None


REDIS_SCHEMES: Final = ("redis://", "rediss://", "redis+sentinel://")


def _check_port_clash(ck: _Checker, sip: SipConfig, rtp: RtpConfig, line: int) -> None:
    """The SIP UDP port must not fall inside the RTP range on the same address."""
    same_host = (sip.listen_host == rtp.address
                 or ipaddress.ip_address(sip.listen_host).is_unspecified)
    if same_host and rtp.port_min <= sip.listen_port <= rtp.port_max:
        ck.error("rtp.ports", f"range {rtp.port_min}-{rtp.port_max} contains the SIP port "
                 f"{sip.listen_port}", line)


def _check(path: Path) -> tuple[Config | None, _Report]:
    report = _Report()
    ck = _Checker(str(path), report)
    data = ck.read_yaml(path)
    if isinstance(data, _Failed):
        return None, report
    top = _section(ck, data, "", 1, what="a mapping with sip, rtp, http, recordings, dialplans",
                   allowed=("sip", "rtp", "http", "recordings", "cdr", "dialplans", "state",
                            "node", "hold_ttl"),
                   required=("sip", "rtp", "http", "recordings", "dialplans"))
    if top is None:
        return None, report
    base = path.absolute().parent
    sip = _parse_sip(ck, top.data["sip"], top.line("sip")) if top.has("sip") else None
    rtp = _parse_rtp(ck, top.data["rtp"], top.line("rtp")) if top.has("rtp") else None
    http = (_parse_http(ck, top.data["http"], top.line("http"), base) if top.has("http")
            else None)
    recordings = (_parse_recordings(ck, top.data["recordings"], top.line("recordings"), base)
                  if top.has("recordings") else None)
    cdr = _parse_cdr(ck, top.data.get("cdr"), top.line("cdr") if top.has("cdr") else 1,
                     base, recordings)
    state = _parse_state(top)
    hold_ttl = top.number("hold_ttl", minimum=1, inclusive=True)
    node = top.string("node", what="a node name")
    if node is not None and not _NAME.fullmatch(node):
        top.error("node", "must be 1-64 letters, digits, '_', '-' or '.'")
        node = None
    if sip is not None and rtp is not None:
        _check_port_clash(ck, sip, rtp, top.line("rtp"))
    dialplan_dir: Path | None = None
    dialplan: Dialplan | None = None
    text = top.string("dialplans", what="a directory path")
    if text is not None:
        dialplan_dir = _resolve(base, text)
        dialplan = _load_dir(dialplan_dir, report, ck, "dialplans", top.line("dialplans"))
    if (report.errors or sip is None or rtp is None or http is None or recordings is None
            or cdr is None or state is None or dialplan_dir is None or dialplan is None):
        return None, report
    return Config(sip=sip, rtp=rtp, http=http, recordings=recordings, cdr=cdr,
                  dialplan_dir=dialplan_dir, dialplan=dialplan, state=state,
                  node=node or f"{socket.gethostname()}-{sip.listen_port}",
                  hold_ttl=15.0 if hold_ttl is None else hold_ttl,
                  source=path.absolute()), report


# -- dialplans --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Def(Generic[T]):
    """A definition from a dialplan file: the value (None if invalid) and where it was."""

    value: T | None
    file: str
    key: str
    line: int


@attrs.define
class _Parsed:
    """One dialplan file's definitions, not yet cross-checked."""

    agents: dict[str, _Def[Agent]] = attrs.Factory(dict)
    groups: dict[str, _Def[Group]] = attrs.Factory(dict)
    group_members: dict[str, list[tuple[str, str, int]]] = attrs.Factory(dict)
    queues: dict[str, _Def[Queue]] = attrs.Factory(dict)
    queue_groups: dict[str, tuple[str, str, int]] = attrs.Factory(dict)
    routes: list[_Def[Route]] = attrs.Factory(list)
    route_queues: dict[str, tuple[str, str, int]] = attrs.Factory(dict)
    vendors: dict[str, _Def[Vendor]] = attrs.Factory(dict)
    calendars: dict[str, _Def[Calendar]] = attrs.Factory(dict)
    # (name, key, line) of every vendor / calendar a queue or vendor names
    vendor_refs: list[tuple[str, str, int]] = attrs.Factory(list)
    calendar_refs: list[tuple[str, str, int]] = attrs.Factory(list)


def _parse_agent(ck: _Checker, name: str, value: object, line: int) -> Agent | None:
    sec = _section(ck, value, f"agents.{name}", line,
                   allowed=("uri", "name", "logged_in", "no_response_timeout", "probe_interval"),
                   required=("uri",), what="a mapping with uri (and optionally name, logged_in, "
                                           "no_response_timeout, probe_interval)")
    if sec is None:
        return None
    before = len(ck.report.errors)
    uri = sec.string("uri", what="a SIP URI such as sip:alice@10.0.0.5")
    if uri is not None:
        problem = _uri_problem(uri.strip())
        if problem is not None:
            sec.error("uri", f"{uri!r} {problem}")
    display = sec.string("name")
    logged_in = sec.boolean("logged_in")
    no_response = sec.number("no_response_timeout", minimum=0, inclusive=True)
    probe_interval = sec.number("probe_interval", minimum=0, inclusive=False)
    if uri is None or len(ck.report.errors) > before:
        return None
    return Agent(id=name, uri=uri.strip(), name=display,
                 logged_in=True if logged_in is None else logged_in,
                 no_response_timeout=3.0 if no_response is None else no_response,
                 probe_interval=10.0 if probe_interval is None else probe_interval)


def _parse_queue(ck: _Checker, parsed: _Parsed, name: str, value: object, line: int,
                 base: Path) -> Queue | None:
    sec = _section(ck, value, f"queues.{name}", line, required=("group", "announcement"),
                   allowed=("group", "strategy", "announcement", "music_on_hold",
                            "ring_timeout", "max_misses", "wrap_up", "short_abandon",
                            "overflow", "max_wait", "inhouse_takeover"))
    if sec is None:
        return None
    before = len(ck.report.errors)
    group = sec.string("group", what="a group name")
    if group is not None:
        parsed.queue_groups[name] = (group, sec.key("group"), sec.line("group"))
    strategy = Strategy.LONGEST_IDLE
    if sec.has("strategy"):
        raw = sec.data["strategy"]
        choices = ", ".join(s.value for s in Strategy)
        try:
            strategy = Strategy(raw)
        except (ValueError, TypeError):
            sec.error("strategy", f"unknown strategy {raw!r}; choose one of {choices}")
    sounds: dict[str, Path] = {}
    for field in ("announcement", "music_on_hold"):
        if field == "music_on_hold" and sec.data.get(field, None) is None:
            continue
        path = _sound(sec, field, base)
        if path is not None:
            sounds[field] = path
    ring_timeout = sec.number("ring_timeout", minimum=0, inclusive=False)
    max_misses = sec.integer("max_misses", minimum=1)
    wrap_up = sec.number("wrap_up", minimum=0, inclusive=True)
    short_abandon = sec.number("short_abandon", minimum=0, inclusive=True)
    takeover = sec.boolean("inhouse_takeover")
    rules = _parse_overflow(sec, parsed)
    max_wait = _parse_max_wait(sec, parsed, base)
    if group is None or "announcement" not in sounds or len(ck.report.errors) > before:
        return None
    return Queue(
        name=name, group=group, strategy=strategy, announcement=sounds["announcement"],
        music_on_hold=sounds.get("music_on_hold"), overflow=rules, max_wait=max_wait,
        inhouse_takeover=True if takeover is None else takeover,
        ring_timeout=15.0 if ring_timeout is None else ring_timeout,
        max_misses=3 if max_misses is None else max_misses,
        wrap_up=5.0 if wrap_up is None else wrap_up,
        short_abandon=5.0 if short_abandon is None else short_abandon)


_CONDITIONS = tuple(c.value for c in Condition)


def _vendor_list(sec: _Section, parsed: _Parsed, name: str) -> tuple[str, ...] | None:
    """A non-empty list of vendor names (``to:``); references are checked at merge."""
    value = sec.data.get(name)
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, str) and _NAME.fullmatch(v) for v in value)):
        sec.error(name, f"must be a non-empty list of vendor names, not {_kind(value)}")
        return None
    if len(set(value)) != len(value):
        sec.error(name, "names a vendor twice")
        return None
    for i, vendor in enumerate(value):
        parsed.vendor_refs.append((vendor, f"{sec.key(name)}[{i}]", sec.line(name)))
    return tuple(value)


def _parse_overflow(queue: _Section, parsed: _Parsed) -> tuple[OverflowRule, ...]:
    """``overflow:``: ordered rules, each one condition key plus ``to`` (share names its vendor)."""
    if queue.data.get("overflow") is None:
        return ()
    raw = queue.data["overflow"]
    if not isinstance(raw, list):
        queue.error("overflow", f"must be a list of rules, not {_kind(raw)}")
        return ()
    lines = raw.item_lines if isinstance(raw, _Seq) else []
    rules: list[OverflowRule] = []
    shares: dict[str, float] = {}
    total_share = 0.0
    for i, item in enumerate(raw):
        path = queue.key(f"overflow[{i}]")
        line = lines[i] if i < len(lines) else queue.line("overflow")
        sec = _section(queue.ck, item, path, line, allowed=(*_CONDITIONS, "to"),
                       what=f"a mapping with one condition ({', '.join(_CONDITIONS)}) and to")
        if sec is None:
            continue
        given = [c for c in _CONDITIONS if c in sec.data]
        if len(given) != 1:
            queue.ck.error(path, "needs exactly one condition, got "
                           f"{', '.join(given) if given else 'none'}", line)
            continue
        condition = Condition(given[0])
        rule = _parse_rule(sec, parsed, condition)
        if rule is None:
            continue
        if rule.percent is not None:
            vendor = rule.vendors[0]
            if vendor in shares:
                sec.error("share", f"vendor {vendor!r} already has a share in this queue")
                continue
            shares[vendor] = rule.percent
            total_share += rule.percent
            if total_share > 100 + 1e-9:
                sec.error("share", f"shares of this queue add up to {total_share:g} %, over 100 %")
                continue
        rules.append(rule)
    return tuple(rules)


def _parse_rule(sec: _Section, parsed: _Parsed, condition: Condition) -> OverflowRule | None:
    name = condition.value
    before = len(sec.ck.report.errors)
    if condition is Condition.SHARE:
        if sec.has("to"):
            sec.error("to", "a share rule names its vendor in share.vendor; remove to")
            return None
        share = _section(sec.ck, sec.data[name], sec.key(name), sec.line(name),
                         allowed=("vendor", "percent"), required=("vendor", "percent"),
                         what="a mapping with vendor and percent")
        if share is None:
            return None
        vendors = _vendor_list_of_one(share, parsed)
        percent = _percent(share, "percent")
        if vendors is None or percent is None:
            return None
        return OverflowRule(condition=condition, vendors=vendors, percent=percent)
    if not sec.has("to"):
        sec.error(name, "the rule needs to: [vendor, ...]")
        return None
    vendors = _vendor_list(sec, parsed, "to")
    fields: dict[str, Any] = {}
    value = sec.data[name]
    if condition is Condition.WAIT_EXCEEDS:
        fields["seconds"] = sec.number(name, minimum=0, inclusive=True)
    elif condition is Condition.QUEUE_LENGTH_EXCEEDS:
        fields["length"] = sec.integer(name, minimum=0)
    elif condition in (Condition.NO_AGENTS_LOGGED_IN, Condition.NO_AGENTS_AVAILABLE):
        if value is not True:
            sec.error(name, f"must be true (write '{name}: true'), not {_kind(value)}")
    elif condition is Condition.OUTSIDE_HOURS:
        calendar = sec.string(name, what="a calendar name")
        if calendar is not None:
            parsed.calendar_refs.append((calendar, sec.key(name), sec.line(name)))
        fields["calendar"] = calendar
    else:
        fields["service_level"] = _parse_service_level(sec, name)
    if vendors is None or len(sec.ck.report.errors) > before:
        return None
    return OverflowRule(condition=condition, vendors=vendors, **fields)


def _vendor_list_of_one(sec: _Section, parsed: _Parsed) -> tuple[str, ...] | None:
    vendor = sec.string("vendor", what="a vendor name")
    if vendor is None:
        return None
    parsed.vendor_refs.append((vendor, sec.key("vendor"), sec.line("vendor")))
    return (vendor,)


def _percent(sec: _Section, name: str) -> float | None:
    value = sec.data.get(name)
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not 0 < value <= 100):
        sec.error(name, f"must be a percentage above 0 and at most 100, got {value!r}")
        return None
    return float(value)


def _parse_service_level(rule: _Section, name: str) -> ServiceLevel | None:
    sec = _section(rule.ck, rule.data[name], rule.key(name), rule.line(name),
                   allowed=("percent", "within", "window", "hysteresis", "min_calls"),
                   required=("percent", "within", "window"),
                   what="a mapping with percent, within and window")
    if sec is None or not all(sec.has(k) for k in ("percent", "within", "window")):
        return None
    percent = _percent(sec, "percent")
    within = sec.number("within", minimum=0, inclusive=False)
    window = sec.number("window", minimum=0, inclusive=False)
    hysteresis = sec.number("hysteresis", minimum=0, inclusive=True)
    min_calls = sec.integer("min_calls", minimum=1)
    if percent is None or within is None or window is None:
        return None
    if window < within:
        sec.error("window", f"must be at least within ({within:g} s), got {window:g}")
        return None
    return ServiceLevel(percent=percent, within=within, window=window,
                        hysteresis=5.0 if hysteresis is None else hysteresis,
                        min_calls=10 if min_calls is None else min_calls)


def _parse_max_wait(queue: _Section, parsed: _Parsed, base: Path) -> MaxWait | None:
    if queue.data.get("max_wait") is None:
        return None
    sec = _section(queue.ck, queue.data["max_wait"], queue.key("max_wait"),
                   queue.line("max_wait"), allowed=("seconds", "to", "announcement"),
                   required=("seconds",), what="a mapping with seconds (and to, announcement)")
    if sec is None:
        return None
    before = len(sec.ck.report.errors)
    seconds = sec.number("seconds", minimum=0, inclusive=False)
    vendors = _vendor_list(sec, parsed, "to") if sec.has("to") else ()
    announcement = _sound(sec, "announcement", base)
    if seconds is None or vendors is None or len(sec.ck.report.errors) > before:
        return None
    return MaxWait(seconds=seconds, vendors=vendors, announcement=announcement)


def _parse_vendor(ck: _Checker, parsed: _Parsed, name: str, value: object, line: int
                  ) -> Vendor | None:
    sec = _section(ck, value, f"vendors.{name}", line, required=("trunks", "max_channels"),
                   allowed=("trunks", "max_channels", "schedule", "username", "password",
                            "ring_timeout", "failures", "cooldown", "probe_interval"),
                   what="a mapping with trunks and max_channels")
    if sec is None:
        return None
    before = len(ck.report.errors)
    trunks = sec.data.get("trunks")
    if isinstance(trunks, str):
        trunks = [trunks]
    if not isinstance(trunks, list) or not trunks:
        sec.error("trunks", f"must be a list of SIP URIs, not {_kind(trunks)}")
        trunks = []
    for i, uri in enumerate(trunks):
        problem = _uri_problem(uri.strip()) if isinstance(uri, str) else "is not a string"
        if problem is not None:
            ck.error(f"{sec.key('trunks')}[{i}]", f"{uri!r} {problem}", sec.line("trunks"))
    max_channels = sec.integer("max_channels", minimum=1)
    schedule = sec.string("schedule", what="a calendar name")
    if schedule is not None:
        parsed.calendar_refs.append((schedule, sec.key("schedule"), sec.line("schedule")))
    username = sec.string("username")
    password = sec.data.get("password")
    if password is not None and not isinstance(password, str):
        sec.error("password", f"must be a string (quote it), not {_kind(password)}")
    if (username is None) != (password is None):
        sec.error("username" if username is None else "password",
                  "username and password go together")
    ring_timeout = sec.number("ring_timeout", minimum=0, inclusive=False)
    failures = sec.integer("failures", minimum=1)
    cooldown = sec.number("cooldown", minimum=0, inclusive=False)
    probe_interval = sec.number("probe_interval", minimum=0, inclusive=True)
    if max_channels is None or len(ck.report.errors) > before:
        return None
    return Vendor(
        name=name, trunks=tuple(t.strip() for t in trunks), max_channels=max_channels,
        schedule=schedule, username=username, password=password if username else None,
        ring_timeout=30.0 if ring_timeout is None else ring_timeout,
        failures=3 if failures is None else failures,
        cooldown=60.0 if cooldown is None else cooldown,
        probe_interval=30.0 if probe_interval is None else probe_interval)


def _parse_calendar(ck: _Checker, name: str, value: object, line: int) -> Calendar | None:
    try:
        return Calendar.from_dict(name, value)
    except CalendarError as e:
        ck.error(f"calendars.{name}.{e.key}" if e.key else f"calendars.{name}", e.reason, line)
        return None


def _parse_route(ck: _Checker, parsed: _Parsed, index: int, value: object, line: int
                 ) -> Route | None:
    path = f"routes[{index}]"
    sec = _section(ck, value, path, line, allowed=("number", "pattern", "queue"),
                   required=("queue",), what="a mapping with queue and number or pattern")
    if sec is None:
        return None
    before = len(ck.report.errors)
    queue = sec.string("queue", what="a queue name")
    if queue is not None:
        parsed.route_queues[path] = (queue, sec.key("queue"), sec.line("queue"))
    has_number, has_pattern = sec.has("number"), sec.has("pattern")
    number: str | None = None
    pattern: re.Pattern[str] | None = None
    if has_number and has_pattern:
        ck.error(path, "has both number and pattern; give exactly one", line)
    elif not has_number and not has_pattern:
        ck.error(path, "needs a number or a pattern", line)
    elif has_number:
        raw = sec.data["number"]
        if isinstance(raw, int) and not isinstance(raw, bool):
            sec.error("number", f"must be a quoted string, e.g. \"{raw}\" (unquoted digits are "
                      "read as a number and lose leading zeros)")
        elif not isinstance(raw, str) or not _NUMBER.fullmatch(raw):
            sec.error("number", f"must be 1-64 digits, letters or + * # . _ -, got {raw!r}")
        else:
            number = raw
    else:
        raw = sec.data["pattern"]
        if not isinstance(raw, str) or not raw:
            sec.error("pattern", f"must be a regular expression string, not {_kind(raw)}")
        else:
            try:
                pattern = re.compile(raw)
            except re.error as e:
                sec.error("pattern", f"invalid regular expression: {e}")
    if queue is None or len(ck.report.errors) > before:
        return None
    return Route(queue=queue, number=number, pattern=pattern)


def _display(path: Path) -> str:
    """``path`` as shown in messages: relative to the working directory when under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _parse_dialplan(path: Path, report: _Report) -> _Parsed:
    ck = _Checker(_display(path), report)
    parsed = _Parsed()
    data = ck.read_yaml(path)
    if isinstance(data, _Failed):
        return parsed
    if data is None:
        ck.warn(FILE_KEY, "file is empty")
        return parsed
    top = _section(ck, data, "", 1,
                   allowed=("agents", "groups", "queues", "routes", "vendors", "calendars"),
                   what="a mapping with agents, groups, queues and routes", extensions=True)
    if top is None:
        return parsed
    base = path.absolute().parent
    file = ck.file
    for name, value, line in _named_entries(ck, top.data.get("agents"), "agents",
                                            top.line("agents"), "agent"):
        agent = _parse_agent(ck, name, value, line)
        parsed.agents[name] = _Def(value=agent, file=file, key=f"agents.{name}", line=line)
    for name, value, line in _named_entries(ck, top.data.get("groups"), "groups",
                                            top.line("groups"), "group"):
        key = f"groups.{name}"
        members: list[tuple[str, str, int]] = []
        if value is None:
            value = _Seq(line)
        if not isinstance(value, list):
            ck.error(key, f"must be a list of agent names, not {_kind(value)}", line)
            parsed.groups[name] = _Def(value=None, file=file, key=key, line=line)
            continue
        lines = value.item_lines if isinstance(value, _Seq) else []
        ok = True
        for i, member in enumerate(value):
            member_line = lines[i] if i < len(lines) else line
            if not isinstance(member, str):
                ck.error(f"{key}[{i}]", f"must be an agent name, not {_kind(member)}",
                         member_line)
                ok = False
            elif any(m == member for m, _, _ in members):
                ck.error(f"{key}[{i}]", f"agent {member!r} is listed twice", member_line)
                ok = False
            else:
                members.append((member, f"{key}[{i}]", member_line))
        if not value:
            ck.warn(key, "group has no agents", line)
        parsed.group_members[name] = members
        group = Group(name=name, agents=tuple(m for m, _, _ in members)) if ok else None
        parsed.groups[name] = _Def(value=group, file=file, key=key, line=line)
    for name, value, line in _named_entries(ck, top.data.get("calendars"), "calendars",
                                            top.line("calendars"), "calendar"):
        calendar = _parse_calendar(ck, name, value, line)
        parsed.calendars[name] = _Def(value=calendar, file=file, key=f"calendars.{name}",
                                      line=line)
    for name, value, line in _named_entries(ck, top.data.get("vendors"), "vendors",
                                            top.line("vendors"), "vendor"):
        vendor = _parse_vendor(ck, parsed, name, value, line)
        parsed.vendors[name] = _Def(value=vendor, file=file, key=f"vendors.{name}", line=line)
    for name, value, line in _named_entries(ck, top.data.get("queues"), "queues",
                                            top.line("queues"), "queue"):
        queue = _parse_queue(ck, parsed, name, value, line, base)
        parsed.queues[name] = _Def(value=queue, file=file, key=f"queues.{name}", line=line)
    routes = top.data.get("routes")
    if isinstance(routes, list):
        lines = routes.item_lines if isinstance(routes, _Seq) else []
        for i, value in enumerate(routes):
            line = lines[i] if i < len(lines) else top.line("routes")
            route = _parse_route(ck, parsed, i, value, line)
            parsed.routes.append(_Def(value=route, file=file, key=f"routes[{i}]", line=line))
    elif routes is not None:
        top.error("routes", f"must be a list of routes, not {_kind(routes)}")
    return parsed


def _merge_names(kind: str, mine: dict[str, _Def[T]], merged: dict[str, _Def[T]],
                 report: _Report) -> None:
    """Add one file's definitions to ``merged``; a name already there is an error."""
    for name, item in mine.items():
        first = merged.setdefault(name, item)
        if first is not item:
            report.errors.append(ConfigError(
                item.file, item.key, f"{kind} {name!r} is already defined in "
                f"{first.file} at line {first.line}{_where(item.line)}"))


def _merge(files: Sequence[Path], parts: Sequence[_Parsed], report: _Report) -> Dialplan | None:
    """Merge per-file definitions, check names are unique and every reference resolves."""
    def error(d_file: str, key: str, reason: str, line: int) -> None:
        report.errors.append(ConfigError(d_file, key, reason + _where(line)))

    def warn(d_file: str, key: str, reason: str, line: int) -> None:
        report.warnings.append(f"{d_file}: {key}: {reason}{_where(line)}")

    agents: dict[str, _Def[Agent]] = {}
    groups: dict[str, _Def[Group]] = {}
    queues: dict[str, _Def[Queue]] = {}
    vendors: dict[str, _Def[Vendor]] = {}
    calendars: dict[str, _Def[Calendar]] = {}
    for part in parts:
        _merge_names("agent", part.agents, agents, report)
        _merge_names("group", part.groups, groups, report)
        _merge_names("queue", part.queues, queues, report)
        _merge_names("vendor", part.vendors, vendors, report)
        _merge_names("calendar", part.calendars, calendars, report)
    used_vendors: set[str] = set()
    for files_part, part in zip(files, parts):
        file = _display(files_part)
        for vendor, key, line in part.vendor_refs:
            used_vendors.add(vendor)
            if vendor not in vendors:
                error(file, key, f"unknown vendor {vendor!r}", line)
        for calendar, key, line in part.calendar_refs:
            if calendar not in calendars:
                error(file, key, f"unknown calendar {calendar!r}", line)
    for name, vdef in vendors.items():
        if name not in used_vendors:
            warn(vdef.file, vdef.key, "vendor is not used by any queue", vdef.line)
    routed: set[str] = set()
    numbers: dict[str, _Def[Route]] = {}
    for part in parts:
        for name, members in part.group_members.items():
            for member, key, line in members:
                if member not in agents:
                    error(part.groups[name].file, key, f"unknown agent {member!r}", line)
        for name, (group, key, line) in part.queue_groups.items():
            if group not in groups:
                error(part.queues[name].file, key, f"unknown group {group!r}", line)
        for rdef in part.routes:
            ref = part.route_queues.get(rdef.key)
            if ref is not None:
                routed.add(ref[0])
                if ref[0] not in queues:
                    error(rdef.file, ref[1], f"unknown queue {ref[0]!r}", ref[2])
            route = rdef.value
            if route is not None and route.number is not None:
                first = numbers.setdefault(route.number, rdef)
                if first is not rdef:
                    error(rdef.file, f"{rdef.key}.number", f"number {route.number!r} is already "
                          f"routed by {first.file} {first.key} at line {first.line}", rdef.line)
    for name, qdef in queues.items():
        if name not in routed:
            warn(qdef.file, qdef.key, "queue is not referenced by any route", qdef.line)
    used_groups = {ref[0] for part in parts for ref in part.queue_groups.values()}
    for name, g in groups.items():
        if name not in used_groups:
            warn(g.file, g.key, "group is not used by any queue", g.line)
    uris: dict[str, _Def[Agent]] = {}
    for adef in agents.values():
        if adef.value is not None:
            same = uris.setdefault(adef.value.uri.lower(), adef)
            if same is not adef:
                warn(adef.file, f"{adef.key}.uri", f"same URI as {same.key} in {same.file}",
                     adef.line)
    all_routes = [rdef for part in parts for rdef in part.routes]
    if not all_routes and files:
        report.warnings.append(f"{_display(files[0].parent)}: routes: no routes defined; every call "
                               "will be rejected")
    if report.errors:
        return None
    exact = [d.value for d in all_routes if d.value is not None and d.value.number is not None]
    patterns = [d.value for d in all_routes if d.value is not None and d.value.pattern is not None]
    return Dialplan(
        agents={n: d.value for n, d in agents.items() if d.value is not None},
        groups={n: d.value for n, d in groups.items() if d.value is not None},
        queues={n: d.value for n, d in queues.items() if d.value is not None},
        vendors={n: d.value for n, d in vendors.items() if d.value is not None},
        calendars={n: d.value for n, d in calendars.items() if d.value is not None},
        routes=tuple(exact + patterns), files=tuple(files))


def _load_files(files: Sequence[Path], report: _Report) -> Dialplan | None:
    parts = [_parse_dialplan(f, report) for f in files]
    return _merge(files, parts, report)


def _load_dir(directory: Path, report: _Report, owner: _Checker, key: str,
              line: int | None) -> Dialplan | None:
    if not directory.exists():
        owner.error(key, f"directory {_display(directory)} does not exist", line)
        return None
    if not directory.is_dir():
        owner.error(key, f"{_display(directory)} is not a directory", line)
        return None
    try:
        files = sorted(p for p in directory.iterdir() if p.suffix == ".yaml")
        ignored = sorted(p.name for p in directory.iterdir() if p.suffix == ".yml")
    except OSError as e:
        owner.error(key, f"cannot list {_display(directory)}: {e.strerror or e}", line)
        return None
    if ignored:
        owner.warn(key, f"ignoring {', '.join(ignored)}: only *.yaml files are loaded", line)
    if not files:
        owner.error(key, f"no dialplan files (*.yaml) in {_display(directory)}", line)
        return None
    return _load_files(files, report)


# -- public API -------------------------------------------------------------------------


def check_config(path: Path) -> CheckResult:
    """Load and validate the service config and every dialplan; never raises for bad input."""
    config, report = _check(Path(path))
    return CheckResult(config=config if not report.errors else None,
                       errors=report.errors, warnings=report.warnings)


def _raise_or(value: T | None, report: _Report) -> T:
    for warning in report.warnings:
        log.warn("config: {warning}", warning=warning)
    if report.errors:
        raise ConfigErrors(report.errors)
    assert value is not None
    return value


def load_config(path: Path) -> Config:
    """The service config at ``path`` with its dialplans; raises ConfigErrors listing every problem."""
    config, report = _check(Path(path))
    return _raise_or(config, report)


def load_dialplans(directory: Path) -> Dialplan:
    """Every ``*.yaml`` in ``directory`` (sorted) merged into one Dialplan; raises ConfigErrors."""
    directory = Path(directory)
    report = _Report()
    owner = _Checker(str(directory), report)
    return _raise_or(_load_dir(directory, report, owner, "<directory>", None), report)


def load_dialplan_file(path: Path) -> Dialplan:
    """One dialplan file on its own (its references must resolve within it); raises ConfigErrors."""
    report = _Report()
    return _raise_or(_load_files([Path(path)], report), report)
