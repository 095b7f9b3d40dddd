"""Dialplan files: agents, groups, calendars, vendors, queues (overflow rules,
max_wait), routes and the quality program (``qa:``, parsed by :mod:`ccswitch.config.qa`).

:func:`_parse_dialplan` checks one file on its own into a :class:`_Parsed`: each
definition with the file, key and line it came from, plus every name it refers
to (group members, a queue's group, vendors, calendars, a route's queue).
Whether those names exist is checked once all files are read
(:mod:`ccswitch.config.loading`), as a reference may point into another file.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any, Generic, TypeVar

import attrs

from ccswitch.config.calendars import CalendarError, parse_calendar
from ccswitch.config.checker import (
    _NAME, FILE_KEY, _Checker, _display, _Failed, _kind, _named_entries, _Report, _Section,
    _section, _Seq,
)
from ccswitch.config.qa import ParsedQa, parse_qa
from ccswitch.config.values import _percent, _resolve, _sound, _uri_problem
from ccswitch.model import (
    Agent, CatchUp, CatchUpPeriod, Condition, Group, MaxWait, OverflowRule, Queue, Route,
    ServiceLevel, Strategy, TlsIdentity, Vendor,
)
from ccswitch.routing.calendar import Calendar
from ccswitch.sip.tls import TlsSetupError, load_identity

T = TypeVar("T")

_NUMBER = re.compile(r"[A-Za-z0-9+*#._-]{1,64}")


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
    qa: ParsedQa | None = None


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
                         allowed=("vendor", "percent", "catch_up", "calendar"),
                         required=("vendor", "percent"),
                         what="a mapping with vendor and percent (and catch_up, calendar)")
        if share is None:
            return None
        vendors = _vendor_list_of_one(share, parsed)
        percent = _percent(share, "percent")
        catch_up = _parse_catch_up(share, parsed)
        if vendors is None or percent is None or catch_up is None:
            return None
        return OverflowRule(condition=condition, vendors=vendors, percent=percent,
                            catch_up=catch_up)
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


_PERIODS = (CatchUpPeriod.NONE.value, CatchUpPeriod.HOUR.value, CatchUpPeriod.DAY.value)


def _parse_catch_up(share: _Section, parsed: _Parsed) -> CatchUp | None:
    """``catch_up``: none, hour (the default), day or {calls: N}; ``calendar``: the
    calendar whose time zone the hours and days are counted in (default UTC)."""
    calendar = share.string("calendar", what="a calendar name")
    if calendar is not None:
        parsed.calendar_refs.append((calendar, share.key("calendar"), share.line("calendar")))
    if share.data.get("catch_up") is None:
        return CatchUp(calendar=calendar)
    raw = share.data["catch_up"]
    if isinstance(raw, dict):
        sec = _section(share.ck, raw, share.key("catch_up"), share.line("catch_up"),
                       allowed=("calls",), required=("calls",), what="a mapping with calls")
        calls = None if sec is None else sec.integer("calls", minimum=1)
        if calls is None:
            return None
        if calendar is not None:
            share.error("calendar", "only catch_up: hour or day counts in a calendar's "
                        "time zone; remove calendar")
            return None
        return CatchUp(period=CatchUpPeriod.CALLS, calls=calls)
    if raw not in _PERIODS:
        share.error("catch_up", f"must be one of {', '.join(_PERIODS)} or {{calls: N}}, "
                    f"not {raw!r}")
        return None
    period = CatchUpPeriod(raw)
    if calendar is not None and period is CatchUpPeriod.NONE:
        share.error("calendar", "only catch_up: hour or day counts in a calendar's time "
                    "zone; remove calendar")
        return None
    return CatchUp(period=period, calendar=calendar)


def _vendor_list_of_one(sec: _Section, parsed: _Parsed) -> tuple[str, ...] | None:
    vendor = sec.string("vendor", what="a vendor name")
    if vendor is None:
        return None
    parsed.vendor_refs.append((vendor, sec.key("vendor"), sec.line("vendor")))
    return (vendor,)


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


def _parse_vendor(ck: _Checker, parsed: _Parsed, name: str, value: object, line: int,
                  base: Path) -> Vendor | None:
    sec = _section(ck, value, f"vendors.{name}", line, required=("trunks", "max_channels"),
                   allowed=("trunks", "max_channels", "schedule", "username", "password",
                            "ring_timeout", "failures", "cooldown", "probe_interval",
                            "probe_timeout", "dead_media_timeout", "keepalive_interval",
                            "tls"),
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
    probe_timeout = sec.number("probe_timeout", minimum=0, inclusive=False)
    dead_media_timeout = sec.number("dead_media_timeout", minimum=0, inclusive=True)
    keepalive_interval = sec.number("keepalive_interval", minimum=0, inclusive=True)
    tls: TlsIdentity | None = None
    if sec.data.get("tls") is not None:
        tls_sec = _section(ck, sec.data["tls"], sec.key("tls"), sec.line("tls"),
                           allowed=("certificate", "key"), required=("certificate", "key"),
                           what="a mapping with certificate and key (the client "
                           "certificate shown to the trunks)")
        if tls_sec is not None:
            tls = _tls_identity(tls_sec, base)
    if max_channels is None or len(ck.report.errors) > before:
        return None
    return Vendor(
        name=name, trunks=tuple(t.strip() for t in trunks), max_channels=max_channels,
        schedule=schedule, username=username, password=password if username else None,
        ring_timeout=30.0 if ring_timeout is None else ring_timeout,
        failures=3 if failures is None else failures,
        cooldown=60.0 if cooldown is None else cooldown,
        probe_interval=30.0 if probe_interval is None else probe_interval,
        probe_timeout=4.0 if probe_timeout is None else probe_timeout,
        dead_media_timeout=5.0 if dead_media_timeout is None else dead_media_timeout,
        keepalive_interval=30.0 if keepalive_interval is None else keepalive_interval,
        tls=tls)


def _tls_identity(sec: _Section, base: Path) -> TlsIdentity | None:
    """``certificate`` and ``key`` of ``sec``, checked to load and to match; an expired
    certificate is a warning (the node still starts; peers will refuse it)."""
    cert_text = sec.string("certificate", what="a PEM certificate file")
    key_text = sec.string("key", what="a PEM private key file")
    if cert_text is None or key_text is None:
        return None
    identity = TlsIdentity(certificate=_resolve(base, cert_text), key=_resolve(base, key_text))
    try:
        loaded = load_identity(identity)
    except TlsSetupError as e:
        sec.error(e.key, e.reason)
        return None
    if loaded.not_after < datetime.datetime.now(datetime.timezone.utc):
        sec.warn("certificate", f"{_display(identity.certificate)} expired on "
                 f"{loaded.not_after:%Y-%m-%d}")
    return identity


def _parse_calendar(ck: _Checker, name: str, value: object, line: int) -> Calendar | None:
    try:
        return parse_calendar(name, value)
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
                   allowed=("agents", "groups", "queues", "routes", "vendors", "calendars",
                            "qa"),
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
        vendor = _parse_vendor(ck, parsed, name, value, line, base)
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
    if top.has("qa"):
        parsed.qa = parse_qa(ck, top.data["qa"], top.line("qa"))
    return parsed
