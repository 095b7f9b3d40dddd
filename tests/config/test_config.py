"""Config loader and ``ccswitch check`` validation (ccswitch.config)."""

from __future__ import annotations

import ipaddress
import os
import re
import wave
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccswitch.config import (
    CheckResult, ConfigErrors, check_config, load_config, load_dialplan_file, load_dialplans,
)
from ccswitch.errors import ConfigError
from ccswitch.model import (
    Dialplan, HoldAudio, Queue, RecordingStart, Route, StateKind, Strategy,
)

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "config"
EXAMPLE_CONFIG = REPO / "deploy" / "ccswitch.yaml"
EXAMPLE_SOUNDS = [REPO / "dialplans" / "sounds" / n for n in ("qa_notice.wav", "moh.wav")]

needs_example_sounds = pytest.mark.skipif(
    not all(p.exists() for p in EXAMPLE_SOUNDS),
    reason="dialplans/sounds/*.wav not generated yet")


# -- helpers ------------------------------------------------------------------------------


def write_wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 160)
    return path


def plan() -> dict[str, Any]:
    """A valid one-queue dialplan; its sounds are sounds/a.wav next to the file."""
    return {
        "agents": {"alice": {"uri": "sip:alice@127.0.0.1:5091"},
                   "bob": {"uri": "sip:bob@127.0.0.1:5092"}},
        "groups": {"team": ["alice", "bob"]},
        "queues": {"support": {"group": "team", "announcement": "sounds/a.wav"}},
        "routes": [{"number": "100", "queue": "support"}],
    }


def service(plans: str = "plans") -> dict[str, Any]:
    return {
        "sip": {"listen": "127.0.0.1:5060", "trusted": ["127.0.0.0/8"]},
        "rtp": {"address": "127.0.0.1", "ports": "20000-20099"},
        "http": {"listen": "127.0.0.1:9060"},
        "recordings": {"directory": "rec"},
        "dialplans": plans,
    }


def setup(tmp_path: Path, config: dict[str, Any] | str | None = None,
          plans: dict[str, dict[str, Any] | str] | None = None) -> Path:
    """Write a config (dict or raw text) and dialplan files under tmp_path; return its path."""
    plan_dir = tmp_path / "plans"
    plan_dir.mkdir()
    write_wav(plan_dir / "sounds" / "a.wav")
    for name, content in (plans if plans is not None else {"main.yaml": plan()}).items():
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        (plan_dir / name).write_text(text)
    cfg = config if config is not None else service()
    path = tmp_path / "ccswitch.yaml"
    path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg, sort_keys=False))
    return path


def failed(path: Path) -> list[ConfigError]:
    result = check_config(path)
    assert result.config is None, "expected the config to be rejected"
    assert result.errors
    return result.errors


def find(errors: list[ConfigError], key: str) -> ConfigError:
    matches = [e for e in errors if e.key == key]
    assert matches, f"no error for {key!r} in:\n" + "\n".join(map(str, errors))
    return matches[0]


def reason_of(errors: list[ConfigError], key: str, file: Path | None = None) -> str:
    error = find(errors, key)
    if file is not None:
        assert Path(error.file).resolve() == file.resolve()
    return error.reason


def plan_error(tmp_path: Path, data: dict[str, Any] | str, key: str) -> str:
    """Load one bad dialplan file; the reason given for ``key`` (file checked too)."""
    path = setup(tmp_path, plans={"main.yaml": data})
    return reason_of(failed(path), key, tmp_path / "plans" / "main.yaml")


def config_error(tmp_path: Path, cfg: dict[str, Any] | str, key: str) -> str:
    path = setup(tmp_path, config=cfg)
    return reason_of(failed(path), key, path)


def dialplan_with_routes(*routes: Route) -> Dialplan:
    queues = {name: Queue(name=name, group="g", announcement=Path("a.wav"))
              for name in {r.queue for r in routes}}
    return Dialplan(agents={}, groups={}, queues=queues, routes=routes)


# -- the shipped example files --------------------------------------------------------------


@needs_example_sounds
def test_example_config_loads() -> None:
    """deploy/ccswitch.yaml with dialplans/ loads into a Config."""
    config = load_config(EXAMPLE_CONFIG)
    assert config.sip.listen_port == 5060
    assert config.dialplan_dir == REPO / "dialplans"
    assert config.recordings.directory == REPO / "recordings"
    assert set(config.dialplan.agents) >= {"alice", "bob"}


