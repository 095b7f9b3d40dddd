"""The ``qa:`` dialplan section: sampling rules and scorecards, loaded or refused with
file, key and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ccswitch.config import check_config
from ccswitch.model import Question, QuestionKind, SamplingRules
from tests.config.test_config import failed, plan, plan_error, reason_of, setup

CARD: dict[str, Any] = {
    "version": 2, "queues": ["support"], "routes": ["vendor"],
    "sections": [
        {"title": "Opening", "questions": [
            {"id": "greet", "text": "Greeted by name?", "type": "yes_no"},
            {"id": "verify", "text": "Verified identity?", "type": "yes_no",
             "auto_fail": True, "na": False}]},
        {"title": "Resolution", "weight": 2, "questions": [
            {"id": "solved", "text": "How well solved?", "type": "scale_1_5", "weight": 3}]}]}


def qa_plan(qa: Any) -> dict[str, Any]:
    data = plan()
    data["vendors"] = {"acme": {"trunks": ["sip:o@127.0.0.1:5070"], "max_channels": 2}}
    data["queues"]["support"]["overflow"] = [{"wait_exceeds": 60, "to": ["acme"]}]
    data["qa"] = qa
    return data


def test_sampling_rules_and_scorecards_are_loaded(tmp_path: Path) -> None:
    """A full qa section becomes typed SamplingRules and a versioned Scorecard."""
    path = setup(tmp_path, plans={"main.yaml": qa_plan({
        "sampling": {"seed": "k3y", "percent": 5, "queues": {"support": 10},
                     "routes": {"vendor": 20}, "vendors": {"acme": 30},
                     "min_per_agent_week": 4, "min_per_vendor_week": 10,
                     "always": {"longer_than": 900, "shorter_than": 15,
                                "repeat_caller_hours": 24}},
        "scorecards": {"support": CARD}})})
    result = check_config(path)
    assert result.config is not None, result.errors
    qa = result.config.dialplan.qa
    assert qa is not None and qa.sampling == SamplingRules(
        seed="k3y", percent=5, queue_percent={"support": 10}, route_percent={"vendor": 20},
        vendor_percent={"acme": 30}, min_per_agent_week=4, min_per_vendor_week=10,
        longer_than_s=900, shorter_than_s=15, repeat_caller_hours=24)
    card = qa.scorecards["support"]
    assert (card.version, card.queues, card.routes) == (2, ("support",), ("vendor",))
    assert card.sections[1].weight == 2.0
    assert card.questions()["verify"] == Question(
        id="verify", text="Verified identity?", kind=QuestionKind.YES_NO, auto_fail=True,
        allow_na=False)


def test_a_dialplan_without_qa_has_none(tmp_path: Path) -> None:
    """No qa section: no sampling, no scorecards."""
    result = check_config(setup(tmp_path))
    assert result.config is not None and result.config.dialplan.qa is None


@pytest.mark.parametrize(("qa", "key", "reason"), [
    ({"sampling": {"percent": 5}}, "qa.sampling.seed", "is required"),
    ({"sampling": {"seed": "k", "percent": 101}}, "qa.sampling.percent", "0 to 100"),
    ({"sampling": {"seed": "k", "routes": {"outsourced": 5}}}, "qa.sampling.routes.outsourced",
     "unknown route"),
    ({"sampling": {"seed": "k", "queues": {"sales": 5}}}, "qa.sampling.queues.sales",
     "unknown queue 'sales'"),
    ({"sampling": {"seed": "k", "vendors": {"initech": 5}}}, "qa.sampling.vendors.initech",
     "unknown vendor 'initech'"),
    ({"sampling": {"seed": "k", "min_per_agent_week": -1}}, "qa.sampling.min_per_agent_week",
     "whole number"),
    ({"sampling": {"seed": "k", "always": {"transfers": True}}},
     "qa.sampling.always.transfers", "unknown key"),
    ({"sampling": {"seed": "k", "always": {"repeat_caller_hours": 0}}},
     "qa.sampling.always.repeat_caller_hours", "hours above 0"),
])
def test_bad_sampling_rules_are_refused(tmp_path: Path, qa: Any, key: str, reason: str) -> None:
    """Each bad sampling value names its key and why."""
    assert reason in plan_error(tmp_path, qa_plan(qa), key)


def _card(**changes: Any) -> dict[str, Any]:
    return {"scorecards": {"support": {**CARD, **changes}}}


def _question(**changes: Any) -> dict[str, Any]:
    q = {"id": "q", "text": "?", "type": "yes_no", **changes}
    return _card(sections=[{"title": "S", "questions": [q]}])


@pytest.mark.parametrize(("qa", "key", "reason"), [
    (_card(version=0), "qa.scorecards.support.version", "whole number"),
    (_card(queues=["sales"]), "qa.scorecards.support.queues[0]", "unknown queue 'sales'"),
    (_card(routes=["nowhere"]), "qa.scorecards.support.routes[0]", "unknown route"),
    (_card(queues=[], routes=[]), "qa.scorecards.support", "names no queues and no routes"),
    (_card(sections=[]), "qa.scorecards.support.sections", "non-empty list"),
    (_question(type="stars"), "qa.scorecards.support.sections[0].questions[0].type",
     "unknown question type"),
    (_question(type="scale_0_10", auto_fail=True),
     "qa.scorecards.support.sections[0].questions[0].auto_fail", "only a yes_no"),
    (_question(weight=0), "qa.scorecards.support.sections[0].questions[0].weight",
     "above 0"),
    (_card(sections=[{"title": "S", "questions": [
        {"id": "q", "text": "?", "type": "yes_no"}, {"id": "q", "text": "!", "type": "yes_no"}]}]),
     "qa.scorecards.support.sections[0].questions[1].id", "used twice"),
])
def test_bad_scorecards_are_refused(tmp_path: Path, qa: Any, key: str, reason: str) -> None:
    """Each bad scorecard value names its key and why."""
    assert reason in plan_error(tmp_path, qa_plan(qa), key)


def test_sampling_in_two_files_is_refused(tmp_path: Path) -> None:
    """One center, one set of sampling rules: the second file's is an error."""
    path = setup(tmp_path, plans={"main.yaml": qa_plan({"sampling": {"seed": "a"}}),
                                  "more.yaml": {"qa": {"sampling": {"seed": "b"}}}})
    assert "already given in" in reason_of(failed(path), "qa.sampling",
                                           tmp_path / "plans" / "more.yaml")


