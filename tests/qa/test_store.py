"""The QA store on SQLite and PostgreSQL: migration 0005, samples, evaluations, exemplary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

from ccswitch.cdr.errors import CdrError
from ccswitch.cdr.store import MIGRATIONS_DIR, CdrStore, Target
from ccswitch.model import Question, QuestionKind, SamplingRules, Scorecard, ScorecardSection
from ccswitch.qa.sampling import Decision
from ccswitch.qa.scoring import EvaluationError
from ccswitch.qa.store import Comment, QaStore, week_start_ms

#: The newest schema revision (the QA tables came with 0005; later ones build on it).
HEAD = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()

MONDAY = 1795392000  # 2026-11-23 00:00 UTC, a Monday (epoch seconds)


def call(call_id: str, *, at: float = MONDAY + 3600, agent: str | None = "alice",
         caller: str = "5550001", queue: str = "support", vendor: str | None = None,
         talk: float | None = 60.0) -> dict[str, Any]:
    """A finished call record as the B2BUA hands it over."""
    record: dict[str, Any] = {
        "call_id": call_id, "caller": caller, "dialed": "100", "queue": queue,
        "group": "inhouse", "agent_id": agent, "vendor": vendor, "outcome": "answered",
        "arrived_at": at, "ended_at": at + (talk or 0) + 5, "talk": talk,
        "short_abandon": False, "qa_notice_played": True, "offers": []}
    return record


FORM = Scorecard(name="support", version=1, queues=("support",), sections=(
    ScorecardSection(title="Opening", questions=(
        Question(id="greet", text="Greeted by name?", kind=QuestionKind.YES_NO),
        Question(id="verify", text="Verified identity?", kind=QuestionKind.YES_NO,
                 auto_fail=True))),
    ScorecardSection(title="Resolution", weight=2.0, questions=(
        Question(id="solved", text="How well solved?", kind=QuestionKind.SCALE_1_5),))))

ALL = SamplingRules(seed="s", percent=100)


def _engine(target: Target) -> sqlalchemy.Engine:
    if isinstance(target, Path):
        return sqlalchemy.create_engine(f"sqlite:///{target}")
    return sqlalchemy.create_engine(target.replace("postgresql://", "postgresql+psycopg://"))


def test_a_database_with_calls_at_0004_is_upgraded_keeping_them(cdr_target: Target) -> None:
    """Opening a database at 0004 upgrades it to the newest revision, QA tables (0005)
    included, and keeps its calls."""
    engine = _engine(cdr_target)
    with engine.begin() as connection:
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        connection.execute(sqlalchemy.text(
            "INSERT INTO calls (call_id, caller, dialed, queue, grp, route, outcome, "
            "arrived_ms, ended_ms, total_ms, short_abandon, qa_notice_played, offers_json) "
            "VALUES ('old', '1', '100', 'support', 'g', 'inhouse', 'answered_inhouse', "
            "1, 2, 1, false, false, '[]')"))
    engine.dispose()
    store = QaStore(cdr_target)
    try:
        assert store.revision == HEAD and store.count() == 1
        store.flag("old", Decision(sampled=True, reason="random"), now_ms=3)
        assert [s.call_id for s in store.samples()] == ["old"]
    finally:
        store.close()


def test_a_sampled_call_is_flagged_with_its_reason(qa: QaStore) -> None:
    """sample_call flags a stored call the rules sample, with the rule as the reason."""
    qa.add(call("c1"))
    decision = qa.sample_call("c1", ALL, now_ms=1)
    assert decision == Decision(sampled=True, reason="random")
    [sample] = qa.samples()
    assert (sample.call_id, sample.sampled, sample.reason) == ("c1", True, "random")


def test_a_call_not_sampled_leaves_no_row(qa: QaStore) -> None:
    """A call the rules pass over is not listed."""
    qa.add(call("c1"))
    assert qa.sample_call("c1", SamplingRules(seed="s"), now_ms=1) == Decision(sampled=False)
    assert qa.samples() == [] and qa.sample("c1") is None


def test_sampling_an_unknown_call_returns_none(qa: QaStore) -> None:
    """A call id not in the CDR is not flagged."""
    assert qa.sample_call("nope", ALL, now_ms=1) is None


def test_repeat_callers_within_the_window_are_sampled(qa: QaStore) -> None:
    """The second call from the same number within 24 h is sampled as repeat_caller."""
    rules = SamplingRules(seed="s", repeat_caller_hours=24)
    qa.add(call("first", at=MONDAY))
    qa.add(call("again", at=MONDAY + 23 * 3600))
    qa.add(call("later", at=MONDAY + 50 * 3600))
    assert qa.sample_call("first", rules, now_ms=1) == Decision(sampled=False)
    assert qa.sample_call("again", rules, now_ms=1) == Decision(sampled=True,
                                                                reason="repeat_caller")
    assert qa.sample_call("later", rules, now_ms=1) == Decision(sampled=False)


def test_the_weekly_agent_minimum_tops_up_then_stops(qa: QaStore) -> None:
    """With a minimum of 2 per agent and week, an agent's first 2 calls are sampled."""
    rules = SamplingRules(seed="s", min_per_agent_week=2)
    for i in range(4):
        qa.add(call(f"c{i}", at=MONDAY + i))
    reasons = [qa.sample_call(f"c{i}", rules, now_ms=1) for i in range(4)]
    assert [d.reason if d else None for d in reasons] == [
        "agent_minimum", "agent_minimum", None, None]


