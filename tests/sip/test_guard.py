"""SourceGuard, driven by twisted.internet.task.Clock."""

from __future__ import annotations

import ipaddress
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from ccswitch.errors import CCSwitchError
from ccswitch.model import DEFAULT_SCANNER_AGENTS, AdmissionConfig, GuardConfig, GuardConfigError
from ccswitch.sip.guard import SourceGuard, Verdict

IP = "203.0.113.7"
OTHER = "198.51.100.9"


def make_guard(clock: Clock, **kw: Any) -> SourceGuard:
    return SourceGuard(GuardConfig(**kw), clock)


def drain(guard: SourceGuard, ip: str = IP, n: int = 1000) -> list[Verdict]:
    return [guard.check(ip, None) for _ in range(n)]


# --- token bucket ---------------------------------------------------------------------


def test_fresh_source_gets_exactly_burst() -> None:
    """A new source may send ``burst`` requests at once, and the next is rate limited."""
    guard = make_guard(Clock(), rate=1.0, burst=5)
    verdicts = [guard.check(IP, None) for _ in range(6)]
    assert verdicts == [Verdict.ALLOW] * 5 + [Verdict.RATE_LIMITED]


def test_bucket_refills_at_rate() -> None:
    """After the burst, rate * elapsed tokens come back: 4/s for 0.5 s gives 2."""
    clock = Clock()
    guard = make_guard(clock, rate=4.0, burst=3)
    drain(guard, n=3)
    clock.advance(0.5)
    assert [guard.check(IP, None) for _ in range(3)] == [
        Verdict.ALLOW, Verdict.ALLOW, Verdict.RATE_LIMITED]


def test_fractional_tokens_accumulate() -> None:
    """Two 0.25 s gaps at 2/s add up to one token."""
    clock = Clock()
    guard = make_guard(clock, rate=2.0, burst=1)
    assert guard.check(IP, None) is Verdict.ALLOW
    clock.advance(0.25)
    assert guard.check(IP, None) is Verdict.RATE_LIMITED
    clock.advance(0.25)
    assert guard.check(IP, None) is Verdict.ALLOW


def test_refill_is_capped_at_burst() -> None:
    """A long quiet spell refills the bucket to ``burst`` and no further."""
    clock = Clock()
    guard = make_guard(clock, rate=10.0, burst=4)
    drain(guard, n=4)
    clock.advance(3600)
    assert drain(guard, n=5) == [Verdict.ALLOW] * 4 + [Verdict.RATE_LIMITED]


def test_sources_have_separate_buckets() -> None:
    """Draining one source leaves another's bucket full."""
    guard = make_guard(Clock(), rate=1.0, burst=2)
    drain(guard, IP, n=10)
    assert guard.check(OTHER, None) is Verdict.ALLOW


# --- bans ---------------------------------------------------------------------------------


def test_ban_after_nth_refusal() -> None:
    """The ``ban_after``-th refusal for rate is answered BANNED; the ones before RATE_LIMITED."""
    guard = make_guard(Clock(), rate=1.0, burst=2, ban_after=3)
    verdicts = [guard.check(IP, None) for _ in range(5)]
    assert verdicts == [Verdict.ALLOW, Verdict.ALLOW, Verdict.RATE_LIMITED,
                        Verdict.RATE_LIMITED, Verdict.BANNED]


def test_banned_lists_source_with_end() -> None:
    """banned() maps the source to the clock time its ban ends."""
    clock = Clock()
    clock.advance(1000.0)
    guard = make_guard(clock, rate=1.0, burst=1, ban_after=1, ban_seconds=300.0)
    drain(guard, n=2)
    assert guard.banned() == {IP: 1300.0}


def test_banned_source_stays_dropped_with_tokens_due() -> None:
    """During the ban every request is BANNED, even once the bucket would have refilled."""
    clock = Clock()
    guard = make_guard(clock, rate=100.0, burst=1, ban_after=1, ban_seconds=60.0)
    drain(guard, n=2)
    clock.advance(59.0)
    assert drain(guard, n=3) == [Verdict.BANNED] * 3


