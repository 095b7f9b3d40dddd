"""The ``qa:`` section of a dialplan file: sampling rules and scorecards.

:func:`parse_qa` checks one file's section on its own into a :class:`ParsedQa`
(each problem recorded with file, key and line, like every other section); the
queue and vendor names it uses are returned as references, resolved by
:mod:`ccswitch.config.loading` once every file is read. ``qa.sampling`` may
appear in one file only; scorecard names are global, like queue names.
"""

from __future__ import annotations

import math
import re

import attrs

from ccswitch.config.checker import _Checker, _kind, _Map, _named_entries, _Section, _section
from ccswitch.model import (
    Question, QuestionKind, SamplingRules, Scorecard, ScorecardSection,
)

__all__ = ["ParsedQa", "ROUTES", "parse_qa"]

#: The route names a percentage or a scorecard can name (the CDR's ``route`` column).
ROUTES = ("inhouse", "vendor")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@attrs.define
class ParsedQa:
    """One file's ``qa:`` section: values (None where invalid), with their lines, and
    every (name, key, line) queue / vendor it refers to."""

    sampling: tuple[SamplingRules | None, int] | None = None
    scorecards: dict[str, tuple[Scorecard | None, str, int]] = attrs.Factory(dict)
    queue_refs: list[tuple[str, str, int]] = attrs.Factory(list)
    vendor_refs: list[tuple[str, str, int]] = attrs.Factory(list)


def _fraction_of_calls(sec: _Section, name: str) -> float | None:
    value = sec.data.get(name)
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not 0 <= value <= 100):
        sec.error(name, f"must be a percentage from 0 to 100, got {value!r}")
        return None
    return float(value)


def _weight(sec: _Section, name: str) -> float:
    if name not in sec.data:
        return 1.0
    value = sec.data[name]
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value <= 0):
        sec.error(name, f"must be a number above 0, got {value!r}")
        return 1.0
    return float(value)


def _percent_map(sec: _Section, name: str, refs: list[tuple[str, str, int]] | None,
                 allowed: tuple[str, ...] = ()) -> dict[str, float]:
    """A name -> percentage mapping; names go to ``refs`` (or must be in ``allowed``)."""
    out: dict[str, float] = {}
    inner = sec.data.get(name)
    entries = _named_entries(sec.ck, inner, sec.key(name), sec.line(name), name.rstrip("s"))
    if not isinstance(inner, _Map):
        return out  # _named_entries said why
    holder = _Section(ck=sec.ck, data=inner, path=sec.key(name))
    for item, _value, line in entries:
        if refs is not None:
            refs.append((item, holder.key(item), line))
        elif item not in allowed:
            holder.error(item, f"unknown route {item!r}; choose one of {', '.join(allowed)}")
            continue
        percent = _fraction_of_calls(holder, item)
        if percent is not None:
            out[item] = percent
    return out


def _parse_sampling(ck: _Checker, value: object, line: int, parsed: ParsedQa
                    ) -> SamplingRules | None:
    sec = _section(ck, value, "qa.sampling", line, required=("seed",),
                   allowed=("seed", "percent", "queues", "routes", "vendors",
                            "min_per_agent_week", "min_per_vendor_week", "always"),
                   what="a mapping with seed (and percent, queues, routes, vendors, "
                        "min_per_agent_week, min_per_vendor_week, always)")
    if sec is None:
        return None
    before = len(ck.report.errors)
    seed = sec.string("seed", what="a secret string (the same on every node)")
    percent = _fraction_of_calls(sec, "percent") if sec.has("percent") else 0.0
    queues = _percent_map(sec, "queues", parsed.queue_refs)
    routes = _percent_map(sec, "routes", None, ROUTES)
    vendors = _percent_map(sec, "vendors", parsed.vendor_refs)
    per_agent = sec.integer("min_per_agent_week", minimum=0)
    per_vendor = sec.integer("min_per_vendor_week", minimum=0)
    longer = shorter = repeat = None
    if sec.has("always"):
        always = _section(ck, sec.data["always"], "qa.sampling.always", sec.line("always"),
                          allowed=("longer_than", "shorter_than", "repeat_caller_hours"),
                          what="a mapping with longer_than, shorter_than (seconds of talk) "
                               "and/or repeat_caller_hours")
        if always is not None:
            longer = always.number("longer_than", minimum=0, inclusive=False)
            shorter = always.number("shorter_than", minimum=0, inclusive=False)
            if always.has("repeat_caller_hours"):
                hours = always.data["repeat_caller_hours"]
                if (isinstance(hours, bool) or not isinstance(hours, (int, float))
                        or not math.isfinite(hours) or not 0 < hours <= 24 * 31):
                    always.error("repeat_caller_hours",
                                 f"must be a number of hours above 0 and at most 744, "
                                 f"got {hours!r}")
                else:
                    repeat = float(hours)
    if seed is None or percent is None or len(ck.report.errors) > before:
        return None
    return SamplingRules(seed=seed, percent=percent, queue_percent=queues,
                         route_percent=routes, vendor_percent=vendors,
                         min_per_agent_week=per_agent or 0, min_per_vendor_week=per_vendor or 0,
                         longer_than_s=longer, shorter_than_s=shorter,
                         repeat_caller_hours=repeat)