@needs_example_sounds
def test_example_check_is_clean() -> None:
    """`ccswitch check` on the example reports no error and no warning."""
    result = check_config(EXAMPLE_CONFIG)
    assert (result.errors, result.warnings) == ([], [])
    assert result.ok


@needs_example_sounds
def test_example_routes_number_and_pattern() -> None:
    """The example routes 100 and 8005550xxx to the support queue, nothing else."""
    dialplan = load_config(EXAMPLE_CONFIG).dialplan
    support = dialplan.queues["support"]
    assert dialplan.route("100") is support
    assert dialplan.route("8005550123") is support
    assert dialplan.route("8005551123") is None


# -- good fixture -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good() -> CheckResult:
    return check_config(DATA / "good" / "conf" / "ccswitch.yaml")


def test_good_fixture_has_no_errors(good: CheckResult) -> None:
    """The good fixture (two dialplan files, anchors, IPv6) loads without errors."""
    assert good.errors == []
    assert good.config is not None


def test_relative_paths_resolve_against_config_dir(good: CheckResult) -> None:
    """recordings.directory and dialplans resolve against the config file's directory."""
    assert good.config is not None
    assert good.config.recordings.directory == DATA / "good" / "rec"
    assert good.config.dialplan_dir == DATA / "good" / "plans"


def test_sound_paths_resolve_against_dialplan_file(good: CheckResult) -> None:
    """announcement resolves against the dialplan file's directory."""
    assert good.config is not None
    queue = good.config.dialplan.queues["sales"]
    assert queue.announcement == DATA / "good" / "plans" / "sounds" / "hello.wav"


def test_dialplan_files_loaded_sorted(good: CheckResult) -> None:
    """Every *.yaml in the dialplans directory is loaded, in name order."""
    assert good.config is not None
    assert [p.name for p in good.config.dialplan.files] == ["10-agents.yaml", "20-queues.yaml"]


def test_names_are_global_across_files(good: CheckResult) -> None:
    """A queue in one file uses a group whose agents are defined in another file."""
    assert good.config is not None
    assert good.config.dialplan.groups["tier2"].agents == ("bob", "alice")


def test_ipv6_listen_and_trusted_parsed(good: CheckResult) -> None:
    """[::1]:5070 gives host ::1 port 5070; a bare IP in trusted becomes a /32."""
    assert good.config is not None
    sip = good.config.sip
    assert (sip.listen_host, sip.listen_port, sip.advertised_host) == ("::1", 5070, "::1")
    assert ipaddress.ip_network("10.1.2.3/32") in sip.trusted
    assert sip.max_message_size == 4096


def test_queue_fields_and_defaults(good: CheckResult) -> None:
    """Queue values are typed; omitted ones take the model defaults; merge keys apply."""
    assert good.config is not None
    sales = good.config.dialplan.queues["sales"]
    escalation = good.config.dialplan.queues["escalation"]
    assert (sales.ring_timeout, sales.strategy, sales.max_misses) == (7.5, Strategy.LONGEST_IDLE, 3)
    assert escalation.ring_timeout == 20.0
    assert escalation.strategy is Strategy.RING_ALL
    assert (escalation.wrap_up, escalation.short_abandon) == (0.0, 0.0)


def test_agent_fields(good: CheckResult) -> None:
    """Agents keep id, URI, display name and logged_in (default true)."""
    assert good.config is not None
    agents = good.config.dialplan.agents
    assert agents["alice"].name == "Alice" and agents["alice"].logged_in is True
    assert agents["bob"].logged_in is False


def test_exact_route_wins_over_earlier_pattern(good: CheckResult) -> None:
    """150 is matched by an earlier pattern but its exact route wins."""
    assert good.config is not None
    dialplan = good.config.dialplan
    assert dialplan.route("150") is dialplan.queues["sales"]
    assert dialplan.route("151") is dialplan.queues["escalation"]


def test_compressed_copy_and_state(good: CheckResult) -> None:
    """compressed_copy becomes compressed_format; state defaults to embedded."""
    assert good.config is not None
    assert good.config.recordings.compressed_format == "ogg"
    assert good.config.state == "embedded"


def test_recording_start_and_state_kind_are_typed(tmp_path: Path) -> None:
    """recordings.start and the kind of state come out as enum members, defaults included."""
    cfg = service()
    (tmp_path / "default").mkdir()
    default = check_config(setup(tmp_path / "default", config=cfg)).config
    assert default is not None
    assert default.recordings.start is RecordingStart.AFTER_NOTICE
    assert default.state_kind is StateKind.EMBEDDED
    cfg["recordings"]["start"] = "answer"
    cfg["state"] = "redis://127.0.0.1:6379/0"
    (tmp_path / "set").mkdir()
    given = check_config(setup(tmp_path / "set", config=cfg)).config
    assert given is not None
    assert given.recordings.start is RecordingStart.ANSWER
    assert given.state_kind is StateKind.REDIS


