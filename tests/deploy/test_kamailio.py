"""The Kamailio dispatcher example: kamailio's own config check, and the shipped node list.

kamailio may be missing: the config checks then skip with the reason, unless
CCSWITCH_REQUIRE_TOOLS is set (make test). tests/e2e/test_kamailio.py runs the config.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "kamailio" / "kamailio.cfg"
DISPATCHER_LIST = ROOT / "deploy" / "kamailio" / "dispatcher.list"
REQUIRED = bool(os.environ.get("CCSWITCH_REQUIRE_TOOLS"))


def find(tool: str) -> str | None:
    """The tool's path; kamailio lives in /usr/sbin, not on a Debian user's PATH."""
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


needs_kamailio = pytest.mark.skipif(find("kamailio") is None and not REQUIRED,
                                    reason="kamailio is not installed here")


def check(config: Path, *defines: str) -> subprocess.CompletedProcess[str]:
    """``kamailio -c -f config`` with ``-A`` for each define."""
    path = find("kamailio")
    assert path is not None, "kamailio is required here but not installed"
    args = [arg for define in defines for arg in ("-A", define)]
    return subprocess.run([path, "-c", "-f", str(config), *args],
                          capture_output=True, text=True, timeout=60)


@needs_kamailio
def test_kamailio_accepts_the_shipped_config() -> None:
    """kamailio -c -f deploy/kamailio/kamailio.cfg: parses, every module and parameter known."""
    result = check(CONFIG)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "config file ok" in output, output


@needs_kamailio
def test_kamailio_accepts_the_config_with_every_define_overridden(tmp_path: Path) -> None:
    """Each documented -A override keeps the config valid and takes effect (listen shown)."""
    result = check(CONFIG, "LISTEN=udp:127.0.0.1:15060",
                   f'DISPATCHER_LIST="{DISPATCHER_LIST}"',
                   f'CTL_SOCKET="unix:{tmp_path / "ctl"}"', 'TRUSTED_SOURCES="192.0.2.0/24"',
                   "PING_INTERVAL=1", "FR_TIMER=500", "FR_INV_TIMER=30000", "CHILDREN=2")
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "config file ok" in output, output
    assert "udp: 127.0.0.1 [127.0.0.1]:15060" in output


@needs_kamailio
def test_kamailio_check_rejects_a_broken_config(tmp_path: Path) -> None:
    """The check has teeth: the config with one call misspelt fails it."""
    broken = tmp_path / "kamailio.cfg"
    text = CONFIG.read_text()
    assert 'ds_select_dst("1", "4")' in text
    broken.write_text(text.replace('ds_select_dst("1", "4")', 'ds_select_dts("1", "4")'))
    result = check(broken)
    assert result.returncode != 0, result.stdout + result.stderr


def test_dispatcher_list_has_two_nodes_in_set_one() -> None:
    """dispatcher.list: two active SIP destinations in set 1, the set kamailio.cfg uses."""
    entries = [line.split() for line in DISPATCHER_LIST.read_text().splitlines()
               if line.strip() and not line.lstrip().startswith("#")]
    assert [(setid, flags) for setid, _, flags, *_ in entries] == [("1", "0"), ("1", "0")]
    uris = [uri for _, uri, *_ in entries]
    assert len(set(uris)) == 2 and all(uri.startswith("sip:") for uri in uris)
    assert 'ds_select_dst("1", "4")' in CONFIG.read_text()
