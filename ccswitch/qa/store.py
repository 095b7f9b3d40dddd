"""The quality program's data in the CDR database: samples, evaluations, calibration,
the exemplary flag.

:class:`QaStore` is a :class:`~ccswitch.cdr.store.CdrStore` (same target, same
migrations, same errors: ``CdrUnavailable`` when the database cannot be reached,
``CdrError`` otherwise) with the QA tables of revision 0005. Every query is built
with SQLAlchemy Core, so filter values are bound parameters, never SQL text.
Times are epoch milliseconds; methods that stamp a time take ``now_ms``.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Mapping, Sequence

import attrs
from sqlalchemy import Row, and_, func, select
from sqlalchemy.sql.elements import ColumnElement

from ccswitch.cdr.errors import CdrError
from ccswitch.cdr.report import ANONYMOUS
from ccswitch.cdr.schema import calls, qa_evaluations, qa_forms, qa_samples
from ccswitch.cdr.store import CdrStore
from ccswitch.model import SamplingRules, Scorecard
from ccswitch.qa.sampling import CallFacts, Decision, decide
from ccswitch.qa.scoring import (
    Answer, Calibration, EvaluationError, calibrate, form_from_json, form_to_json, score,
)

__all__ = ["Comment", "Evaluation", "QaStore", "Sample", "week_start_ms"]

HOUR_MS = 3600 * 1000
WEEK_MS = 7 * 24 * HOUR_MS


def week_start_ms(ms: int) -> int:
    """Monday 00:00 UTC of the ISO week holding ``ms``."""
    day = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).date()
    monday = day - datetime.timedelta(days=day.weekday())
    start = datetime.datetime.combine(monday, datetime.time(), tzinfo=datetime.timezone.utc)
    return round(start.timestamp() * 1000)


@attrs.frozen(kw_only=True)
class Comment:
    """A reviewer's remark anchored at ``at_ms`` into the call's recording."""

    at_ms: int = attrs.field()
    text: str = attrs.field()

    @at_ms.validator
    def _offset(self, attribute: "attrs.Attribute[int]", value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise EvaluationError(f"comment at_ms must be whole milliseconds >= 0, "
                                  f"got {value!r}")

    @text.validator
    def _words(self, attribute: "attrs.Attribute[str]", value: str) -> None:
        if not isinstance(value, str) or not value.strip() or "\x00" in value:
            raise EvaluationError(f"comment text must be non-empty text, got {value!r}")


@attrs.frozen(kw_only=True)
class Sample:
    """A sampled (or exemplary) call with what the list views need."""

    call_id: str
    sampled: bool
    reason: str | None
    exemplary: bool
    arrived_ms: int
    queue: str
    route: str
    vendor: str | None
    agent_id: str | None
    caller: str
    talk_ms: int | None
    recording_path: str | None
    evaluations: int
    score: float | None  # the average of the call's scored evaluations


@attrs.frozen(kw_only=True)
class Evaluation:
    """One reviewer's evaluation of one call, as stored."""

    id: int
    call_id: str
    reviewer: str
    session: str
    form_name: str
    form_version: int
    answers: Mapping[str, Answer]
    comments: tuple[Comment, ...]
    score: float | None
    auto_failed: bool
    created_ms: int
    updated_ms: int


def _evaluation(row: Row[Any]) -> Evaluation:
    m = row._mapping
    return Evaluation(
        id=m["id"], call_id=m["call_id"], reviewer=m["reviewer"], session=m["session"],
        form_name=m["form_name"], form_version=m["form_version"],
        answers=json.loads(m["answers_json"]),
        comments=tuple(Comment(**c) for c in json.loads(m["comments_json"])),
        score=m["score"], auto_failed=bool(m["auto_failed"]), created_ms=m["created_ms"],
        updated_ms=m["updated_ms"])


def _text(name: str, value: str) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise CdrError(f"{name} must be non-empty text without NUL, got {value!r}")
    return value