def test_hold_audio_defaults_to_moh_and_can_be_silence(tmp_path: Path) -> None:
    """recordings.hold_audio is moh unless set; silence is taken."""
    cfg = service()
    (tmp_path / "default").mkdir()
    default = check_config(setup(tmp_path / "default", config=cfg)).config
    assert default is not None and default.recordings.hold_audio is HoldAudio.MOH
    cfg["recordings"]["hold_audio"] = "silence"
    (tmp_path / "set").mkdir()
    given = check_config(setup(tmp_path / "set", config=cfg)).config
    assert given is not None and given.recordings.hold_audio is HoldAudio.SILENCE


def test_unknown_hold_audio_is_refused_with_the_choices(tmp_path: Path) -> None:
    """recordings.hold_audio: music is refused, naming moh and silence."""
    cfg = service()
    cfg["recordings"]["hold_audio"] = "music"
    reason = reason_of(failed(setup(tmp_path, config=cfg)), "recordings.hold_audio")
    assert "moh, silence" in reason


# -- Dialplan.route ----------------------------------------------------------------------


def test_route_exact_number() -> None:
    """An exact route matches only the identical number."""
    dialplan = dialplan_with_routes(Route(queue="q", number="100"))
    assert dialplan.route("100") is dialplan.queues["q"]
    assert dialplan.route("1000") is None


def test_route_pattern_must_match_whole_number() -> None:
    """A pattern route matches the whole dialed number, not a prefix."""
    dialplan = dialplan_with_routes(Route(queue="q", pattern=re.compile("8005550[0-9]{3}")))
    assert dialplan.route("8005550123") is dialplan.queues["q"]
    assert dialplan.route("80055501234") is None


def test_route_none_when_nothing_matches() -> None:
    """A number no route matches gives None."""
    dialplan = dialplan_with_routes(Route(queue="q", number="100"))
    assert dialplan.route("200") is None


def test_loader_orders_exact_routes_before_patterns(tmp_path: Path) -> None:
    """A pattern listed before an exact number does not shadow it."""
    data = plan()
    data["queues"]["other"] = {"group": "team", "announcement": "sounds/a.wav"}
    data["routes"] = [{"pattern": "1..", "queue": "support"}, {"number": "100", "queue": "other"}]
    path = setup(tmp_path, plans={"main.yaml": data})
    dialplan = load_config(path).dialplan
    assert dialplan.route("100") is dialplan.queues["other"]
    assert dialplan.route("101") is dialplan.queues["support"]


# -- service config errors ------------------------------------------------------------------


def test_unknown_key_suggests_correction(tmp_path: Path) -> None:
    """A typo in a key is an error naming the key and the likely intended key."""
    cfg = service()
    cfg["sip"]["trustd"] = ["127.0.0.0/8"]
    assert "did you mean 'trusted'" in config_error(tmp_path, cfg, "sip.trustd")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    """An unknown top-level section is an error."""
    cfg = service()
    cfg["metrics"] = {}
    assert "unknown key" in config_error(tmp_path, cfg, "metrics")


def test_missing_section(tmp_path: Path) -> None:
    """A missing required section is reported as required."""
    cfg = service()
    del cfg["rtp"]
    assert "is required" in config_error(tmp_path, cfg, "rtp")


def test_listen_without_port(tmp_path: Path) -> None:
    """sip.listen without a port is rejected with the expected form."""
    cfg = service()
    cfg["sip"]["listen"] = "127.0.0.1"
    assert "host:port" in config_error(tmp_path, cfg, "sip.listen")


def test_listen_port_out_of_range(tmp_path: Path) -> None:
    """A port above 65535 is rejected."""
    cfg = service()
    cfg["http"]["listen"] = "127.0.0.1:70000"
    assert "out of range" in config_error(tmp_path, cfg, "http.listen")


def test_listen_ipv6_needs_brackets(tmp_path: Path) -> None:
    """An unbracketed IPv6 listen address is rejected."""
    cfg = service()
    cfg["sip"]["listen"] = "::1:5060"
    assert "brackets" in config_error(tmp_path, cfg, "sip.listen")


def test_wildcard_listen_needs_advertised_address(tmp_path: Path) -> None:
    """Listening on 0.0.0.0 without advertised_address is an error."""
    cfg = service()
    cfg["sip"]["listen"] = "0.0.0.0:5060"
    assert "advertised_address" in config_error(tmp_path, cfg, "sip.listen")


def test_wildcard_listen_with_advertised_address(tmp_path: Path) -> None:
    """Listening on 0.0.0.0 with an advertised address is accepted and advertised."""
    cfg = service()
    cfg["sip"].update(listen="0.0.0.0:5060", advertised_address="192.0.2.10")
    config = load_config(setup(tmp_path, config=cfg))
    assert (config.sip.listen_host, config.sip.advertised_host) == ("0.0.0.0", "192.0.2.10")


def test_advertised_address_defaults_to_listen_host(tmp_path: Path) -> None:
    """Without advertised_address the listen host is advertised."""
    config = load_config(setup(tmp_path))
    assert config.sip.advertised_host == "127.0.0.1"


def test_invalid_cidr(tmp_path: Path) -> None:
    """A malformed trusted network names its list index."""
    cfg = service()
    cfg["sip"]["trusted"] = ["127.0.0.0/8", "10.0.0.0/33"]
    assert "invalid CIDR" in config_error(tmp_path, cfg, "sip.trusted[1]")


def test_cidr_with_host_bits(tmp_path: Path) -> None:
    """A CIDR with host bits set is rejected as a likely typo."""
    cfg = service()
    cfg["sip"]["trusted"] = ["10.0.0.1/8"]
    assert "host bits" in config_error(tmp_path, cfg, "sip.trusted[0]")


def test_empty_trusted_warns(tmp_path: Path) -> None:
    """An empty trusted list loads but warns that every INVITE is rejected."""
    cfg = service()
    cfg["sip"]["trusted"] = []
    result = check_config(setup(tmp_path, config=cfg))
    assert result.ok
    assert any("sip.trusted" in w for w in result.warnings)


def test_rtp_odd_start(tmp_path: Path) -> None:
    """An RTP range starting on an odd port is rejected."""
    cfg = service()
    cfg["rtp"]["ports"] = "20001-20099"
    assert "even" in config_error(tmp_path, cfg, "rtp.ports")


def test_rtp_single_port(tmp_path: Path) -> None:
    """An RTP range of fewer than 2 ports is rejected."""
    cfg = service()
    cfg["rtp"]["ports"] = "20000-20000"
    assert "at least 2 ports" in config_error(tmp_path, cfg, "rtp.ports")


def test_rtp_ports_not_a_range(tmp_path: Path) -> None:
    """An RTP ports value that is not first-last is rejected."""
    cfg = service()
    cfg["rtp"]["ports"] = 20000
    assert "port range" in config_error(tmp_path, cfg, "rtp.ports")


def test_rtp_wildcard_address(tmp_path: Path) -> None:
    """A wildcard RTP address is rejected: it is sent in SDP."""
    cfg = service()
    cfg["rtp"]["address"] = "0.0.0.0"
    assert "wildcard" in config_error(tmp_path, cfg, "rtp.address")


def test_rtp_range_contains_sip_port(tmp_path: Path) -> None:
    """The SIP port inside the RTP range on the same address is an error."""
    cfg = service()
    cfg["sip"]["listen"] = "127.0.0.1:20050"
    assert "20050" in config_error(tmp_path, cfg, "rtp.ports")


def test_redis_state_urls_and_the_node_name(tmp_path: Path) -> None:
    """state takes a redis:// or sentinel URL; node names this node (default host-port)."""
    for url in ("redis://127.0.0.1:6379/0", "redis+sentinel://10.0.0.1:26379,10.0.0.2/cc/0"):
        cfg = service()
        cfg["state"] = url
        cfg["node"] = "node-a"
        (tmp_path / url.split(":")[0]).mkdir()
        result = check_config(setup(tmp_path / url.split(":")[0], config=cfg))
        assert result.config is not None, result.errors
        assert (result.config.state, result.config.node) == (url, "node-a")
    cfg = service()
    (tmp_path / "default").mkdir()
    result = check_config(setup(tmp_path / "default", config=cfg))
    assert result.config is not None and result.config.node.endswith("-5060")


@pytest.mark.parametrize(("url", "reason"), [
    ("redis://:0/0", "bad port"), ("redis+sentinel://10.0.0.1:26379", "names the service"),
    ("redis://", "no host")])
