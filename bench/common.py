"""What the load benchmark (run.py) and the soak (soak.py) share: process figures from
/proc, SIPp statistics, the dialplan of SIPp agents and the machine's description."""

from __future__ import annotations

import csv
import os
import platform
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.node import Node, agent_uri, dialplan  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def udp_sockets(pid: int) -> int:
    """UDP sockets ``pid`` holds open: its SIP port and one per RTP port in use."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed since the listing
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    udp = set()
    for table in ("udp", "udp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        udp.update(line.split()[9] for line in lines)
    return len(inodes & udp)


def active_calls(node: Node) -> float | None:
    """ccswitch_active_calls, or None when ccswitch is too busy to answer within 5 s."""
    try:
        return node.metric("ccswitch_active_calls") or 0.0
    except OSError:
        return None


def plan(n: int, agent_port: int) -> dict[str, Any]:
    """The e2e tests' one-queue dialplan with ``n`` agents and no wrap-up."""
    return dialplan({f"a{i:04d}": {"uri": agent_uri(f"a{i:04d}", agent_port)}
                     for i in range(n)}, wrap_up=0)


def sipp_counts(stat_file: Path) -> dict[str, int]:
    """Created/successful/failed call totals from SIPp's last -trace_stat row."""
    with stat_file.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    last = rows[-1]
    return {"created": int(last["TotalCallCreated"]),
            "successful": int(last["SuccessfulCall(C)"]), "failed": int(last["FailedCall(C)"])}


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return (f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")
