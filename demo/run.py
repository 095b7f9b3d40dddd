#!/usr/bin/env python3
"""A one-minute demo of the whole system on this machine (``make demo``).

Starts ccswitch with the shipped QA notice and music on hold, two simulated
in-house agents (one SIPp process that answers and echoes audio), a simulated
outsourced vendor behind a SIP trunk (another SIPp process, capped at 3
channels) and two streams of simulated callers (SIPp): patient callers who stay
15 s after ccswitch answers (4 s of QA notice, then queue and talk), and
impatient ones who hang up after 7 s, i.e. about 3 s into the queue. The vendor
gets a contractual 20 % share and every caller who waited 6 s. Two agents cannot
keep up, so the minute shows answered calls in-house and at the vendor, waiting,
abandons, the vendor's cap and wrap-up. Then it stops ccswitch and prints the
KPI report from the call detail records, in-house and vendor side by side.

    .venv/bin/python demo/run.py [--seconds 60] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.node import Node, agent_uri, dialplan  # noqa: E402
from tests.phones.client import Sipp, free_udp_port, write_ulaw_tone  # noqa: E402

AGENTS = ("anna", "ben")
VENDOR = "outsourcer"


def plan(agent_port: int, vendor_port: int) -> dict[str, object]:
    """The e2e tests' one-queue dialplan with the demo's agents, a 2 s wrap-up and the
    vendor's overflow rules."""
    data = dialplan(
        {a: {"uri": agent_uri(a, agent_port), "name": a.title()} for a in AGENTS},
        wrap_up=2, short_abandon=5,
        overflow=[{"share": {"vendor": VENDOR, "percent": 20}},
                  {"wait_exceeds": 6, "to": [VENDOR]}])
    data["vendors"] = {VENDOR: {"trunks": [f"sip:overflow@127.0.0.1:{vendor_port}"],
                                "max_channels": 3, "probe_interval": 0}}
    return data


def callers(name: str, scenario: str, node: Node, workdir: Path, *, rate: float,
            hold_ms: int, seconds: float) -> Sipp:
    count = max(1, int(rate * seconds))
    return Sipp(scenario, f"127.0.0.1:{node.sip_port}", "-s", "100", "-m", str(count),
                "-r", "1", "-rp", str(int(1000 / rate)), "-d", str(hold_ms),
                "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
                "-timeout", f"{int(seconds + 120)}s", cwd=workdir, name=name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long callers arrive")
    parser.add_argument("--keep", type=Path, help="work in this new directory and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ccswitch-demo-") as tmp_dir:
        workdir = args.keep or Path(tmp_dir)
        workdir.mkdir(parents=True, exist_ok=True)
        write_ulaw_tone(workdir / "caller_audio.ulaw", 440.0, seconds=1.0)
        agent_port, vendor_port = free_udp_port(), free_udp_port()
        node = Node(workdir / "node", plan(agent_port, vendor_port), log_level="info")
        print(f"ccswitch is up: SIP 127.0.0.1:{node.sip_port}, metrics {node.url('/metrics')}")
        agents = Sipp("uas_answer.xml", "-i", "127.0.0.1", "-p", str(agent_port),
                      "-mp", str(free_udp_port()), "-rtp_echo", cwd=workdir, name="agents")
        vendor = Sipp("uas_answer.xml", "-i", "127.0.0.1", "-p", str(vendor_port),
                      "-mp", str(free_udp_port()), "-rtp_echo", cwd=workdir, name="vendor")
        streams = [
            callers("patient", "uac_call.xml", node, workdir, rate=0.3, hold_ms=15000,
                    seconds=args.seconds),
            callers("impatient", "uac_abandon.xml", node, workdir, rate=0.15, hold_ms=7000,
                    seconds=args.seconds),
        ]
        try:
            end = time.monotonic() + args.seconds + 60
            while time.monotonic() < end and any(s.proc.poll() is None for s in streams):
                time.sleep(5)
                depth = node.metric("ccswitch_queue_depth", queue="support") or 0
                active = node.metric("ccswitch_active_calls") or 0
                at_vendor = node.metric("ccswitch_vendor_channels_in_use", vendor=VENDOR) or 0
                print(f"  active calls {active:.0f}, waiting {depth:.0f}, "
                      f"at the vendor {at_vendor:.0f}/3", flush=True)
        finally:
            for stream in streams:
                stream.stop()
            agents.stop()
            vendor.stop()
            node.stop()
        print(f"\nrecordings: {len(node.recordings_done())} in {node.recordings}\n")
        report = subprocess.run(
            [sys.executable, "-m", "ccswitch.cli", "report", "--config", str(node.config_path),
             "--period", "hour"], cwd=REPO, text=True, capture_output=True, timeout=60)
        print(report.stdout or report.stderr)
        return report.returncode


if __name__ == "__main__":
    sys.exit(main())
