"""The systemd unit and the logrotate snippet: required settings, and the real tools' verdict.

systemd-analyze and logrotate may be missing (a container without systemd): those
tests then skip with the reason, unless CCSWITCH_REQUIRE_TOOLS is set (make test).
"""

from __future__ import annotations

import grp
import gzip
import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy import tools
from tests.deploy.tools import needs, run

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "ccswitch.service"
LOGROTATE = ROOT / "deploy" / "logrotate" / "ccswitch"
INSTALLED = "/opt/ccswitch/.venv/bin/ccswitch"
CONFIG = "/etc/ccswitch/ccswitch.yaml"


def unit_settings() -> dict[str, dict[str, list[str]]]:
    return tools.unit_settings(UNIT)


def service() -> dict[str, str]:
    """The [Service] settings, last value winning (a repeated list key is joined)."""
    return {key: " ".join(values) for key, values in unit_settings()["Service"].items()}


def seconds(value: str) -> float:
    """A systemd time span such as 90, 90s, 1min 30s."""
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+)\s*([a-z]*)", value)
    assert parts, value
    return sum(int(number) * units[unit] for number, unit in parts)


def test_unit_runs_ccswitch_unprivileged_with_json_logs() -> None:
    """ccswitch run as the ccswitch user, JSON logs, the config checked before each start."""
    s = service()
    assert s["User"] == "ccswitch" and s.get("Group", "ccswitch") == "ccswitch"
    assert s["ExecStart"] == f"{INSTALLED} run --config {CONFIG} --log-format json"
    assert s["ExecStartPre"] == f"{INSTALLED} check --config {CONFIG}"


def test_unit_reloads_on_sighup_and_restarts_on_failure() -> None:
    """systemctl reload sends SIGHUP; crashes restart, config errors (exit 2) do not loop."""
    s = service()
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert s["Restart"] == "on-failure"
    assert "2" in s["RestartPreventExitStatus"].split()


def test_unit_leaves_time_to_hang_up_calls_on_stop() -> None:
    """SIGTERM goes to ccswitch alone and it has well over the default 30 s to end calls."""
    s = service()
    assert s.get("KillSignal", "SIGTERM") == "SIGTERM"
    assert s["KillMode"] == "mixed"
    assert seconds(s["TimeoutStopSec"]) >= 60


def test_unit_allows_enough_descriptors() -> None:
    """65536 descriptors: two RTP sockets and a recording file per call."""
    assert int(service()["LimitNOFILE"]) == 65536


def test_unit_sandbox_is_hardened() -> None:
    """No privileges or capabilities, read-only system, private /tmp and /dev, kernel protected."""
    s = service()
    expected = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes", "MemoryDenyWriteExecute": "yes",
        "CapabilityBoundingSet": "", "AmbientCapabilities": "",
    }
    assert {key: s.get(key) for key in expected} == expected
    assert set(s["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    filters = unit_settings()["Service"]["SystemCallFilter"]
    assert filters[0] == "@system-service"
    assert all(f.startswith("~") for f in filters[1:])


def test_unit_can_write_only_its_state_and_recordings() -> None:
    """The writable paths are the recordings directory, created and owned by the service."""
    s = service()
    writable = s["ReadWritePaths"].split()
    assert writable == ["/var/lib/ccswitch/recordings"]
    state_dirs = {"/var/lib/" + d for d in s["StateDirectory"].split()}
    assert set(writable) <= state_dirs


def checkable_unit(directory: Path) -> Path:
    """The shipped unit, starting this checkout's ccswitch instead of the install path.

    systemd-analyze refuses a unit whose binary is missing; nothing else changes.
    """
    installed = Path(sys.executable).with_name("ccswitch")
    assert installed.exists(), "ccswitch is not installed in this virtualenv"
    copy = directory / "ccswitch.service"
    copy.write_text(UNIT.read_text().replace(INSTALLED, str(installed)))
    return copy


@needs("systemd-analyze")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    """systemd-analyze verify reports nothing: no unknown key, no bad value."""
    result = run("systemd-analyze", "verify", str(checkable_unit(tmp_path)))
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and output == "", output


@needs("systemd-analyze")
def test_systemd_rates_the_sandbox_ok(tmp_path: Path) -> None:
    """systemd-analyze security (offline) rates the unit's exposure at most 2.0 of 10 ("OK")."""
    result = run("systemd-analyze", "security", "--offline=true", "--no-pager",
                 str(checkable_unit(tmp_path)))
    assert result.returncode == 0, result.stderr
    overall = re.search(r"Overall exposure level for ccswitch\.service: (\d+\.\d+)",
                        result.stdout)
    assert overall is not None, result.stdout
    assert float(overall.group(1)) <= 2.0, overall.group(0)


def logrotate_copy(directory: Path) -> Path:
    """The shipped snippet, rotating ``directory`` as the user running the tests."""
    text = LOGROTATE.read_text()
    assert "/var/log/ccswitch/*.log {" in text and "su ccswitch ccswitch" in text
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    copy = directory / "logrotate.conf"
    copy.write_text(text.replace("/var/log/ccswitch/", f"{directory}/")
                    .replace("su ccswitch ccswitch", f"su {user} {group}"))
    return copy


def logrotate(config: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return run("logrotate", *options, "-s", str(config.parent / "state"), str(config))


@needs("logrotate")
def test_logrotate_reads_daily_fourteen_rotations(tmp_path: Path) -> None:
    """logrotate -d parses the snippet without error: daily, 14 rotations, copytruncate."""
    (tmp_path / "ccswitch.log").write_text("line\n")
    result = logrotate(logrotate_copy(tmp_path), "-d")
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "error" not in output.lower(), output
    assert "after 1 days (14 rotations)" in output


@needs("logrotate")
def test_logrotate_keeps_a_running_writer_logging(tmp_path: Path) -> None:
    """copytruncate: ccswitch's open (append-mode) stdout keeps landing in ccswitch.log."""
    config = logrotate_copy(tmp_path)
    log = tmp_path / "ccswitch.log"
    with log.open("a") as stdout:
        stdout.write("before rotation\n")
        stdout.flush()
        result = logrotate(config, "-f")
        assert result.returncode == 0, result.stderr
        stdout.write("after rotation\n")
        stdout.flush()
    assert log.read_text() == "after rotation\n"
    assert (tmp_path / "ccswitch.log.1").read_text() == "before rotation\n"


@needs("logrotate")
def test_logrotate_compresses_older_logs(tmp_path: Path) -> None:
    """The newest rotated log stays plain (delaycompress), older ones are gzipped."""
    config = logrotate_copy(tmp_path)
    log = tmp_path / "ccswitch.log"
    for day in ("monday", "tuesday"):
        log.write_text(f"{day}\n")
        assert logrotate(config, "-f").returncode == 0
    assert (tmp_path / "ccswitch.log.1").read_text() == "tuesday\n"
    assert gzip.decompress((tmp_path / "ccswitch.log.2.gz").read_bytes()) == b"monday\n"