def test_bad_redis_urls(tmp_path: Path, url: str, reason: str) -> None:
    """A state URL with no host, a bad port or a sentinel URL without service is refused."""
    cfg = service()
    cfg["state"] = url
    assert reason in config_error(tmp_path, cfg, "state")


def test_unknown_state(tmp_path: Path) -> None:
    """An unknown state backend is rejected."""
    cfg = service()
    cfg["state"] = "memory"
    assert "embedded" in config_error(tmp_path, cfg, "state")


def test_bad_compressed_copy(tmp_path: Path) -> None:
    """compressed_copy accepts only null, mp3 or ogg."""
    cfg = service()
    cfg["recordings"]["compressed_copy"] = "flac"
    assert "mp3" in config_error(tmp_path, cfg, "recordings.compressed_copy")


def test_recordings_directory_is_a_file(tmp_path: Path) -> None:
    """A recordings directory that exists as a file is rejected."""
    (tmp_path / "rec").write_text("")
    assert "not a directory" in config_error(tmp_path, service(), "recordings.directory")


def test_dialplans_dir_missing(tmp_path: Path) -> None:
    """A dialplans directory that does not exist is an error on the dialplans key."""
    assert "does not exist" in config_error(tmp_path, service("nowhere"), "dialplans")


def test_dialplans_dir_empty(tmp_path: Path) -> None:
    """A dialplans directory without *.yaml files is an error."""
    path = setup(tmp_path, plans={"notes.txt": "hello"})
    assert "no dialplan files" in reason_of(failed(path), "dialplans", path)


def test_yml_files_are_ignored_with_warning(tmp_path: Path) -> None:
    """A *.yml file in the dialplans directory is not loaded and check warns."""
    path = setup(tmp_path, plans={"main.yaml": plan(), "extra.yml": "not: [valid"})
    result = check_config(path)
    assert result.ok
    assert any("extra.yml" in w for w in result.warnings)


def test_config_file_missing(tmp_path: Path) -> None:
    """A missing config file is an error, not an exception, from check_config."""
    errors = failed(tmp_path / "absent.yaml")
    assert "does not exist" in errors[0].reason


def test_config_not_a_mapping(tmp_path: Path) -> None:
    """A config file that is a YAML list is rejected."""
    assert "must be a mapping" in config_error(tmp_path, "- a\n- b\n", "<file>")


def test_config_key_line_number(tmp_path: Path) -> None:
    """Errors carry the line of the offending key."""
    text = ("sip:\n  listen: 127.0.0.1:5060\n  trusted: []\n  colour: blue\n"
            "rtp: {address: 127.0.0.1, ports: 20000-20099}\nhttp: {listen: 127.0.0.1:9060}\n"
            "recordings: {directory: rec}\ndialplans: plans\n")
    assert config_error(tmp_path, text, "sip.colour").endswith("(line 4)")


# -- dialplan errors ------------------------------------------------------------------------


def test_queue_key_typo(tmp_path: Path) -> None:
    """ring_timout (typo) is an unknown key with a suggestion."""
    data = plan()
    data["queues"]["support"]["ring_timout"] = 10
    reason = plan_error(tmp_path, data, "queues.support.ring_timout")
    assert "did you mean 'ring_timeout'" in reason


@pytest.mark.parametrize("value", [0, -5, "15s", True, float("inf")])
def test_ring_timeout_must_be_positive_number(tmp_path: Path, value: object) -> None:
    """ring_timeout must be a finite number > 0 (not a bool or a string)."""
    data = plan()
    data["queues"]["support"]["ring_timeout"] = value
    assert "> 0" in plan_error(tmp_path, data, "queues.support.ring_timeout")


def test_max_misses_must_be_whole(tmp_path: Path) -> None:
    """max_misses must be a whole number >= 1."""
    data = plan()
    data["queues"]["support"]["max_misses"] = 2.5
    assert "whole number" in plan_error(tmp_path, data, "queues.support.max_misses")


def test_wrap_up_negative(tmp_path: Path) -> None:
    """wrap_up below 0 is rejected."""
    data = plan()
    data["queues"]["support"]["wrap_up"] = -1
    assert ">= 0" in plan_error(tmp_path, data, "queues.support.wrap_up")


def test_unknown_strategy(tmp_path: Path) -> None:
    """An unknown strategy lists the known ones."""
    data = plan()
    data["queues"]["support"]["strategy"] = "round_robin"
    reason = plan_error(tmp_path, data, "queues.support.strategy")
    assert "longest_idle" in reason and "ring_all" in reason