def test_the_weekly_minimum_starts_again_next_week(qa: QaStore) -> None:
    """Samples of last week do not count toward this week's minimum."""
    rules = SamplingRules(seed="s", min_per_agent_week=1)
    qa.add(call("last-week", at=MONDAY - 10))
    qa.add(call("this-week", at=MONDAY + 10))
    assert qa.sample_call("last-week", rules, now_ms=1).sampled  # type: ignore[union-attr]
    assert qa.sample_call("this-week", rules, now_ms=1).sampled  # type: ignore[union-attr]


def test_week_start_is_monday_midnight_utc() -> None:
    """Any time of the week maps to its Monday 00:00 UTC."""
    assert week_start_ms((MONDAY + 6 * 86400 + 86399) * 1000) == MONDAY * 1000
    assert week_start_ms(MONDAY * 1000 - 1) == (MONDAY - 7 * 86400) * 1000


def test_samples_filter_by_agent_queue_vendor_and_time(qa: QaStore) -> None:
    """Every filter narrows the list to the matching calls."""
    qa.add(call("a", agent="alice", at=MONDAY))
    qa.add(call("b", agent="bob", queue="sales", at=MONDAY + 100))
    qa.add(call("v", agent=None, vendor="acme", at=MONDAY + 200))
    for c in ("a", "b", "v"):
        qa.sample_call(c, ALL, now_ms=1)
    assert [s.call_id for s in qa.samples(agent="bob")] == ["b"]
    assert [s.call_id for s in qa.samples(queue="support")] == ["a", "v"]
    assert [s.call_id for s in qa.samples(vendor="acme")] == ["v"]
    assert [s.call_id for s in qa.samples(since_ms=(MONDAY + 100) * 1000,
                                          until_ms=(MONDAY + 200) * 1000)] == ["b"]


@pytest.mark.parametrize("hostile", ["x' OR '1'='1", "alice'; DROP TABLE calls; --", "%", "_"])
def test_sql_metacharacters_in_filters_are_data(qa: QaStore, hostile: str) -> None:
    """A filter value with quotes, SQL or wildcards matches only that literal value."""
    qa.add(call("a", agent="alice"))
    qa.add(call("h", agent=hostile, at=MONDAY + 7200))
    qa.sample_call("a", ALL, now_ms=1)
    qa.sample_call("h", ALL, now_ms=1)
    assert [s.call_id for s in qa.samples(agent=hostile)] == ["h"]
    assert [s.call_id for s in qa.samples(queue=hostile)] == []
    assert qa.count() == 2


