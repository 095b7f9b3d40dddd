"""Scoring evaluations against a scorecard, and calibration spreads: pure, no I/O.

An answer is ``"yes"`` / ``"no"`` for a yes/no question, an integer on the
question's scale (1-5 or 0-10), or ``"na"`` where the question allows it. Each
answered question counts with weight ``section.weight * question.weight`` and a
value between 0 and 1 (yes 1, no 0; a scale value as its fraction of the range);
``na`` is left out of both sums. The score is ``100 * sum(w * value) / sum(w)``,
0 when a ``no`` falls on an ``auto_fail`` question, and None when nothing was
answered with a weight.
"""

from __future__ import annotations

import json
import statistics
from typing import Any, Mapping, Sequence

import attrs

from ccswitch.errors import CCSwitchError
from ccswitch.model import Question, QuestionKind, Scorecard, ScorecardSection

__all__ = ["Answer", "Calibration", "EvaluationError", "Score", "calibrate", "form_from_json",
           "form_to_json", "score"]

Answer = str | int
_SCALES = {QuestionKind.SCALE_1_5: (1, 5), QuestionKind.SCALE_0_10: (0, 10)}


class EvaluationError(CCSwitchError, ValueError):
    """An evaluation does not fit its scorecard (unknown question, answer out of range)."""

    error_id = "qa.evaluation"


@attrs.frozen(kw_only=True)
class Score:
    """An evaluation's result: the score (0-100, None if nothing counted) and whether an
    auto-fail question failed."""

    value: float | None
    auto_failed: bool


def _fraction(question: Question, answer: Answer) -> float | None:
    """The answer as 0..1, None for "na"; raises EvaluationError when it does not fit."""
    if answer == "na":
        if not question.allow_na:
            raise EvaluationError(f"question {question.id!r} cannot be answered na")
        return None
    if question.kind is QuestionKind.YES_NO:
        if answer not in ("yes", "no"):
            raise EvaluationError(f"question {question.id!r} takes yes, no or na, "
                                  f"got {answer!r}")
        return 1.0 if answer == "yes" else 0.0
    low, high = _SCALES[question.kind]
    if isinstance(answer, bool) or not isinstance(answer, int) or not low <= answer <= high:
        raise EvaluationError(f"question {question.id!r} takes a whole number from {low} "
                              f"to {high} or na, got {answer!r}")
    return (answer - low) / (high - low)


def score(form: Scorecard, answers: Mapping[str, Answer]) -> Score:
    """The score of ``answers`` (question id -> answer) on ``form``; every question must
    be answered (``na`` where allowed) and no other; raises EvaluationError."""
    known = form.questions()
    unknown = sorted(set(answers) - set(known))
    if unknown:
        raise EvaluationError(f"scorecard {form.name} v{form.version} has no question "
                              f"{', '.join(map(repr, unknown))}")
    missing = [q for q in known if q not in answers]
    if missing:
        raise EvaluationError(f"unanswered question(s): {', '.join(map(repr, missing))}")
    total = weights = 0.0
    failed = False
    for section in form.sections:
        for question in section.questions:
            value = _fraction(question, answers[question.id])
            if value is None:
                continue
            failed = failed or (question.auto_fail and value == 0.0)
            weight = section.weight * question.weight
            total += weight * value
            weights += weight
    if failed:
        return Score(value=0.0, auto_failed=True)
    return Score(value=None if weights == 0 else round(100 * total / weights, 2),
                 auto_failed=False)


@attrs.frozen(kw_only=True)
class Calibration:
    """How far several reviewers' evaluations of one call lie apart.

    ``disagreement`` names each question the reviewers answered differently, with
    each reviewer's answer.
    """

    reviewers: tuple[str, ...]
    scores: Mapping[str, float | None]
    minimum: float | None
    maximum: float | None
    stdev: float | None
    disagreement: Mapping[str, Mapping[str, Answer]]


def calibrate(evaluations: Sequence[tuple[str, float | None, Mapping[str, Answer]]]
              ) -> Calibration:
    """The spread of (reviewer, score, answers) evaluations of one call; the standard
    deviation is the population one (all reviewers of the session), None below two."""
    scores = {reviewer: value for reviewer, value, _ in evaluations}
    counted = [v for v in scores.values() if v is not None]
    questions = sorted({q for _, _, answers in evaluations for q in answers})
    disagreement: dict[str, dict[str, Answer]] = {}
    for q in questions:
        given = {reviewer: answers[q] for reviewer, _, answers in evaluations if q in answers}
        if len(set(given.values())) > 1:
            disagreement[q] = given
    return Calibration(
        reviewers=tuple(scores), scores=scores,
        minimum=min(counted) if counted else None, maximum=max(counted) if counted else None,
        stdev=round(statistics.pstdev(counted), 2) if len(counted) > 1 else None,
        disagreement=disagreement)


# -- the form as stored with each evaluation -------------------------------------------

def form_to_json(form: Scorecard) -> str:
    """The scorecard as canonical JSON (what the store keeps per name and version)."""
    return json.dumps(attrs.asdict(form), sort_keys=True, default=str)


def form_from_json(text: str) -> Scorecard:
    """A scorecard back from :func:`form_to_json`."""
    data: dict[str, Any] = json.loads(text)
    sections = tuple(
        ScorecardSection(title=s["title"], weight=float(s["weight"]), questions=tuple(
            Question(id=q["id"], text=q["text"], kind=QuestionKind(q["kind"]),
                     weight=float(q["weight"]), auto_fail=bool(q["auto_fail"]),
                     allow_na=bool(q["allow_na"]))
            for q in s["questions"]))
        for s in data["sections"])
    return Scorecard(name=data["name"], version=int(data["version"]), sections=sections,
                     queues=tuple(data["queues"]), routes=tuple(data["routes"]))