def test_refusals_spread_beyond_window_do_not_ban() -> None:
    """Refusals more than ``ban_seconds`` apart start a new window and never reach ban_after."""
    clock = Clock()
    guard = make_guard(clock, rate=0.001, burst=1, ban_after=2, ban_seconds=10.0)
    assert guard.check(IP, None) is Verdict.ALLOW
    assert guard.check(IP, None) is Verdict.RATE_LIMITED
    clock.advance(10.0)
    assert guard.check(IP, None) is Verdict.RATE_LIMITED
    assert guard.banned() == {}


def test_ban_expires_exactly_at_end() -> None:
    """A request just before the ban end is BANNED; one at the end is allowed again."""
    clock = Clock()
    guard = make_guard(clock, rate=1.0, burst=1, ban_after=1, ban_seconds=300.0)
    drain(guard, n=2)
    clock.advance(299.5)
    assert guard.check(IP, None) is Verdict.BANNED
    clock.advance(0.5)
    assert guard.check(IP, None) is Verdict.ALLOW
    assert guard.banned() == {}


def test_banned_omits_ended_bans() -> None:
    """banned() lists only live bans, even before the source is seen again."""
    clock = Clock()
    guard = make_guard(clock, rate=1.0, burst=1, ban_after=1, ban_seconds=5.0)
    drain(guard, n=2)
    clock.advance(5.0)
    assert guard.banned() == {}


def test_source_starts_afresh_after_ban() -> None:
    """When a long ban ends the source has a full bucket and a new refusal count."""
    clock = Clock()
    guard = make_guard(clock, rate=1.0, burst=3, ban_after=2, ban_seconds=5.0)
    drain(guard, n=5)
    clock.advance(5.0)
    assert drain(guard, n=5) == [Verdict.ALLOW] * 3 + [Verdict.RATE_LIMITED, Verdict.BANNED]


def test_bucket_after_short_ban_holds_only_what_the_ban_refilled() -> None:
    """After a ban shorter than a full refill the source has rate * ban_seconds tokens."""
    clock = Clock()
    guard = make_guard(clock, rate=1.0, burst=10, ban_after=1, ban_seconds=2.0)
    drain(guard, n=11)
    clock.advance(2.0)
    assert drain(guard, n=3) == [Verdict.ALLOW, Verdict.ALLOW, Verdict.BANNED]


def test_take_new_bans_reports_each_ban_once() -> None:
    """Each ban is handed out by take_new_bans exactly once, in order."""
    guard = make_guard(Clock(), rate=1.0, burst=1, ban_after=1)
    drain(guard, IP, n=5)
    drain(guard, OTHER, n=5)
    assert guard.take_new_bans() == [IP, OTHER]
    assert guard.take_new_bans() == []


def test_take_new_bans_reports_a_second_ban_after_expiry() -> None:
    """A source banned again after its ban ended is reported again."""
    clock = Clock()
    guard = make_guard(clock, rate=1.0, burst=1, ban_after=1, ban_seconds=5.0)
    drain(guard, n=3)
    guard.take_new_bans()
    clock.advance(5.0)
    drain(guard, n=3)
    assert guard.take_new_bans() == [IP]


# --- exempt networks and IPv6 ---------------------------------------------------------------


def test_exempt_network_bypasses_rate_and_ban() -> None:
    """A source inside an exempt network is always allowed, however fast it sends."""
    guard = make_guard(Clock(), rate=1.0, burst=1, ban_after=1,
                       exempt=(ipaddress.ip_network("10.1.0.0/16"),))
    assert set(drain(guard, "10.1.2.3", n=500)) == {Verdict.ALLOW}
    assert guard.banned() == {}


def test_exempt_network_bypasses_scanner_check() -> None:
    """An exempt source is allowed even with a scanner User-Agent."""
    guard = make_guard(Clock(), exempt=(ipaddress.ip_network("10.1.0.0/16"),))
    assert guard.check("10.1.2.3", "friendly-scanner") is Verdict.ALLOW


