"""Dialplan vendors, calendars and overflow rules: what the loader builds and what it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ccswitch.config import check_config, load_dialplans
from ccswitch.model import CatchUp, CatchUpPeriod, Condition, MaxWait, ServiceLevel
from tests.config.test_config import failed, plan, plan_error, reason_of, setup


def vendor_plan(**queue: Any) -> dict[str, Any]:
    """plan() plus two vendors, a calendar and the given queue options."""
    data = plan()
    data["calendars"] = {"office": {"timezone": "Europe/Berlin",
                                    "hours": {"mon-fri": ["08:00-18:00"]}}}
    data["vendors"] = {
        "acme": {"trunks": ["sip:overflow@127.0.0.1:5070", "sip:overflow@127.0.0.1:5071"],
                 "max_channels": 20, "schedule": "office", "username": "cc",
                 "password": "secret"},
        "globex": {"trunks": "sip:q@127.0.0.1:5072", "max_channels": 5, "ring_timeout": 20,
                   "failures": 2, "cooldown": 120, "probe_interval": 0},
    }
    data["queues"]["support"].update(queue)
    return data


RULES = [
    {"no_agents_logged_in": True, "to": ["acme", "globex"]},
    {"wait_exceeds": 60, "to": ["acme"]},
    {"queue_length_exceeds": 5, "to": ["globex"]},
    {"outside_hours": "office", "to": ["globex"]},
    {"service_level_below": {"percent": 80, "within": 20, "window": 900}, "to": ["acme"]},
    {"share": {"vendor": "acme", "percent": 20}},
]


def test_vendors_calendars_and_rules_are_loaded(tmp_path: Path) -> None:
    """A full vendor set-up loads into typed vendors, calendars and rules in order."""
    path = setup(tmp_path, plans={"main.yaml": vendor_plan(
        overflow=RULES, max_wait={"seconds": 600, "to": ["globex"],
                                  "announcement": "sounds/a.wav"},
        inhouse_takeover=False)})
    result = check_config(path)
    assert result.config is not None, result.errors
    dialplan = result.config.dialplan
    acme, globex = dialplan.vendors["acme"], dialplan.vendors["globex"]
    assert (acme.trunks, acme.max_channels, acme.schedule, acme.username) == (
        ("sip:overflow@127.0.0.1:5070", "sip:overflow@127.0.0.1:5071"), 20, "office", "cc")
    assert (globex.trunks, globex.ring_timeout, globex.failures, globex.cooldown,
            globex.probe_interval) == (("sip:q@127.0.0.1:5072",), 20.0, 2, 120.0, 0.0)
    assert (acme.ring_timeout, acme.failures, acme.cooldown, acme.probe_interval) == (
        30.0, 3, 60.0, 30.0)
    queue = dialplan.queues["support"]
    assert [r.condition for r in queue.overflow] == [
        Condition.NO_AGENTS_LOGGED_IN, Condition.WAIT_EXCEEDS, Condition.QUEUE_LENGTH_EXCEEDS,
        Condition.OUTSIDE_HOURS, Condition.SERVICE_LEVEL_BELOW, Condition.SHARE]
    assert queue.overflow[0].vendors == ("acme", "globex")
    assert (queue.overflow[1].seconds, queue.overflow[2].length, queue.overflow[3].calendar) == (
        60.0, 5, "office")
    assert queue.overflow[4].service_level == ServiceLevel(percent=80.0, within=20.0,
                                                           window=900.0)
    assert (queue.overflow[5].vendors, queue.overflow[5].percent) == (("acme",), 20.0)
    assert queue.max_wait == MaxWait(seconds=600.0, vendors=("globex",),
                                     announcement=tmp_path / "plans" / "sounds" / "a.wav")
    assert queue.inhouse_takeover is False
    assert dialplan.calendars["office"].timezone == "Europe/Berlin"


@pytest.mark.parametrize(("share", "catch_up"), [
    ({}, CatchUp(period=CatchUpPeriod.HOUR)),
    ({"catch_up": "none"}, CatchUp(period=CatchUpPeriod.NONE)),
    ({"catch_up": "day", "calendar": "office"},
     CatchUp(period=CatchUpPeriod.DAY, calendar="office")),
    ({"catch_up": {"calls": 12}}, CatchUp(period=CatchUpPeriod.CALLS, calls=12)),
])
def test_share_catch_up_is_loaded_with_hour_by_default(
        tmp_path: Path, share: dict[str, Any], catch_up: CatchUp) -> None:
    """catch_up: hour unless the share says none, day or {calls: N}; calendar sets the zone."""
    rules = [{"share": {"vendor": "acme", "percent": 20, **share}}]
    result = check_config(setup(tmp_path, plans={"main.yaml": vendor_plan(overflow=rules)}))
    assert result.config is not None, result.errors
    assert result.config.dialplan.queues["support"].overflow[0].catch_up == catch_up


def test_a_queue_without_rules_keeps_the_defaults(tmp_path: Path) -> None:
    """No overflow keys: no rules, no max wait, takeover allowed."""
    result = check_config(setup(tmp_path))
    assert result.config is not None
    queue = result.config.dialplan.queues["support"]
    assert (queue.overflow, queue.max_wait, queue.inhouse_takeover) == ((), None, True)


@pytest.mark.parametrize(("rules", "key", "reason"), [
    ([{"wait_exceeds": 10, "to": ["initech"]}], "queues.support.overflow[0].to[0]",
     "unknown vendor 'initech'"),
    ([{"share": {"vendor": "initech", "percent": 10}}],
     "queues.support.overflow[0].share.vendor", "unknown vendor 'initech'"),
    ([{"outside_hours": "weekend", "to": ["acme"]}], "queues.support.overflow[0].outside_hours",
     "unknown calendar 'weekend'"),
    ([{"share": {"vendor": "acme", "percent": 70}}, {"share": {"vendor": "globex",
                                                               "percent": 40}}],
     "queues.support.overflow[1].share", "add up to 110 %, over 100 %"),
    ([{"share": {"vendor": "acme", "percent": 10}}, {"share": {"vendor": "acme",
                                                               "percent": 10}}],
     "queues.support.overflow[1].share", "already has a share"),
    ([{"wait_exceeds": 10}], "queues.support.overflow[0].wait_exceeds", "needs to:"),
    ([{"wait_exceeds": 10, "no_agents_available": True, "to": ["acme"]}],
     "queues.support.overflow[0]", "exactly one condition"),
    ([{"to": ["acme"]}], "queues.support.overflow[0]", "exactly one condition, got none"),
    ([{"wait_exceeds": -1, "to": ["acme"]}], "queues.support.overflow[0].wait_exceeds",
     ">= 0"),
    ([{"no_agents_available": "yes", "to": ["acme"]}],
     "queues.support.overflow[0].no_agents_available", "must be true"),
    ([{"wait_exceeds": 5, "to": []}], "queues.support.overflow[0].to", "non-empty list"),
    ([{"wait_exceeds": 5, "to": ["acme", "acme"]}], "queues.support.overflow[0].to",
     "names a vendor twice"),
    ([{"share": {"vendor": "acme", "percent": 0}}],
     "queues.support.overflow[0].share.percent", "above 0 and at most 100"),
    ([{"share": {"vendor": "acme", "percent": 10}, "to": ["acme"]}],
     "queues.support.overflow[0].to", "names its vendor in share.vendor"),
    ([{"service_level_below": {"percent": 80, "within": 20, "window": 10}, "to": ["acme"]}],
     "queues.support.overflow[0].service_level_below.window", "at least within"),
    ([{"service_level_below": {"percent": 80, "within": 20}, "to": ["acme"]}],
     "queues.support.overflow[0].service_level_below.window", "is required"),
    ([{"wait_exceeds": 5, "to": ["acme"], "when": 1}], "queues.support.overflow[0].when",
     "unknown key"),
    ("fast", "queues.support.overflow", "must be a list of rules"),
    ([{"share": {"vendor": "acme", "percent": 10, "catch_up": "week"}}],
     "queues.support.overflow[0].share.catch_up", "none, hour, day or {calls: N}"),
    ([{"share": {"vendor": "acme", "percent": 10, "catch_up": {"calls": 0}}}],
     "queues.support.overflow[0].share.catch_up.calls", ">= 1"),
    ([{"share": {"vendor": "acme", "percent": 10, "calendar": "weekend"}}],
     "queues.support.overflow[0].share.calendar", "unknown calendar 'weekend'"),
    ([{"share": {"vendor": "acme", "percent": 10, "catch_up": "none",
                 "calendar": "office"}}],
     "queues.support.overflow[0].share.calendar", "only catch_up: hour or day"),
])
def test_bad_overflow_rules_are_refused_with_file_key_and_reason(
        tmp_path: Path, rules: Any, key: str, reason: str) -> None:
    """Each bad rule is reported at its key with a reason."""
    assert reason in plan_error(tmp_path, vendor_plan(overflow=rules), key)


@pytest.mark.parametrize(("vendor", "key", "reason"), [
    ({"max_channels": 5}, "vendors.acme.trunks", "is required"),
    ({"trunks": [], "max_channels": 5}, "vendors.acme.trunks", "list of SIP URIs"),
    ({"trunks": ["http://x"], "max_channels": 5}, "vendors.acme.trunks[0]", "'http://x'"),
    ({"trunks": ["sip:a@h"], "max_channels": 0}, "vendors.acme.max_channels", ">= 1"),
    ({"trunks": ["sip:a@h"]}, "vendors.acme.max_channels", "is required"),
    ({"trunks": ["sip:a@h"], "max_channels": 5, "username": "u"}, "vendors.acme.password",
     "go together"),
    ({"trunks": ["sip:a@h"], "max_channels": 5, "schedule": "nights"}, "vendors.acme.schedule",
     "unknown calendar 'nights'"),
    ({"trunks": ["sip:a@h"], "max_channels": 5, "cooldown": 0}, "vendors.acme.cooldown", "> 0"),
    ({"trunks": ["sip:a@h"], "max_channels": 5, "channels": 3}, "vendors.acme.channels",
     "unknown key"),
])
def test_bad_vendors_are_refused(tmp_path: Path, vendor: dict[str, Any], key: str,
                                 reason: str) -> None:
    """Vendor definitions are checked key by key."""
    data = vendor_plan(overflow=[{"wait_exceeds": 5, "to": ["acme", "globex"]}])
    data["vendors"]["acme"] = vendor
    assert reason in plan_error(tmp_path, data, key)


@pytest.mark.parametrize(("calendar", "key", "reason"), [
    ({"timezone": "Mars/Olympus", "hours": {}}, "calendars.office.timezone",
     "unknown time zone"),
    ({"timezone": "UTC", "hours": {"mon": ["08:00-12:00", "11:00-13:00"]}},
     "calendars.office.hours.mon[1]", "overlaps"),
    ({"timezone": "UTC", "hours": {"mon": ["18:00-08:00"]}}, "calendars.office.hours.mon[0]",
     "overnight"),
    ("always", "calendars.office", "must be a mapping"),
])
def test_bad_calendars_are_refused(tmp_path: Path, calendar: Any, key: str,
                                   reason: str) -> None:
    """Invalid or overlapping calendars fail with the calendar's key."""
    data = vendor_plan(overflow=[{"outside_hours": "office", "to": ["acme", "globex"]}])
    data["calendars"]["office"] = calendar
    assert reason in plan_error(tmp_path, data, key)


