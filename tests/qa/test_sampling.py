"""The pure sampling decision: rules in order, a seeded draw, fairness over agents."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from ccswitch.model import SamplingRules
from ccswitch.qa.sampling import CallFacts, Decision, decide, draw, percent_for


def facts(call_id: str = "c1", **kw: object) -> CallFacts:
    base: dict[str, object] = {"queue": "support", "route": "inhouse", "agent_id": "alice",
                               "talk_ms": 60_000}
    base.update(kw)
    return CallFacts(call_id=call_id, **base)  # type: ignore[arg-type]


def test_the_draw_is_the_same_for_the_same_seed_and_call() -> None:
    """Two nodes (or a re-run) draw the same number for a call."""
    assert draw("seed", "call-1") == draw("seed", "call-1")


def test_another_seed_draws_another_number() -> None:
    """The seed changes the draw, so a center can re-shuffle its sample."""
    assert draw("seed", "call-1") != draw("other", "call-1")


def test_the_draw_is_uniform_enough() -> None:
    """Over 10,000 call ids the draw is below 0.1 about 10 % of the time (within 1 %)."""
    below = sum(draw("s", f"call-{i}") < 0.1 for i in range(10_000))
    assert 900 <= below <= 1100


def test_percent_100_samples_every_call_as_random() -> None:
    """percent: 100 samples everything, reason random."""
    assert decide(SamplingRules(seed="s", percent=100), facts()) == Decision(sampled=True,
                                                                              reason="random")


def test_percent_0_samples_nothing_without_other_rules() -> None:
    """No rule: no sample."""
    assert decide(SamplingRules(seed="s"), facts()) == Decision(sampled=False)


def test_the_vendor_percent_wins_over_queue_and_route() -> None:
    """The most specific percentage applies: vendor, then queue, then route, then default."""
    rules = SamplingRules(seed="s", percent=1, queue_percent={"support": 2},
                          route_percent={"vendor": 3, "inhouse": 4}, vendor_percent={"acme": 5})
    assert percent_for(rules, facts(vendor="acme", route="vendor")) == 5
    assert percent_for(rules, facts(vendor="other", route="vendor")) == 2
    assert percent_for(rules, facts(queue="sales", route="vendor", vendor="x")) == 3
    assert percent_for(rules, facts(queue="sales", route="elsewhere")) == 1


@pytest.mark.parametrize(("talk_ms", "reason"), [(601_000, "long_call"), (9_000, "short_call"),
                                                 (60_000, None)])
def test_long_and_short_calls_are_always_included(talk_ms: int, reason: str | None) -> None:
    """Talk over longer_than_s or under shorter_than_s samples the call."""
    rules = SamplingRules(seed="s", longer_than_s=600, shorter_than_s=10)
    assert decide(rules, facts(talk_ms=talk_ms)).reason == reason


def test_an_unanswered_call_is_never_sampled() -> None:
    """A call with no talk time has nothing to review: no rule samples it."""
    rules = SamplingRules(seed="s", percent=100, shorter_than_s=10, repeat_caller_hours=24,
                          min_per_agent_week=5)
    assert decide(rules, facts(talk_ms=None, repeat_caller=True)) == Decision(sampled=False)


def test_a_repeat_caller_is_included_when_the_rule_is_on() -> None:
    """repeat_caller samples only with repeat_caller_hours set."""
    assert decide(SamplingRules(seed="s", repeat_caller_hours=24),
                  facts(repeat_caller=True)).reason == "repeat_caller"
    assert not decide(SamplingRules(seed="s"), facts(repeat_caller=True)).sampled


def test_agents_below_their_weekly_minimum_are_topped_up() -> None:
    """An agent with fewer samples this week than the minimum gets this call sampled."""
    rules = SamplingRules(seed="s", min_per_agent_week=3)
    assert decide(rules, facts(agent_week_samples=2)).reason == "agent_minimum"
    assert not decide(rules, facts(agent_week_samples=3)).sampled


def test_vendors_below_their_weekly_minimum_are_topped_up() -> None:
    """Likewise per vendor, for calls a vendor took."""
    rules = SamplingRules(seed="s", min_per_vendor_week=1)
    assert decide(rules, facts(agent_id=None, vendor="acme", route="vendor")
                  ).reason == "vendor_minimum"


def test_always_include_rules_come_before_the_top_up() -> None:
    """A long call is flagged as long_call even when the agent also needs a top-up."""
    rules = SamplingRules(seed="s", longer_than_s=60, min_per_agent_week=5)
    assert decide(rules, facts(talk_ms=120_000)).reason == "long_call"


def test_a_decision_names_a_known_reason() -> None:
    """A Decision refuses a reason that is no rule."""
    with pytest.raises(ValueError):
        Decision(sampled=True, reason="because")


def test_samples_spread_fairly_over_20_agents() -> None:
    """5,000 calls over 20 agents (uneven loads) at 5 % with a weekly minimum of 5: every
    agent gets min(5, their calls) topped up, and their random samples on the calls after
    that lie within 4 binomial standard deviations of 5 % (independent seeded draws)."""
    rng = random.Random(17)
    agents = [f"agent{i:02d}" for i in range(20)]
    weights = [1] * 4 + [5] * 8 + [10] * 8  # a few part-timers
    rules = SamplingRules(seed="fair", percent=5, min_per_agent_week=5)
    calls: Counter[str] = Counter()
    sampled: Counter[str] = Counter()
    reasons: Counter[tuple[str, str | None]] = Counter()
    for i in range(5000):
        agent = rng.choices(agents, weights)[0]
        calls[agent] += 1
        d = decide(rules, facts(f"call-{i}", agent_id=agent,
                                agent_week_samples=sampled[agent]))
        sampled[agent] += d.sampled
        reasons[(agent, d.reason)] += 1
    for agent in agents:
        topped_up = min(5, calls[agent])
        assert reasons[(agent, "agent_minimum")] == topped_up
        rest = calls[agent] - topped_up
        spread = 4 * math.sqrt(rest * 0.05 * 0.95)
        assert abs(reasons[(agent, "random")] - 0.05 * rest) <= spread, agent