def test_uri_without_sip_scheme(tmp_path: Path) -> None:
    """An agent URI must start with sip: or sips:."""
    data = plan()
    data["agents"]["alice"]["uri"] = "tel:+15551234"
    assert "sip: or sips:" in plan_error(tmp_path, data, "agents.alice.uri")


def test_uri_without_host(tmp_path: Path) -> None:
    """An agent URI must have a host."""
    data = plan()
    data["agents"]["alice"]["uri"] = "sip:alice@"
    assert "no host" in plan_error(tmp_path, data, "agents.alice.uri")


def test_uri_bad_port(tmp_path: Path) -> None:
    """An agent URI with an out-of-range port is rejected."""
    data = plan()
    data["agents"]["alice"]["uri"] = "sip:alice@127.0.0.1:0"
    assert "out of range" in plan_error(tmp_path, data, "agents.alice.uri")


def test_agent_missing_uri(tmp_path: Path) -> None:
    """An agent without a uri is rejected."""
    data = plan()
    data["agents"]["alice"] = {"name": "Alice"}
    assert "required" in plan_error(tmp_path, data, "agents.alice.uri")


def test_logged_in_must_be_boolean(tmp_path: Path) -> None:
    """logged_in must be true or false."""
    data = plan()
    data["agents"]["alice"]["logged_in"] = "yes please"
    assert "true or false" in plan_error(tmp_path, data, "agents.alice.logged_in")


def test_queue_group_must_exist(tmp_path: Path) -> None:
    """A queue naming an undefined group is rejected at its group key."""
    data = plan()
    data["queues"]["support"]["group"] = "nobody"
    assert "unknown group 'nobody'" in plan_error(tmp_path, data, "queues.support.group")


def test_group_member_must_exist(tmp_path: Path) -> None:
    """A group member that is not a defined agent is rejected at its index."""
    data = plan()
    data["groups"]["team"] = ["alice", "zed"]
    assert "unknown agent 'zed'" in plan_error(tmp_path, data, "groups.team[1]")


def test_group_member_listed_twice(tmp_path: Path) -> None:
    """An agent listed twice in one group is rejected."""
    data = plan()
    data["groups"]["team"] = ["alice", "alice"]
    assert "twice" in plan_error(tmp_path, data, "groups.team[1]")


def test_agent_in_no_group_is_fine(tmp_path: Path) -> None:
    """An agent that belongs to no group loads without error or warning."""
    data = plan()
    data["agents"]["carol"] = {"uri": "sip:carol@127.0.0.1:5093"}
    result = check_config(setup(tmp_path, plans={"main.yaml": data}))
    assert result.ok and result.warnings == []


def test_route_queue_must_exist(tmp_path: Path) -> None:
    """A route to an undefined queue is rejected at its queue key."""
    data = plan()
    data["routes"].append({"number": "200", "queue": "sales"})
    assert "unknown queue 'sales'" in plan_error(tmp_path, data, "routes[1].queue")


def test_route_with_number_and_pattern(tmp_path: Path) -> None:
    """A route with both number and pattern is rejected."""
    data = plan()
    data["routes"][0]["pattern"] = "1.."
    assert "exactly one" in plan_error(tmp_path, data, "routes[0]")


def test_route_with_neither_number_nor_pattern(tmp_path: Path) -> None:
    """A route with neither number nor pattern is rejected."""
    data = plan()
    del data["routes"][0]["number"]
    assert "number or a pattern" in plan_error(tmp_path, data, "routes[0]")


def test_route_regex_must_compile(tmp_path: Path) -> None:
    """A pattern that does not compile is rejected with the regex error."""
    data = plan()
    data["routes"].append({"pattern": "([0-9]", "queue": "support"})
    assert "invalid regular expression" in plan_error(tmp_path, data, "routes[1].pattern")


def test_route_number_must_be_quoted(tmp_path: Path) -> None:
    """An unquoted numeric route number is rejected (leading zeros would be lost)."""
    data = plan()
    data["routes"][0]["number"] = 100
    assert "quoted" in plan_error(tmp_path, data, "routes[0].number")


def test_duplicate_exact_numbers(tmp_path: Path) -> None:
    """The same exact number routed twice is rejected at the second route."""
    data = plan()
    data["routes"].append({"number": "100", "queue": "support"})
    assert "already routed" in plan_error(tmp_path, data, "routes[1].number")


