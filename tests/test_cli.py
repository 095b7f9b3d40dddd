"""The command line as an operator runs it: a real ``python -m ccswitch.cli`` process."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from ccswitch import __version__

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "config"


def ccswitch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ccswitch.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_version_prints_the_package_version() -> None:
    """``ccswitch --version`` prints the version and exits 0."""
    result = ccswitch("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"ccswitch {__version__}"


def test_check_accepts_the_shipped_example_config() -> None:
    """The config and dialplan that ``make run`` uses pass ``check`` with exit 0."""
    result = ccswitch("check", "--config", str(REPO / "deploy" / "ccswitch.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK (1 queue(s), 2 agent(s), 2 route(s))" in result.stdout


def test_check_reports_every_error_with_file_and_key_and_exits_2() -> None:
    """A bad config gets one ``error: file: key: reason`` line per problem and exit code 2."""
    result = ccswitch("check", "--config", str(DATA / "bad" / "ccswitch.yaml"))
    assert result.returncode == 2
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert len(errors) >= 5
    assert any("ccswitch.yaml: sip.user_agnet:" in line for line in errors)
    assert any("http.listen" in line for line in errors)


def test_run_refuses_to_start_on_a_bad_config_with_exit_2() -> None:
    """``run`` uses the same loader: it prints the errors on stderr and exits 2 without serving."""
    result = ccswitch("run", "--config", str(DATA / "bad" / "ccswitch.yaml"))
    assert result.returncode == 2
    assert "error: " in result.stderr and "sip.user_agnet" in result.stderr


def test_missing_config_file_is_a_clear_error() -> None:
    """A config path that does not exist is reported by name, exit 2."""
    result = ccswitch("check", "--config", "/nonexistent/ccswitch.yaml")
    assert result.returncode == 2
    assert "/nonexistent/ccswitch.yaml" in result.stdout


def test_reload_signals_the_process_only_when_the_config_is_valid() -> None:
    """``reload`` checks first: a bad config leaves the target alone, a good one sends SIGHUP."""
    target = subprocess.Popen(["sleep", "30"])  # dies of an unhandled SIGHUP
    try:
        bad = ccswitch("reload", "--config", str(DATA / "bad" / "ccswitch.yaml"),
                       "--pid", str(target.pid))
        assert bad.returncode == 2
        assert "not reloaded" in bad.stdout
        assert target.poll() is None
        good = ccswitch("reload", "--config", str(REPO / "deploy" / "ccswitch.yaml"),
                        "--pid", str(target.pid))
        assert good.returncode == 0, good.stdout
        assert target.wait(timeout=10) == -signal.SIGHUP
    finally:
        target.kill()
        target.wait()


def test_reload_of_a_process_that_does_not_exist_fails_clearly() -> None:
    """A stale pid is reported, exit 1."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    result = ccswitch("reload", "--config", str(REPO / "deploy" / "ccswitch.yaml"),
                      "--pid", str(gone.pid))
    assert result.returncode == 1
    assert f"cannot signal ccswitch (pid {gone.pid})" in result.stdout


def test_report_without_a_cdr_database_says_where_it_looked() -> None:
    """Before any call has ended there is no database: a clear message, exit 2."""
    result = ccswitch("report", "--config", str(DATA / "good" / "conf" / "ccswitch.yaml"))
    assert result.returncode == 2
    assert "no CDR database at" in result.stderr


def test_report_rejects_a_malformed_time() -> None:
    """--since must be ISO 8601; argparse names the bad value."""
    result = ccswitch("report", "--config", str(DATA / "good" / "conf" / "ccswitch.yaml"),
                      "--since", "last tuesday")
    assert result.returncode == 2
    assert "not an ISO 8601 time: 'last tuesday'" in result.stderr


def test_report_shares_and_chart_do_not_go_together() -> None:
    """--chart draws the KPIs, --shares prints the split instead: asking for both is refused."""
    result = ccswitch("report", "--config", str(DATA / "good" / "conf" / "ccswitch.yaml"),
                      "--shares", "--chart", "split.png")
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr
