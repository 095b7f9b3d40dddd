"""The retention purge's systemd service and timer: settings, sandbox, and the real tools' verdict.

Like test_systemd.py: systemd-analyze may be missing (a container without systemd); those
tests then skip with the reason, unless CCSWITCH_REQUIRE_TOOLS is set (make test).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.tools import needs, run, unit_settings

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "deploy" / "systemd"
MAIN = SYSTEMD / "ccswitch.service"
SERVICE = SYSTEMD / "ccswitch-purge.service"
TIMER = SYSTEMD / "ccswitch-purge.timer"
INSTALLED = "/opt/ccswitch/.venv/bin/ccswitch"
CONFIG = "/etc/ccswitch/ccswitch.yaml"
# Settings of the main unit about running a long-lived server, not about the sandbox.
LIFECYCLE = {"Type", "ExecStartPre", "ExecStart", "ExecReload", "Restart", "RestartSec",
             "RestartPreventExitStatus", "KillSignal", "KillMode", "TimeoutStopSec",
             "LimitNOFILE", "LogsDirectory", "Environment"}


def settings(unit: Path) -> dict[str, dict[str, list[str]]]:
    return unit_settings(unit)


def section(unit: Path, name: str) -> dict[str, str]:
    return {key: " ".join(values) for key, values in settings(unit)[name].items()}


def seconds(value: str) -> float:
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+)\s*([a-z]*)", value)
    assert parts, value
    return sum(int(number) * units[unit] for number, unit in parts)


def test_service_is_a_oneshot_purge_of_90_days() -> None:
    """A oneshot running ``ccswitch purge`` on the installed config with --older-than 90."""
    s = section(SERVICE, "Service")
    assert s["Type"] == "oneshot"
    assert s["ExecStart"] == f"{INSTALLED} purge --config {CONFIG} --older-than 90"
    assert "Restart" not in s


def test_service_runs_as_the_main_units_user_and_directories() -> None:
    """Same unprivileged user, working directory, state directories and umask as ccswitch."""
    main, purge = section(MAIN, "Service"), section(SERVICE, "Service")
    for key in ("User", "Group", "WorkingDirectory", "StateDirectory", "UMask"):
        assert purge.get(key) == main.get(key), key
    assert purge["User"] == "ccswitch"


def test_service_mirrors_every_sandbox_setting_of_the_main_unit() -> None:
    """Each hardening setting of ccswitch.service is in the purge unit with the same value."""
    main, purge = settings(MAIN)["Service"], settings(SERVICE)["Service"]
    sandbox = set(main) - LIFECYCLE - {"RestrictAddressFamilies"}
    assert {k: purge.get(k) for k in sandbox} == {k: main[k] for k in sandbox}


def test_service_has_no_network() -> None:
    """The purge only deletes files: private network, no IP and UNIX sockets only."""
    s = section(SERVICE, "Service")
    assert s["PrivateNetwork"] == "yes" and s["IPAddressDeny"] == "any"
    main_families = set(section(MAIN, "Service")["RestrictAddressFamilies"].split())
    assert set(s["RestrictAddressFamilies"].split()) == {"AF_UNIX"} <= main_families


def test_service_documents_the_retention_period_as_a_placeholder() -> None:
    """The unit says 90 days is a placeholder to set per country and contract."""
    comments = " ".join(line.lstrip("# ") for line in SERVICE.read_text().splitlines()
                        if line.startswith("#"))
    assert "PLACEHOLDER" in comments and "country" in comments and "contract" in comments


def test_timer_runs_daily_randomised_and_catches_up() -> None:
    """Daily, spread by a random delay, a missed run made up at boot, starting the service."""
    t = section(TIMER, "Timer")
    assert t["OnCalendar"] == "daily"
    assert 0 < seconds(t["RandomizedDelaySec"]) <= 6 * 3600
    assert t["Persistent"] == "true"
    assert t.get("Unit", "ccswitch-purge.service") == "ccswitch-purge.service"
    assert section(TIMER, "Install")["WantedBy"] == "timers.target"


def checkable_units(directory: Path) -> tuple[Path, Path]:
    """The shipped service and timer, starting this checkout's ccswitch (verify needs it)."""
    installed = Path(sys.executable).with_name("ccswitch")
    assert installed.exists(), "ccswitch is not installed in this virtualenv"
    service = directory / SERVICE.name
    service.write_text(SERVICE.read_text().replace(INSTALLED, str(installed)))
    timer = directory / TIMER.name
    timer.write_text(TIMER.read_text())
    return service, timer


def test_exec_start_is_a_valid_command_line(tmp_path: Path) -> None:
    """The unit's ExecStart, pointed at a test config, runs and exits 0."""
    recordings = tmp_path / "rec"
    recordings.mkdir()
    config = tmp_path / "ccswitch.yaml"
    config.write_text(
        "sip:\n  listen: 127.0.0.1:5070\n  trusted: [127.0.0.0/8]\n"
        "rtp:\n  address: 127.0.0.1\n  ports: 40000-40099\n"
        "http:\n  listen: 127.0.0.1:0\n"
        f"recordings:\n  directory: {recordings}\n"
        f"dialplans: {ROOT / 'dialplans'}\n")
    argv = shlex.split(section(SERVICE, "Service")["ExecStart"])
    assert argv[0] == INSTALLED
    argv = [str(Path(sys.executable).with_name("ccswitch"))] + [
        str(config) if arg == CONFIG else arg for arg in argv[1:]]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("purged 0 recording(s) older than 90 days")


@needs("systemd-analyze")
def test_systemd_analyze_verifies_service_and_timer(tmp_path: Path) -> None:
    """systemd-analyze verify reports nothing for the service and its timer."""
    result = run("systemd-analyze", "verify", *map(str, checkable_units(tmp_path)))
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and output == "", output


@needs("systemd-analyze")
def test_systemd_rates_the_purge_sandbox_ok(tmp_path: Path) -> None:
    """systemd-analyze security (offline) rates the purge service at most 2.0 of 10 ("OK")."""
    service, _ = checkable_units(tmp_path)
    result = run("systemd-analyze", "security", "--offline=true", "--no-pager", str(service))
    assert result.returncode == 0, result.stderr
    overall = re.search(r"Overall exposure level for ccswitch-purge\.service: (\d+\.\d+)",
                        result.stdout)
    assert overall is not None, result.stdout
    assert float(overall.group(1)) <= 2.0, overall.group(0)