def test_an_evaluation_is_scored_and_stored_with_its_form_version(qa: QaStore) -> None:
    """evaluate() computes the weighted score and keeps the form version it used."""
    qa.add(call("c1"))
    ev = qa.evaluate(call_id="c1", reviewer="rita", form=FORM,
                     answers={"greet": "yes", "verify": "yes", "solved": 3},
                     comments=[Comment(at_ms=12_500, text="good hold explanation")], now_ms=10)
    # (1*1 + 1*1 + 2*0.5) / 4 = 75
    assert (ev.score, ev.form_version, ev.created_ms) == (75.0, 1, 10)
    [stored] = qa.evaluations(call_id="c1")
    assert stored.comments == (Comment(at_ms=12_500, text="good hold explanation"),)
    assert qa.form("support", 1) == FORM


def test_re_evaluating_updates_the_same_row_and_its_updated_time(qa: QaStore) -> None:
    """The same reviewer scoring the same call again replaces the answers, keeps created."""
    qa.add(call("c1"))
    answers: dict[str, Any] = {"greet": "yes", "verify": "yes", "solved": 5}
    qa.evaluate(call_id="c1", reviewer="rita", form=FORM, answers=answers, now_ms=10)
    ev = qa.evaluate(call_id="c1", reviewer="rita", form=FORM,
                     answers={**answers, "greet": "no"}, now_ms=20)
    assert (ev.score, ev.created_ms, ev.updated_ms) == (75.0, 10, 20)
    assert len(qa.evaluations(call_id="c1")) == 1


def test_old_evaluations_keep_their_form_when_it_changes(qa: QaStore) -> None:
    """A new scorecard version is stored beside the old one; old evaluations name v1."""
    qa.add(call("c1"))
    qa.add(call("c2"))
    qa.evaluate(call_id="c1", reviewer="rita", form=FORM,
                answers={"greet": "yes", "verify": "yes", "solved": 5}, now_ms=10)
    v2 = Scorecard(name="support", version=2, sections=FORM.sections[:1])
    qa.evaluate(call_id="c2", reviewer="rita", form=v2,
                answers={"greet": "yes", "verify": "yes"}, now_ms=20)
    assert [e.form_version for e in qa.evaluations()] == [1, 2]
    assert qa.form("support", 1) == FORM and qa.form("support", 2) == v2


def test_a_changed_form_under_an_old_version_is_refused(qa: QaStore) -> None:
    """Storing different questions under a stored name and version is an error."""
    qa.save_form(FORM)
    with pytest.raises(EvaluationError, match="new version"):
        qa.save_form(Scorecard(name="support", version=1, sections=FORM.sections[:1]))


def test_answers_that_do_not_fit_the_form_are_refused_and_store_nothing(qa: QaStore) -> None:
    """An out-of-range answer raises EvaluationError; no evaluation is written."""
    qa.add(call("c1"))
    with pytest.raises(EvaluationError, match="solved"):
        qa.evaluate(call_id="c1", reviewer="rita", form=FORM,
                    answers={"greet": "yes", "verify": "yes", "solved": 9}, now_ms=1)
    assert qa.evaluations() == []


def test_evaluating_an_unknown_call_is_refused(qa: QaStore) -> None:
    """An evaluation needs a stored call."""
    with pytest.raises(CdrError, match="no call"):
        qa.evaluate(call_id="ghost", reviewer="rita", form=FORM,
                    answers={"greet": "yes", "verify": "yes", "solved": 1}, now_ms=1)