def test_vendors_and_calendars_may_live_in_another_file(tmp_path: Path) -> None:
    """Names are global: a queue in one file may use a vendor and calendar from another."""
    main = vendor_plan(overflow=[{"outside_hours": "office", "to": ["acme"]}])
    shared = {"vendors": main.pop("vendors"), "calendars": main.pop("calendars")}
    result = check_config(setup(tmp_path, plans={"a.yaml": main, "b.yaml": shared}))
    assert result.config is not None, result.errors
    assert "globex" in result.config.dialplan.vendors
    assert any("vendor is not used" in w for w in result.warnings)


def test_a_vendor_defined_twice_is_an_error(tmp_path: Path) -> None:
    """The same vendor name in two files is refused, naming the first."""
    main = vendor_plan()
    other = {"vendors": {"acme": {"trunks": ["sip:a@h"], "max_channels": 1}}}
    errors = failed(setup(tmp_path, plans={"a.yaml": main, "b.yaml": other}))
    assert "already defined" in reason_of(errors, "vendors.acme")


def uncomment_examples(text: str) -> str:
    """Uncomment the lines between "# --- example: ... ---" and "# --- end of example ---"."""
    out, inside = [], False
    for line in text.splitlines():
        marker = line.strip()
        if marker.startswith("# --- example:"):
            inside = True
        elif marker == "# --- end of example ---":
            inside = False
        elif inside and marker == "#":
            line = ""
        elif inside:
            indent = len(line) - len(line.lstrip())
            assert line[indent:].startswith("# "), f"not commented YAML: {line!r}"
            line = line[:indent] + line[indent + 2:]
        out.append(line)
    assert not inside
    return "\n".join(out) + "\n"