def test_address_outside_exempt_network_is_limited() -> None:
    """A neighbour just outside the exempt network is limited as usual."""
    guard = make_guard(Clock(), rate=1.0, burst=1,
                       exempt=(ipaddress.ip_network("10.1.0.0/16"),))
    assert drain(guard, "10.2.0.1", n=2) == [Verdict.ALLOW, Verdict.RATE_LIMITED]


def test_exempt_ipv6_network() -> None:
    """An IPv6 source inside an exempt IPv6 network is never limited."""
    guard = make_guard(Clock(), rate=1.0, burst=1,
                       exempt=(ipaddress.ip_network("2001:db8:aa::/48"),))
    assert set(drain(guard, "2001:db8:aa:1::5", n=50)) == {Verdict.ALLOW}


def test_ipv6_source_is_limited_and_banned() -> None:
    """IPv6 sources get the bucket and the ban, keyed by their /64."""
    guard = make_guard(Clock(), rate=1.0, burst=1, ban_after=2)
    assert drain(guard, "2001:db8:1:2::10", n=3) == [
        Verdict.ALLOW, Verdict.RATE_LIMITED, Verdict.BANNED]
    assert list(guard.banned()) == ["2001:db8:1:2::/64"]


def test_ipv6_addresses_in_one_64_share_a_bucket() -> None:
    """Hopping addresses inside one /64 does not earn new tokens."""
    guard = make_guard(Clock(), rate=1.0, burst=2)
    assert guard.check("2001:db8:1:2::1", None) is Verdict.ALLOW
    assert guard.check("2001:db8:1:2::2", None) is Verdict.ALLOW
    assert guard.check("2001:db8:1:2:ffff::3", None) is Verdict.RATE_LIMITED
    assert guard.check("2001:db8:1:3::1", None) is Verdict.ALLOW


def test_ipv6_prefix_128_limits_per_address() -> None:
    """With ipv6_prefix=128 each IPv6 address has its own bucket."""
    guard = make_guard(Clock(), rate=1.0, burst=1, ipv6_prefix=128)
    assert guard.check("2001:db8::1", None) is Verdict.ALLOW
    assert guard.check("2001:db8::2", None) is Verdict.ALLOW


def test_ipv4_mapped_ipv6_counts_as_ipv4() -> None:
    """::ffff:a.b.c.d shares the IPv4 address's bucket and exemption."""
    guard = make_guard(Clock(), rate=1.0, burst=1,
                       exempt=(ipaddress.ip_network("10.0.0.0/8"),))
    assert guard.check(IP, None) is Verdict.ALLOW
    assert guard.check(f"::ffff:{IP}", None) is Verdict.RATE_LIMITED
    assert set(drain(guard, "::ffff:10.0.0.5", n=10)) == {Verdict.ALLOW}


def test_unparsable_source_is_tracked_not_raised() -> None:
    """A source string that is not an address is limited verbatim instead of raising."""
    guard = make_guard(Clock(), rate=1.0, burst=1)
    assert drain(guard, "not:an:address", n=2) == [Verdict.ALLOW, Verdict.RATE_LIMITED]


# --- scanner User-Agents ---------------------------------------------------------------------


@pytest.mark.parametrize("agent", [
    "friendly-scanner", "Friendly-Scanner", "sipcli/v1.8", "VaxSIPUserAgent/3.1",
    "pplsip", "sundayddr", "SIPVicious 0.3.4", "x friendly-scanner y",
])
def test_scanner_user_agent_matched_case_insensitively_as_substring(agent: str) -> None:
    """Known scanner User-Agents are recognised anywhere in the header, in any case."""
    guard = make_guard(Clock())
    assert guard.check(IP, agent) is Verdict.SCANNER


@pytest.mark.parametrize("agent", [None, "", "Yealink SIP-T46S 66.86.0.15",
                                   "Cisco-SIPGateway/IOS-15.x", "SIPp/v3.7.2", "ccswitch"])
