"""Scoring an evaluation on its scorecard, and the calibration spread: pure functions."""

from __future__ import annotations

import pytest

from ccswitch.model import Question, QuestionKind, Scorecard, ScorecardSection
from ccswitch.qa.scoring import EvaluationError, Score, calibrate, form_from_json, \
    form_to_json, score

FORM = Scorecard(name="f", version=3, queues=("support",), routes=("vendor",), sections=(
    ScorecardSection(title="A", questions=(
        Question(id="yn", text="?", kind=QuestionKind.YES_NO, weight=1),
        Question(id="must", text="?", kind=QuestionKind.YES_NO, auto_fail=True,
                 allow_na=False))),
    ScorecardSection(title="B", weight=2, questions=(
        Question(id="five", text="?", kind=QuestionKind.SCALE_1_5),
        Question(id="ten", text="?", kind=QuestionKind.SCALE_0_10, weight=3)))))


def test_weights_multiply_section_and_question() -> None:
    """Score = 100 * sum(w * value) / sum(w), w = section weight * question weight."""
    # yn 1*1, must 1*1, five 2*0.25 (answer 2), ten 6*0.7 (answer 7) -> 6.7 / 10
    assert score(FORM, {"yn": "yes", "must": "yes", "five": 2, "ten": 7}) == Score(
        value=67.0, auto_failed=False)


def test_na_answers_are_left_out_of_both_sums() -> None:
    """An na question changes neither the numerator nor the weights."""
    assert score(FORM, {"yn": "na", "must": "yes", "five": "na", "ten": "na"}).value == 100.0


def test_a_no_on_an_auto_fail_question_makes_the_score_zero() -> None:
    """auto_fail: the whole evaluation scores 0 and says so."""
    assert score(FORM, {"yn": "yes", "must": "no", "five": 5, "ten": 10}) == Score(
        value=0.0, auto_failed=True)


@pytest.mark.parametrize("answers", [
    {"yn": "maybe", "must": "yes", "five": 1, "ten": 1},
    {"yn": "yes", "must": "yes", "five": 0, "ten": 1},
    {"yn": "yes", "must": "yes", "five": 1, "ten": 11},
    {"yn": "yes", "must": "yes", "five": True, "ten": 1},
    {"yn": "yes", "must": "na", "five": 1, "ten": 1},
    {"yn": "yes", "must": "yes", "five": 1},
    {"yn": "yes", "must": "yes", "five": 1, "ten": 1, "extra": "yes"},
])
def test_answers_that_do_not_fit_are_refused(answers: dict[str, object]) -> None:
    """Wrong kind, out of range, na where not allowed, missing or unknown: EvaluationError."""
    with pytest.raises(EvaluationError):
        score(FORM, answers)  # type: ignore[arg-type]


def test_all_na_scores_nothing() -> None:
    """With every weighted question na, there is no score (None), not 0 or 100."""
    form = Scorecard(name="g", version=1, sections=(ScorecardSection(title="A", questions=(
        Question(id="q", text="?", kind=QuestionKind.YES_NO),)),))
    assert score(form, {"q": "na"}).value is None


def test_a_form_round_trips_through_its_stored_json() -> None:
    """The JSON kept with evaluations gives back the same scorecard."""
    assert form_from_json(form_to_json(FORM)) == FORM


def test_calibration_reports_min_max_stdev_and_disagreement() -> None:
    """Spread over reviewers and the questions with differing answers."""
    cal = calibrate([("a", 60.0, {"q1": "yes", "q2": 3}), ("b", 80.0, {"q1": "yes", "q2": 4})])
    assert (cal.minimum, cal.maximum, cal.stdev) == (60.0, 80.0, 10.0)
    assert dict(cal.disagreement) == {"q2": {"a": 3, "b": 4}}


def test_calibration_of_one_reviewer_has_no_stdev() -> None:
    """A spread needs two scores."""
    assert calibrate([("a", 60.0, {})]).stdev is None


def test_the_form_for_a_call_is_found_by_queue_before_route() -> None:
    """scorecard_for: a form naming the call's queue wins over one naming its route."""
    from ccswitch.model import QaConfig

    by_route = Scorecard(name="a-vendor", version=1, routes=("vendor",),
                         sections=FORM.sections)
    qa = QaConfig(scorecards={"a-vendor": by_route, "f": FORM})
    assert qa.scorecard_for("support", "vendor") == FORM
    assert qa.scorecard_for("sales", "vendor") == by_route
    assert qa.scorecard_for("sales", "inhouse") is None