def test_the_commented_vendor_example_loads_when_uncommented(tmp_path: Path) -> None:
    """dialplans/example.yaml's commented overflow, calendar and vendor examples are valid."""
    repo = Path(__file__).resolve().parents[2]
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "sounds").symlink_to(repo / "dialplans" / "sounds")
    (plans / "example.yaml").write_text(
        uncomment_examples((repo / "dialplans" / "example.yaml").read_text()))
    dialplan = load_dialplans(plans)
    queue = dialplan.queues["support"]
    assert [r.condition.value for r in queue.overflow] == [
        "share", "outside_hours", "no_agents_logged_in", "no_agents_available",
        "queue_length_exceeds", "service_level_below", "wait_exceeds"]
    assert queue.max_wait is not None and queue.inhouse_takeover is True
    assert dialplan.vendors["acme"].trunks[1] == "sip:overflow@10.0.0.6:5060"
    assert dialplan.calendars["office"].timezone == "Europe/Berlin"


def test_api_token_file_is_checked(tmp_path: Path) -> None:
    """http.api_token_file: a short token is refused; a readable-by-others file warns."""
    from tests.config.test_config import service
    cfg = service()
    token = tmp_path / "token"
    cfg["http"]["api_token_file"] = str(token)
    token.write_text("short\n")
    errors = failed(setup(tmp_path, config=cfg))
    assert "at least 24 printable characters" in reason_of(errors, "http.api_token_file")
    token.write_text("k" * 32 + "\n")
    token.chmod(0o644)
    result = check_config(tmp_path / "ccswitch.yaml")
    assert result.config is not None and result.config.http.api_token_file == token
    assert any("readable by other users" in w for w in result.warnings)