def test_duplicate_name_across_files(tmp_path: Path) -> None:
    """An agent defined in two files is rejected, naming the first file."""
    other = {"agents": {"alice": {"uri": "sip:alice@127.0.0.2"}}}
    path = setup(tmp_path, plans={"a.yaml": plan(), "b.yaml": other})
    reason = reason_of(failed(path), "agents.alice", tmp_path / "plans" / "b.yaml")
    assert "already defined" in reason and "a.yaml" in reason


def test_duplicate_key_in_one_file(tmp_path: Path) -> None:
    """A name given twice in the same YAML mapping is rejected (YAML would keep the last)."""
    text = yaml.safe_dump(plan(), sort_keys=False).replace(
        "agents:\n", "agents:\n  bob:\n    uri: sip:bob@127.0.0.9\n", 1)
    assert "more than once" in plan_error(tmp_path, text, "agents.bob")


def test_merge_key_override_is_not_a_duplicate(tmp_path: Path) -> None:
    """Overriding a value merged with << is allowed."""
    text = ("x-defaults: &d {group: team, announcement: sounds/a.wav, ring_timeout: 20}\n"
            + yaml.safe_dump({k: v for k, v in plan().items() if k != "queues"})
            + "queues:\n  support:\n    <<: *d\n    ring_timeout: 9\n")
    path = setup(tmp_path, plans={"main.yaml": text})
    assert load_config(path).dialplan.queues["support"].ring_timeout == 9.0


def test_announcement_missing(tmp_path: Path) -> None:
    """A missing announcement file is rejected."""
    data = plan()
    data["queues"]["support"]["announcement"] = "sounds/none.wav"
    assert "does not exist" in plan_error(tmp_path, data, "queues.support.announcement")


def test_music_on_hold_not_a_wav(tmp_path: Path) -> None:
    """A music-on-hold file without a RIFF/WAVE header is rejected."""
    data = plan()
    data["queues"]["support"]["music_on_hold"] = "sounds/moh.wav"
    path = setup(tmp_path, plans={"main.yaml": data})
    (tmp_path / "plans" / "sounds" / "moh.wav").write_bytes(b"ID3\x03" + b"\0" * 64)
    reason = reason_of(failed(path), "queues.support.music_on_hold")
    assert "not a WAV" in reason


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root can read any file")
def test_announcement_unreadable(tmp_path: Path) -> None:
    """An announcement file without read permission is rejected."""
    path = setup(tmp_path)
    (tmp_path / "plans" / "sounds" / "a.wav").chmod(0)
    assert "not readable" in reason_of(failed(path), "queues.support.announcement")


def test_name_must_be_string(tmp_path: Path) -> None:
    """An unquoted numeric agent name is rejected."""
    text = yaml.safe_dump(plan(), sort_keys=False).replace("  bob:", "  1001:", 1)
    assert "must be a string" in plan_error(tmp_path, text, "agents.1001")


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    """A YAML syntax error names the file and the line."""
    path = setup(tmp_path, plans={"main.yaml": plan(), "zz.yaml": "queues:\n  a: {group: x\n  b: 1\n"})
    error = find(failed(path), "line 3")
    assert Path(error.file).resolve() == (tmp_path / "plans" / "zz.yaml").resolve()
    assert "YAML syntax error" in error.reason


def test_dialplan_top_level_not_mapping(tmp_path: Path) -> None:
    """A dialplan file that is a list is rejected."""
    assert "must be a mapping" in plan_error(tmp_path, "- alice\n", "<file>")


def test_unrouted_queue_is_a_warning(tmp_path: Path) -> None:
    """A queue no route points to loads, with a warning naming it."""
    data = plan()
    data["queues"]["idle"] = {"group": "team", "announcement": "sounds/a.wav"}
    result = check_config(setup(tmp_path, plans={"main.yaml": data}))
    assert result.ok
    assert [w for w in result.warnings if "queues.idle" in w and "route" in w]


def test_empty_dialplan_file_warns(tmp_path: Path) -> None:
    """An empty dialplan file next to a good one only warns."""
    result = check_config(setup(tmp_path, plans={"main.yaml": plan(), "zz.yaml": ""}))
    assert result.ok
    assert any("zz.yaml" in w and "empty" in w for w in result.warnings)


# -- several errors at once, public API shapes --------------------------------------------------


def test_bad_fixture_reports_every_error() -> None:
    """All independent mistakes in config and dialplans are reported in one check."""
    result = check_config(DATA / "bad" / "ccswitch.yaml")
    keys = {e.key for e in result.errors}
    assert result.config is None
    assert {"sip.listen", "sip.trusted[0]", "sip.user_agnet", "rtp.ports", "http.listen",
            "state", "agents.alice.uri", "groups.team[1]", "queues.support.announcement",
            "queues.support.ring_timout", "routes[0]", "routes[1].pattern", "agents.bob",
            "routes[0].queue", "line 3"} <= keys


