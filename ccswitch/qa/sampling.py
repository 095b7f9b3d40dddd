"""Which finished calls are sampled for review: a pure decision, no I/O.

:func:`decide` takes the rules (:class:`~ccswitch.model.SamplingRules`) and what is
known about one call (:class:`CallFacts`: the CDR row plus counts the store looked
up) and returns a :class:`Decision`. A call no one answered (no talk time) has no
conversation to review and is never sampled. For the others the rules are tried in
this order, the first that holds gives the reason:

1. always-include: ``long_call`` (talk over ``longer_than_s``), ``short_call``
   (answered, talk under ``shorter_than_s``), ``repeat_caller`` (the caller called
   within ``repeat_caller_hours`` before);
2. top-up: ``agent_minimum`` (the agent has fewer than ``min_per_agent_week``
   samples this week), ``vendor_minimum`` (likewise for the vendor);
3. ``random``: a seeded draw below the call's percentage.

The draw is HMAC-SHA256 of the call id keyed with the configured seed, so every
node, and any re-run, decides the same for the same call; it is uniform, so each
agent's share of random samples follows their share of calls, and the weekly
minimums lift agents with few calls first.
"""

from __future__ import annotations

import hashlib
import hmac

import attrs

from ccswitch.model import SamplingRules

__all__ = ["REASONS", "CallFacts", "Decision", "decide", "draw", "percent_for"]

#: Reasons, in the order they are tried.
REASONS = ("long_call", "short_call", "repeat_caller", "agent_minimum", "vendor_minimum",
           "random")


@attrs.frozen(kw_only=True)
class CallFacts:
    """One finished call as the sampler sees it.

    ``talk_ms`` is None for a call no one answered; the week counts are samples
    already flagged this week for the call's agent / vendor (0 if it has none).
    """

    call_id: str = attrs.field(validator=attrs.validators.min_len(1))
    queue: str
    route: str
    vendor: str | None = None
    agent_id: str | None = None
    talk_ms: int | None = None
    repeat_caller: bool = False
    agent_week_samples: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    vendor_week_samples: int = attrs.field(default=0, validator=attrs.validators.ge(0))


@attrs.frozen(kw_only=True)
class Decision:
    """Whether the call is sampled, and the first rule that sampled it."""

    sampled: bool
    reason: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.in_(REASONS)))


def draw(seed: str, call_id: str) -> float:
    """The call's reproducible random number in [0, 1)."""
    digest = hmac.new(seed.encode("utf-8"), call_id.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def percent_for(rules: SamplingRules, facts: CallFacts) -> float:
    """The random-sampling percentage for the call: vendor, else queue, else route, else
    the default."""
    if facts.vendor is not None and facts.vendor in rules.vendor_percent:
        return rules.vendor_percent[facts.vendor]
    if facts.queue in rules.queue_percent:
        return rules.queue_percent[facts.queue]
    return rules.route_percent.get(facts.route, rules.percent)


def decide(rules: SamplingRules, facts: CallFacts) -> Decision:
    """Whether to sample the call, and why (see the module docstring)."""
    if facts.talk_ms is None:
        return Decision(sampled=False)
    talk_s = facts.talk_ms / 1000
    if rules.longer_than_s is not None and talk_s > rules.longer_than_s:
        return Decision(sampled=True, reason="long_call")
    if rules.shorter_than_s is not None and talk_s < rules.shorter_than_s:
        return Decision(sampled=True, reason="short_call")
    if rules.repeat_caller_hours is not None and facts.repeat_caller:
        return Decision(sampled=True, reason="repeat_caller")
    if facts.agent_id is not None and facts.agent_week_samples < rules.min_per_agent_week:
        return Decision(sampled=True, reason="agent_minimum")
    if facts.vendor is not None and facts.vendor_week_samples < rules.min_per_vendor_week:
        return Decision(sampled=True, reason="vendor_minimum")
    if draw(rules.seed, facts.call_id) * 100 < percent_for(rules, facts):
        return Decision(sampled=True, reason="random")
    return Decision(sampled=False)