class QaStore(CdrStore):
    """Samples, evaluations and the exemplary flag (see the module docstring)."""

    # -- sampling --------------------------------------------------------------

    def facts(self, call_id: str, rules: SamplingRules) -> CallFacts | None:
        """What the sampler needs to know about a stored call (None if not stored)."""
        row = self.get(call_id)
        if row is None:
            return None
        repeat = False
        with self._errors("cannot read"), self._engine.connect() as connection:
            if (rules.repeat_caller_hours is not None
                    and row.caller.strip().lower() not in ANONYMOUS):
                since = row.arrived_ms - round(rules.repeat_caller_hours * HOUR_MS)
                repeat = connection.execute(
                    select(func.count()).select_from(calls).where(
                        calls.c.caller == row.caller, calls.c.call_id != call_id,
                        calls.c.arrived_ms >= since, calls.c.arrived_ms <= row.arrived_ms)
                ).scalar_one() > 0
            week = week_start_ms(row.arrived_ms)

            def this_week(column: ColumnElement[Any], value: str | None) -> int:
                if value is None:
                    return 0
                return int(connection.execute(
                    select(func.count()).select_from(
                        qa_samples.join(calls, calls.c.call_id == qa_samples.c.call_id))
                    .where(qa_samples.c.sampled, column == value,
                           calls.c.arrived_ms >= week, calls.c.arrived_ms < week + WEEK_MS,
                           calls.c.call_id != call_id)).scalar_one())

            agent_week = this_week(calls.c.agent_id, row.agent_id)
            vendor_week = this_week(calls.c.vendor, row.vendor)
        return CallFacts(call_id=row.call_id, queue=row.queue, route=row.route,
                         vendor=row.vendor, agent_id=row.agent_id, talk_ms=row.talk_ms,
                         repeat_caller=repeat, agent_week_samples=agent_week,
                         vendor_week_samples=vendor_week)

    def sample_call(self, call_id: str, rules: SamplingRules, *, now_ms: int) -> Decision | None:
        """Decide whether a stored call is sampled and flag it if so; None if the call
        is not stored. A call already flagged keeps its flag and reason."""
        previous = self.sample(call_id)
        if previous is not None and previous.sampled:
            return Decision(sampled=True, reason=previous.reason)
        facts = self.facts(call_id, rules)
        if facts is None:
            return None
        decision = decide(rules, facts)
        if decision.sampled:
            self.flag(call_id, decision, now_ms=now_ms)
        return decision

    def flag(self, call_id: str, decision: Decision, *, now_ms: int) -> None:
        """Record the sampling decision for a call (keeps its exemplary flag)."""
        values = {"call_id": _text("call_id", call_id), "sampled": decision.sampled,
                  "sample_reason": decision.reason, "flagged_ms": now_ms}
        self._upsert_sample(values)

    def _upsert_sample(self, values: dict[str, Any]) -> None:
        self._upsert_by_call_id(qa_samples, values,
                                f"cannot store QA flags of call {values['call_id']} in")

    def sample(self, call_id: str) -> Sample | None:
        """One call's QA row with its call (None unless sampled or exemplary)."""
        found = self.samples(call_id=call_id, sampled=None)
        return found[0] if found else None

    def samples(self, *, since_ms: int | None = None, until_ms: int | None = None,
                queue: str | None = None, agent: str | None = None,
                vendor: str | None = None, reason: str | None = None,
                min_score: float | None = None, max_score: float | None = None,
                sampled: bool | None = True, exemplary: bool | None = None,
                call_id: str | None = None, limit: int = 1000) -> list[Sample]:
        """Flagged calls, oldest arrival first, filtered by every argument given:
        arrival in [since_ms, until_ms), queue, agent, vendor, sample reason, average
        score in [min_score, max_score] (calls without a score are left out when
        either is given), sampled, exemplary. At most ``limit`` (>= 1) rows."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise CdrError(f"limit must be a whole number >= 1, got {limit!r}")
        avg = (select(qa_evaluations.c.call_id, func.count().label("n"),
                      func.avg(qa_evaluations.c.score).label("score"))
               .group_by(qa_evaluations.c.call_id).subquery())
        query = (select(qa_samples.c.call_id, qa_samples.c.sampled, qa_samples.c.sample_reason,
                        qa_samples.c.exemplary, calls.c.arrived_ms, calls.c.queue,
                        calls.c.route, calls.c.vendor, calls.c.agent_id, calls.c.caller,
                        calls.c.talk_ms, calls.c.recording_path, avg.c.n, avg.c.score)
                 .select_from(qa_samples.join(calls, calls.c.call_id == qa_samples.c.call_id)
                              .outerjoin(avg, avg.c.call_id == qa_samples.c.call_id)))
        where: list[ColumnElement[bool]] = []
        for column, value in ((calls.c.queue, queue), (calls.c.agent_id, agent),
                              (calls.c.vendor, vendor), (qa_samples.c.sample_reason, reason),
                              (qa_samples.c.call_id, call_id)):
            if value is not None:
                where.append(column == value)
        if since_ms is not None:
            where.append(calls.c.arrived_ms >= since_ms)
        if until_ms is not None:
            where.append(calls.c.arrived_ms < until_ms)
        if min_score is not None:
            where.append(avg.c.score >= min_score)
        if max_score is not None:
            where.append(avg.c.score <= max_score)
        if sampled is not None:
            where.append(qa_samples.c.sampled == sampled)
        if exemplary is not None:
            where.append(qa_samples.c.exemplary == exemplary)
        query = query.where(*where).order_by(calls.c.arrived_ms,
                                                   calls.c.call_id).limit(limit)
        with self._errors("cannot read"), self._engine.connect() as connection:
            rows = list(connection.execute(query))
        return [Sample(call_id=r.call_id, sampled=bool(r.sampled), reason=r.sample_reason,
                       exemplary=bool(r.exemplary), arrived_ms=r.arrived_ms, queue=r.queue,
                       route=r.route, vendor=r.vendor, agent_id=r.agent_id, caller=r.caller,
                       talk_ms=r.talk_ms, recording_path=r.recording_path,
                       evaluations=int(r.n or 0),
                       score=None if r.score is None else round(float(r.score), 2))
                for r in rows]

    # -- exemplary -------------------------------------------------------------

    def set_exemplary(self, call_id: str, exemplary: bool, *, by: str, now_ms: int) -> None:
        """Mark (or unmark) a call's recording as exemplary: the retention purge keeps it."""
        if self.get(call_id) is None:
            raise CdrError(f"no call {call_id!r} in CDR database {self.name}")
        current = self.sample(call_id)
        self._upsert_sample({
            "call_id": call_id, "sampled": current is not None and current.sampled,
            "exemplary": exemplary, "exemplary_by": _text("by", by), "exemplary_ms": now_ms})

    def exemplary_calls(self) -> frozenset[str]:
        """The call ids whose recordings are kept as exemplary."""
        with self._errors("cannot read"), self._engine.connect() as connection:
            return frozenset(connection.execute(
                select(qa_samples.c.call_id).where(qa_samples.c.exemplary)).scalars())

    # -- scorecards and evaluations -------------------------------------------

    def save_form(self, form: Scorecard) -> None:
        """Keep this scorecard version; the same name and version with other content is
        refused (change the version when the form changes)."""
        definition = form_to_json(form)
        with self._errors(f"cannot store scorecard {form.name} in"):
            with self._engine.begin() as connection:
                stored = connection.execute(
                    select(qa_forms.c.definition_json).where(
                        qa_forms.c.name == form.name, qa_forms.c.version == form.version)
                ).scalar_one_or_none()
                if stored is None:
                    connection.execute(qa_forms.insert().values(
                        name=form.name, version=form.version, definition_json=definition))
        if stored is not None and stored != definition:
            raise EvaluationError(
                f"scorecard {form.name} version {form.version} is stored with other "
                f"questions; give the changed form a new version")

    def form(self, name: str, version: int) -> Scorecard | None:
        """A stored scorecard version."""
        with self._errors("cannot read"), self._engine.connect() as connection:
            text = connection.execute(select(qa_forms.c.definition_json).where(
                qa_forms.c.name == name, qa_forms.c.version == version)).scalar_one_or_none()
        return None if text is None else form_from_json(text)

    def evaluate(self, *, call_id: str, reviewer: str, form: Scorecard,
                 answers: Mapping[str, Answer], comments: Sequence[Comment] = (),
                 session: str = "", now_ms: int) -> Evaluation:
        """Record (or, for the same call, reviewer and session, replace) an evaluation
        scored on ``form``; raises EvaluationError when the answers do not fit the form
        and CdrError for an unknown call."""
        _text("reviewer", reviewer)
        result = score(form, answers)
        if self.get(call_id) is None:
            raise CdrError(f"no call {call_id!r} in CDR database {self.name}")
        self.save_form(form)
        values = {"form_name": form.name, "form_version": form.version,
                  "answers_json": json.dumps(dict(answers), sort_keys=True),
                  "comments_json": json.dumps([attrs.asdict(c) for c in comments]),
                  "score": result.value, "auto_failed": result.auto_failed,
                  "updated_ms": now_ms}
        key = and_(qa_evaluations.c.call_id == call_id, qa_evaluations.c.reviewer == reviewer,
                   qa_evaluations.c.session == session)
        with self._errors(f"cannot store the evaluation of call {call_id} in"):
            with self._engine.begin() as connection:
                updated = connection.execute(qa_evaluations.update().where(key).values(values))
                if updated.rowcount == 0:
                    connection.execute(qa_evaluations.insert().values(
                        call_id=call_id, reviewer=reviewer, session=session,
                        created_ms=now_ms, **values))
                row = connection.execute(select(qa_evaluations).where(key)).one()
        return _evaluation(row)

    def evaluations(self, *, call_id: str | None = None,
                    session: str | None = None) -> list[Evaluation]:
        """Evaluations of a call and/or a calibration session, oldest first."""
        where = []
        if call_id is not None:
            where.append(qa_evaluations.c.call_id == call_id)
        if session is not None:
            where.append(qa_evaluations.c.session == session)
        query = select(qa_evaluations).where(*where).order_by(qa_evaluations.c.id)
        with self._errors("cannot read"), self._engine.connect() as connection:
            return [_evaluation(row) for row in connection.execute(query)]

    def scores(self, *, since_ms: int | None = None, until_ms: int | None = None
               ) -> dict[str, list[float]]:
        """Each call's evaluation scores (unscored evaluations left out), for the calls
        that arrived in [since_ms, until_ms)."""
        query = (select(qa_evaluations.c.call_id, qa_evaluations.c.score)
                 .select_from(qa_evaluations.join(
                     calls, calls.c.call_id == qa_evaluations.c.call_id))
                 .where(qa_evaluations.c.score.is_not(None)))
        if since_ms is not None:
            query = query.where(calls.c.arrived_ms >= since_ms)
        if until_ms is not None:
            query = query.where(calls.c.arrived_ms < until_ms)
        out: dict[str, list[float]] = {}
        with self._errors("cannot read"), self._engine.connect() as connection:
            for call_id, value in connection.execute(query.order_by(qa_evaluations.c.id)):
                out.setdefault(call_id, []).append(float(value))
        return out

    def calibration(self, call_id: str, session: str) -> Calibration:
        """The spread of a calibration session's evaluations of one call."""
        return calibrate([(e.reviewer, e.score, e.answers)
                          for e in self.evaluations(call_id=call_id, session=session)])
