"""Loading dialplans: every file of a directory parsed, then merged and cross-checked.

Names must be unique over all files; every reference (agent, group, queue,
vendor, calendar) must resolve to a definition in any file. Exact ``number``
routes go before ``pattern`` routes, which keep file order. Also the public
loaders of dialplans alone, which raise :class:`ConfigErrors` with every problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, TypeVar

from twisted.logger import Logger

from ccswitch.config.checker import ConfigErrors, _Checker, _display, _Report, _where
from ccswitch.config.dialplan import _Def, _parse_dialplan, _Parsed
from ccswitch.errors import ConfigError
from ccswitch.model import Agent, Dialplan, Group, QaConfig, Queue, Route, Scorecard, Vendor
from ccswitch.routing.calendar import Calendar

log = Logger()

T = TypeVar("T")


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
    qa = _merge_qa(files, parts, queues, vendors, report)
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
        routes=tuple(exact + patterns), files=tuple(files), qa=qa)


def _merge_qa(files: Sequence[Path], parts: Sequence[_Parsed], queues: dict[str, _Def[Queue]],
              vendors: dict[str, _Def[Vendor]], report: _Report) -> QaConfig | None:
    """The ``qa:`` sections of all files as one QaConfig (None if no file has one):
    sampling in one file only, scorecard names unique, named queues and vendors defined."""
    sampling_at: tuple[str, int] | None = None
    config = QaConfig()
    scorecards: dict[str, Scorecard] = {}
    where: dict[str, tuple[str, int]] = {}
    found = False
    for path, part in zip(files, parts):
        if part.qa is None:
            continue
        found = True
        file = _display(path)
        if part.qa.sampling is not None:
            rules, line = part.qa.sampling
            if sampling_at is not None:
                report.errors.append(ConfigError(
                    file, "qa.sampling", f"is already given in {sampling_at[0]} at line "
                    f"{sampling_at[1]}{_where(line)}"))
            else:
                sampling_at = (file, line)
                config = QaConfig(sampling=rules)
        for name, (card, key, line) in part.qa.scorecards.items():
            if name in where:
                report.errors.append(ConfigError(
                    file, key, f"scorecard {name!r} is already defined in {where[name][0]} "
                    f"at line {where[name][1]}{_where(line)}"))
                continue
            where[name] = (file, line)
            if card is not None:
                scorecards[name] = card
        for kind, refs, known in (("queue", part.qa.queue_refs, queues),
                                  ("vendor", part.qa.vendor_refs, vendors)):
            for ref, key, line in refs:
                if ref not in known:
                    report.errors.append(ConfigError(file, key, f"unknown {kind} {ref!r}"
                                                     + _where(line)))
    return QaConfig(sampling=config.sampling, scorecards=scorecards) if found else None


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


def _raise_or(value: T | None, report: _Report) -> T:
    for warning in report.warnings:
        log.warn("config: {warning}", warning=warning)
    if report.errors:
        raise ConfigErrors(report.errors)
    assert value is not None
    return value


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