def test_ordinary_or_missing_user_agent_allowed(agent: str | None) -> None:
    """Real phones, gateways, test tools and a missing User-Agent are not scanners."""
    guard = make_guard(Clock())
    assert guard.check(IP, agent) is Verdict.ALLOW


def test_scanner_requests_spend_tokens_and_end_banned() -> None:
    """A scanner flood drains the bucket like any flood and ends in a ban."""
    guard = make_guard(Clock(), rate=1.0, burst=2, ban_after=1)
    verdicts = [guard.check(IP, "friendly-scanner") for _ in range(3)]
    assert verdicts == [Verdict.SCANNER, Verdict.SCANNER, Verdict.BANNED]


def test_empty_scanner_list_disables_matching() -> None:
    """With no scanner_agents configured every User-Agent is allowed."""
    guard = make_guard(Clock(), scanner_agents=())
    assert guard.check(IP, "friendly-scanner") is Verdict.ALLOW


def test_default_scanner_list_is_short_and_lowercase_unique() -> None:
    """The default list stays a handful of distinct entries."""
    lowered = {a.lower() for a in DEFAULT_SCANNER_AGENTS}
    assert len(lowered) == len(DEFAULT_SCANNER_AGENTS) <= 10


# --- memory bounds ---------------------------------------------------------------------------


def test_source_table_bounded_under_100k_sources() -> None:
    """100k distinct sources keep at most ``max_sources`` entries of per-source state."""
    guard = make_guard(Clock(), max_sources=1000)
    for i in range(100_000):
        guard.check(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", None)
    assert len(guard._sources) == 1000
    assert len(guard._bans) == 0


def test_ipv6_key_cache_bounded() -> None:
    """Many distinct IPv6 sources keep the IPv6 key cache within ``max_sources``."""
    guard = make_guard(Clock(), max_sources=100)
    for i in range(5000):
        guard.check(f"2001:db8:{i:x}::1", None)
    assert len(guard._v6_keys) <= 100 and len(guard._sources) == 100


def test_ban_table_bounded() -> None:
    """More bans than ``max_sources`` keep only the newest ``max_sources`` bans."""
    guard = make_guard(Clock(), rate=1.0, burst=1, ban_after=1, max_sources=50)
    for i in range(200):
        drain(guard, f"192.0.2.{i}", n=2)
    assert len(guard._bans) == 50
    assert "192.0.2.199" in guard.banned() and "192.0.2.0" not in guard.banned()


def test_new_bans_queue_bounded() -> None:
    """Unclaimed new bans are capped at ``max_sources``, keeping the newest."""
    guard = make_guard(Clock(), rate=1.0, burst=1, ban_after=1, max_sources=10)
    for i in range(30):
        drain(guard, f"192.0.2.{i}", n=2)
    assert guard.take_new_bans() == [f"192.0.2.{i}" for i in range(20, 30)]


def test_least_recently_seen_source_is_forgotten_first() -> None:
    """At the bound the source seen least recently loses its state (and so its debt)."""
    guard = make_guard(Clock(), rate=1.0, burst=1, max_sources=2)
    guard.check("192.0.2.1", None)
    guard.check("192.0.2.2", None)
    guard.check("192.0.2.1", None)  # seen again: .2 is now the oldest
    guard.check("192.0.2.3", None)  # evicts .2
    assert list(guard._sources) == ["192.0.2.1", "192.0.2.3"]
    assert guard.check("192.0.2.1", None) is Verdict.RATE_LIMITED  # kept its empty bucket


def test_ban_survives_source_table_churn() -> None:
    """A spoofed flood of fresh sources does not lift a ban (bans live apart from the LRU)."""
    guard = make_guard(Clock(), rate=1.0, burst=1, ban_after=1, max_sources=10)
    drain(guard, n=2)
    for i in range(1000):
        guard.check(f"10.0.{i >> 8}.{i & 255}", None)
    assert guard.check(IP, None) is Verdict.BANNED


# --- property -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=0.1, max_value=100.0),
    burst=st.integers(min_value=1, max_value=50),
    ban_after=st.integers(min_value=1, max_value=1000),
    ban_seconds=st.floats(min_value=0.1, max_value=10.0),
    timeline=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=5.0), st.integers(min_value=0, max_value=30)),
        max_size=60),
)
def test_allowed_never_exceeds_burst_plus_rate_times_elapsed(
    rate: float, burst: int, ban_after: int, ban_seconds: float,
    timeline: list[tuple[float, int]],
) -> None:
    """For any timeline a source gets at most burst + rate * elapsed ALLOW verdicts."""
    clock = Clock()
    guard = make_guard(clock, rate=rate, burst=burst, ban_after=ban_after,
                       ban_seconds=ban_seconds)
    allowed = 0
    for gap, count in timeline:
        clock.advance(gap)
        for _ in range(count):
            allowed += guard.check(IP, None) is Verdict.ALLOW
        # 1e-6 absorbs float rounding in the bucket, far below one token.
        assert allowed <= math.floor(burst + rate * clock.seconds() + 1e-6)


