"""Dialplan agent keys for dead-phone detection: no_response_timeout and probe_interval."""

from __future__ import annotations

from pathlib import Path

from ccswitch.config import check_config
from ccswitch.model import Agent
from tests.config.test_config import plan, plan_error, setup


def agents(tmp_path: Path, **alice: object) -> dict[str, Agent]:
    data = plan()
    data["agents"]["alice"].update(alice)
    result = check_config(setup(tmp_path, plans={"main.yaml": data}))
    assert result.config is not None, result
    return dict(result.config.dialplan.agents)


def test_dead_phone_keys_default_to_3_and_10_seconds(tmp_path: Path) -> None:
    """Without the keys an agent gets a 3 s no-response check and 10 s probes."""
    alice = agents(tmp_path)["alice"]
    assert (alice.no_response_timeout, alice.probe_interval) == (3.0, 10.0)


def test_dead_phone_keys_are_read(tmp_path: Path) -> None:
    """Given values are kept; no_response_timeout 0 (check off) is allowed."""
    alice = agents(tmp_path, no_response_timeout=0, probe_interval=2.5)["alice"]
    assert (alice.no_response_timeout, alice.probe_interval) == (0.0, 2.5)


def test_negative_no_response_timeout_is_rejected(tmp_path: Path) -> None:
    """no_response_timeout below 0 fails at its key."""
    data = plan()
    data["agents"]["alice"]["no_response_timeout"] = -1
    assert ">= 0" in plan_error(tmp_path, data, "agents.alice.no_response_timeout")


def test_zero_probe_interval_is_rejected(tmp_path: Path) -> None:
    """probe_interval must be > 0: an unreachable agent is always probed."""
    data = plan()
    data["agents"]["alice"]["probe_interval"] = 0
    assert "> 0" in plan_error(tmp_path, data, "agents.alice.probe_interval")