def test_load_config_raises_all_errors_together(tmp_path: Path) -> None:
    """load_config raises one ConfigErrors holding every error, one per line in str()."""
    cfg = service()
    cfg["rtp"]["ports"] = "20001-20099"
    data = plan()
    data["queues"]["support"]["ring_timeout"] = 0
    path = setup(tmp_path, config=cfg, plans={"main.yaml": data})
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    errors = info.value.errors
    assert {e.key for e in errors} == {"rtp.ports", "queues.support.ring_timeout"}
    assert str(info.value).splitlines() == [str(e) for e in errors]
    assert isinstance(info.value, ConfigError)


def test_error_str_is_file_key_reason(tmp_path: Path) -> None:
    """Each error renders as 'file: key: reason'."""
    cfg = service()
    cfg["state"] = "memory"
    path = setup(tmp_path, config=cfg)
    error = find(failed(path), "state")
    assert str(error) == f"{path}: state: {error.reason}"


def test_load_dialplans_directory(tmp_path: Path) -> None:
    """load_dialplans merges every *.yaml in a directory."""
    setup(tmp_path)
    dialplan = load_dialplans(tmp_path / "plans")
    assert dialplan.route("100") is dialplan.queues["support"]


def test_load_dialplans_empty_directory(tmp_path: Path) -> None:
    """load_dialplans on a directory without *.yaml raises ConfigErrors."""
    with pytest.raises(ConfigErrors, match="no dialplan files"):
        load_dialplans(tmp_path)


def test_load_dialplan_file(tmp_path: Path) -> None:
    """load_dialplan_file loads one file on its own."""
    setup(tmp_path)
    dialplan = load_dialplan_file(tmp_path / "plans" / "main.yaml")
    assert set(dialplan.queues) == {"support"}
    assert dialplan.files == (tmp_path / "plans" / "main.yaml",)


def test_load_dialplan_file_checks_references(tmp_path: Path) -> None:
    """load_dialplan_file rejects references that do not resolve within the file."""
    data = plan()
    del data["agents"]["bob"]
    setup(tmp_path, plans={"main.yaml": data})
    with pytest.raises(ConfigErrors, match=r"groups\.team\[1\]: unknown agent 'bob'"):
        load_dialplan_file(tmp_path / "plans" / "main.yaml")


def test_cdr_database_defaults_to_the_recordings_directory(tmp_path: Path) -> None:
    """Without a cdr section, records go to cdr.sqlite in the recordings directory."""
    config = check_config(setup(tmp_path)).config
    assert config is not None
    assert config.cdr.database == tmp_path / "rec" / "cdr.sqlite"
    assert config.cdr.jsonl is None


def test_cdr_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    """cdr.database and cdr.jsonl are relative to the config file's directory."""
    cfg = {**service(), "cdr": {"database": "db/calls.sqlite", "jsonl": "cdr.jsonl"}}
    config = check_config(setup(tmp_path, config=cfg)).config
    assert config is not None
    assert config.cdr.database == tmp_path / "db" / "calls.sqlite"
    assert config.cdr.jsonl == tmp_path / "cdr.jsonl"


def test_cdr_unknown_key_and_directory_path_are_errors(tmp_path: Path) -> None:
    """A typo in the cdr section and a database path that is a directory are both reported."""
    (tmp_path / "db").mkdir()
    cfg = {**service(), "cdr": {"database": "db", "jsonlines": "x"}}
    errors = failed(setup(tmp_path, config=cfg))
    assert "not a file" in reason_of(errors, "cdr.database")
    assert find(errors, "cdr.jsonlines")



def test_a_portal_section_with_every_key_commented_out_turns_the_portal_on(
        tmp_path: Path) -> None:
    """``portal:`` with nothing under it (as in the shipped example) is the portal with
    its defaults, not no portal."""
    path = setup(tmp_path, yaml.safe_dump(service(), sort_keys=False) + "portal:\n")
    config = check_config(path).config
    assert config is not None and config.portal is not None
    assert config.portal.session_ttl == 8 * 3600.0


def test_without_a_portal_section_there_is_no_portal(tmp_path: Path) -> None:
    """No ``portal`` key: the node serves no portal."""
    config = check_config(setup(tmp_path)).config
    assert config is not None and config.portal is None