def test_vendor_dead_trunk_settings_have_short_defaults(tmp_path: Path) -> None:
    """probe_timeout 4 s, dead_media_timeout 5 s, keepalive_interval 30 s by default; all
    can be set."""
    data = vendor_plan()
    data["vendors"]["globex"].update(probe_timeout=1.5, dead_media_timeout=0,
                                     keepalive_interval=0)
    result = check_config(setup(tmp_path, plans={"main.yaml": data}))
    assert result.config is not None, result.errors
    acme, globex = result.config.dialplan.vendors["acme"], result.config.dialplan.vendors["globex"]
    assert (acme.probe_timeout, acme.dead_media_timeout, acme.keepalive_interval) == (
        4.0, 5.0, 30.0)
    assert (globex.probe_timeout, globex.dead_media_timeout, globex.keepalive_interval) == (
        1.5, 0.0, 0.0)


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("probe_timeout", 0, "> 0"),
    ("dead_media_timeout", -1, ">= 0"),
    ("keepalive_interval", -1, ">= 0"),
])
def test_bad_dead_trunk_settings_are_refused(tmp_path: Path, key: str, value: object,
                                             reason: str) -> None:
    """probe_timeout must be > 0; dead_media_timeout and keepalive_interval >= 0 (0: off)."""
    data = vendor_plan()
    data["vendors"]["globex"][key] = value
    assert reason in plan_error(tmp_path, data, f"vendors.globex.{key}")