def test_a_scorecard_name_in_two_files_is_refused(tmp_path: Path) -> None:
    """Scorecard names are global, like queue names."""
    path = setup(tmp_path, plans={"main.yaml": qa_plan(_card()),
                                  "more.yaml": {"qa": _card()}})
    assert "already defined in" in reason_of(failed(path), "qa.scorecards.support",
                                             tmp_path / "plans" / "more.yaml")


def test_the_commented_qa_example_loads_when_uncommented(tmp_path: Path) -> None:
    """dialplans/example.yaml's commented qa section is valid and means what it says."""
    from ccswitch.config import load_dialplans
    from tests.config.test_config_vendors import uncomment_examples

    repo = Path(__file__).resolve().parents[2]
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "sounds").symlink_to(repo / "dialplans" / "sounds")
    (plans / "example.yaml").write_text(
        uncomment_examples((repo / "dialplans" / "example.yaml").read_text()))
    qa = load_dialplans(plans).qa
    assert qa is not None and qa.sampling is not None
    assert (qa.sampling.percent, qa.sampling.vendor_percent, qa.sampling.min_per_agent_week,
            qa.sampling.repeat_caller_hours) == (2.0, {"acme": 15.0}, 5, 24.0)
    card = qa.scorecards["support"]
    assert card.questions()["identity"].auto_fail and card.sections[1].weight == 2.0