def _names(sec: _Section, name: str) -> list[tuple[str, str, int]]:
    """A list of names under ``name``: (name, key, line) each."""
    value = sec.data.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        sec.error(name, f"must be a list of names, not {_kind(value)}")
        return []
    lines = getattr(value, "item_lines", [])
    return [(v, f"{sec.key(name)}[{i}]", lines[i] if i < len(lines) else sec.line(name))
            for i, v in enumerate(value)]


def _parse_question(ck: _Checker, value: object, path: str, line: int,
                    seen: set[str]) -> Question | None:
    sec = _section(ck, value, path, line, required=("id", "text", "type"),
                   allowed=("id", "text", "type", "weight", "auto_fail", "na"),
                   what="a mapping with id, text and type (and weight, auto_fail, na)")
    if sec is None:
        return None
    before = len(ck.report.errors)
    qid = sec.string("id", what="a question id")
    if qid is not None and not _ID.fullmatch(qid):
        sec.error("id", "must be 1-64 letters, digits, '_', '-' or '.', starting with a "
                        "letter or digit")
    elif qid is not None and qid in seen:
        sec.error("id", f"question id {qid!r} is used twice in this scorecard")
    elif qid is not None:
        seen.add(qid)
    text = sec.string("text", what="the question as reviewers read it")
    kind = None
    if sec.has("type"):
        try:
            kind = QuestionKind(sec.data["type"])
        except ValueError:
            sec.error("type", f"unknown question type {sec.data['type']!r}; choose one of "
                              f"{', '.join(k.value for k in QuestionKind)}")
    weight = _weight(sec, "weight")
    auto_fail = sec.boolean("auto_fail") or False
    allow_na = sec.boolean("na")
    if auto_fail and kind is not None and kind is not QuestionKind.YES_NO:
        sec.error("auto_fail", "only a yes_no question can be an auto-fail item")
    if qid is None or text is None or kind is None or len(ck.report.errors) > before:
        return None
    return Question(id=qid, text=text, kind=kind, weight=weight, auto_fail=auto_fail,
                    allow_na=True if allow_na is None else allow_na)


def _parse_scorecard(ck: _Checker, name: str, value: object, line: int,
                     parsed: ParsedQa) -> Scorecard | None:
    path = f"qa.scorecards.{name}"
    sec = _section(ck, value, path, line, required=("version", "sections"),
                   allowed=("version", "queues", "routes", "sections"),
                   what="a mapping with version and sections (and queues, routes)")
    if sec is None:
        return None
    before = len(ck.report.errors)
    version = sec.integer("version", minimum=1)
    queues = _names(sec, "queues")
    parsed.queue_refs.extend(queues)
    routes = _names(sec, "routes")
    for route, key, route_line in routes:
        if route not in ROUTES:
            ck.error(key, f"unknown route {route!r}; choose one of {', '.join(ROUTES)}",
                     route_line)
    if not queues and not routes:
        ck.error(path, "names no queues and no routes: which calls does it score?", line)
    sections: list[ScorecardSection] = []
    raw = sec.data.get("sections")
    if not isinstance(raw, list) or not raw:
        sec.error("sections", f"must be a non-empty list of sections, not {_kind(raw)}")
        raw = []
    seen: set[str] = set()
    lines = getattr(raw, "item_lines", [])
    for i, item in enumerate(raw):
        spath = f"{path}.sections[{i}]"
        sline = lines[i] if i < len(lines) else sec.line("sections")
        ssec = _section(ck, item, spath, sline, required=("title", "questions"),
                        allowed=("title", "weight", "questions"),
                        what="a mapping with title and questions (and weight)")
        if ssec is None:
            continue
        title = ssec.string("title", what="a section title")
        weight = _weight(ssec, "weight")
        qraw = ssec.data.get("questions")
        if not isinstance(qraw, list) or not qraw:
            ssec.error("questions", f"must be a non-empty list of questions, not {_kind(qraw)}")
            continue
        qlines = getattr(qraw, "item_lines", [])
        questions = [_parse_question(ck, q, f"{spath}.questions[{j}]",
                                     qlines[j] if j < len(qlines) else ssec.line("questions"),
                                     seen)
                     for j, q in enumerate(qraw)]
        if title is not None and all(q is not None for q in questions):
            sections.append(ScorecardSection(title=title, weight=weight, questions=tuple(
                q for q in questions if q is not None)))
    if version is None or len(ck.report.errors) > before:
        return None
    return Scorecard(name=name, version=version, sections=tuple(sections),
                     queues=tuple(q for q, _, _ in queues), routes=tuple(r for r, _, _ in routes))


def parse_qa(ck: _Checker, value: object, line: int) -> ParsedQa:
    """Check one file's ``qa:`` section (see the module docstring)."""
    parsed = ParsedQa()
    sec = _section(ck, value, "qa", line, allowed=("sampling", "scorecards"),
                   what="a mapping with sampling and/or scorecards")
    if sec is None:
        return parsed
    if sec.has("sampling"):
        parsed.sampling = (_parse_sampling(ck, sec.data["sampling"], sec.line("sampling"),
                                           parsed), sec.line("sampling"))
    for name, item, item_line in _named_entries(ck, sec.data.get("scorecards"),
                                                "qa.scorecards", sec.line("scorecards"),
                                                "scorecard"):
        parsed.scorecards[name] = (_parse_scorecard(ck, name, item, item_line, parsed),
                                   f"qa.scorecards.{name}", item_line)
    return parsed