# --- config validation -----------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("rate", 0), ("rate", -1.0), ("rate", math.inf), ("rate", math.nan), ("rate", "20"),
    ("burst", 0), ("burst", 1.5), ("burst", True),
    ("ban_after", 0), ("ban_seconds", 0.0), ("ban_seconds", -5),
    ("scanner_agents", ["friendly-scanner"]), ("scanner_agents", ("ok", "")),
    ("scanner_agents", (" ",)),
    ("exempt", ("10.0.0.0/8",)), ("exempt", [ipaddress.ip_network("10.0.0.0/8")]),
    ("max_sources", 0), ("ipv6_prefix", 0), ("ipv6_prefix", 129),
])
def test_guard_config_rejects_invalid_values(field: str, value: object) -> None:
    """A bad GuardConfig value fails when built, naming the setting."""
    kwargs: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        GuardConfig(**kwargs)


@pytest.mark.parametrize(("field", "value"), [
    ("max_calls", -1), ("max_calls", 2.0), ("max_calls", False),
    ("max_call_rate", 0.0), ("max_call_rate", -3), ("max_call_rate", math.inf),
    ("retry_after", -1), ("retry_after", 1.5),
])
def test_admission_config_rejects_invalid_values(field: str, value: object) -> None:
    """A bad AdmissionConfig value fails when built, naming the setting."""
    kwargs: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        AdmissionConfig(**kwargs)


def test_config_error_is_in_the_ccswitch_tree() -> None:
    """Config errors are both ValueError and CCSwitchError, with a stable id."""
    with pytest.raises(GuardConfigError) as info:
        GuardConfig(rate=0)
    assert isinstance(info.value, CCSwitchError) and info.value.error_id == "config.guard"


def test_defaults_are_valid() -> None:
    """The documented defaults build without error."""
    config = GuardConfig()
    assert (config.rate, config.burst, config.ban_after, config.ban_seconds,
            config.max_sources) == (20.0, 60, 100, 300.0, 10000)


def test_is_banned_follows_the_ban_and_costs_nothing_without_bans() -> None:
    """is_banned: False with no bans; True for a banned source (IPv4 and its IPv6 /64)
    until the ban ends; other sources stay unbanned."""
    clock = Clock()
    guard = SourceGuard(GuardConfig(rate=1.0, burst=1, ban_after=2, ban_seconds=10.0), clock)
    assert not guard.is_banned("192.0.2.1")
    for source in ("192.0.2.1", "2001:db8:1:2::1"):
        while guard.check(source, None) is not Verdict.BANNED:
            pass
    assert guard.is_banned("192.0.2.1") and guard.is_banned("2001:db8:1:2::99")
    assert not guard.is_banned("192.0.2.2") and not guard.is_banned("2001:db8:1:3::1")
    clock.advance(10.0)
    assert not guard.is_banned("192.0.2.1") and not guard.is_banned("2001:db8:1:2::1")