def test_samples_filter_by_average_score(qa: QaStore) -> None:
    """min_score / max_score select calls by their evaluations' average."""
    for c, solved in (("low", 1), ("high", 5)):
        qa.add(call(c))
        qa.sample_call(c, ALL, now_ms=1)
        qa.evaluate(call_id=c, reviewer="rita", form=FORM,
                    answers={"greet": "yes", "verify": "yes", "solved": solved}, now_ms=1)
    assert [(s.call_id, s.score) for s in qa.samples(max_score=60)] == [("low", 50.0)]
    assert [(s.call_id, s.evaluations) for s in qa.samples(min_score=90)] == [("high", 1)]


def test_a_calibration_session_reports_the_spread(qa: QaStore) -> None:
    """Three reviewers in one session: min, max, stdev and the questions they split on."""
    qa.add(call("c1"))
    for reviewer, solved in (("ann", 1), ("ben", 3), ("cid", 5)):
        qa.evaluate(call_id="c1", reviewer=reviewer, form=FORM, session="cal-1",
                    answers={"greet": "yes", "verify": "yes", "solved": solved}, now_ms=1)
    qa.evaluate(call_id="c1", reviewer="ann", form=FORM,  # outside the session
                answers={"greet": "no", "verify": "yes", "solved": 1}, now_ms=1)
    cal = qa.calibration("c1", "cal-1")
    assert (cal.minimum, cal.maximum, cal.stdev) == (50.0, 100.0, 20.41)
    assert dict(cal.disagreement) == {"solved": {"ann": 1, "ben": 3, "cid": 5}}


def test_the_exemplary_flag_is_set_and_cleared(qa: QaStore) -> None:
    """set_exemplary marks a call (sampled or not) and can take the mark back."""
    qa.add(call("c1"))
    qa.set_exemplary("c1", True, by="rita", now_ms=5)
    assert qa.exemplary_calls() == {"c1"}
    assert [s.call_id for s in qa.samples(sampled=None, exemplary=True)] == ["c1"]
    qa.set_exemplary("c1", False, by="rita", now_ms=6)
    assert qa.exemplary_calls() == frozenset()


def test_marking_exemplary_keeps_the_sample_flag(qa: QaStore) -> None:
    """A sampled call marked exemplary is still listed as sampled with its reason."""
    qa.add(call("c1"))
    qa.sample_call("c1", ALL, now_ms=1)
    qa.set_exemplary("c1", True, by="rita", now_ms=5)
    [sample] = qa.samples()
    assert (sample.sampled, sample.reason, sample.exemplary) == (True, "random", True)


def test_a_cdr_store_opens_a_database_the_qa_store_migrated(cdr_target: Target) -> None:
    """Plain CDR readers (report, export) open the QA-migrated database as it is."""
    QaStore(cdr_target).close()
    plain = CdrStore(cdr_target)
    assert plain.revision == HEAD
    plain.close()


@pytest.mark.parametrize(("at_ms", "text"), [(-1, "x"), ("5", "x"), (1.5, "x"), (5, " ")])
def test_a_comment_needs_a_whole_offset_and_text(at_ms: Any, text: str) -> None:
    """A comment's anchor is whole, non-negative ms into the recording; its text not blank."""
    with pytest.raises(EvaluationError):
        Comment(at_ms=at_ms, text=text)


def test_a_limit_below_one_is_refused(qa: QaStore) -> None:
    """samples(limit=0) is an error, not an empty or unlimited list."""
    with pytest.raises(CdrError, match="limit"):
        qa.samples(limit=0)


def test_sampling_a_flagged_call_again_keeps_its_first_decision(qa: QaStore) -> None:
    """A re-run (``ccswitch qa sample``) leaves a flagged call's reason as it was."""
    qa.add(call("c1"))
    qa.sample_call("c1", SamplingRules(seed="s", min_per_agent_week=1), now_ms=1)
    again = qa.sample_call("c1", ALL, now_ms=2)
    assert again == Decision(sampled=True, reason="agent_minimum")
    assert qa.sample("c1").reason == "agent_minimum"  # type: ignore[union-attr]
