#!/usr/bin/env python3
"""A one-minute demo of the whole system on this machine (``make demo``).

Starts ccswitch with the shipped QA notice and music on hold, two simulated
in-house agents (one SIPp process that answers and echoes audio) and two
streams of simulated callers (SIPp): patient callers who stay 15 s after
ccswitch answers (4 s of QA notice, then queue and talk), and impatient ones
who hang up after 7 s, i.e. about 3 s into the queue. Two agents cannot keep
up, so the minute shows answered calls, waiting, abandons and wrap-up. Then it stops ccswitch and
prints the KPI report from the call detail records.

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


def plan(agent_port: int) -> dict[str, object]:
    """The e2e tests' one-queue dialplan with the demo's agents and a 2 s wrap-up."""
    return dialplan({a: {"uri": agent_uri(a, agent_port), "name": a.title()} for a in AGENTS},
                    wrap_up=2, short_abandon=5)


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
        agent_port = free_udp_port()
        node = Node(workdir / "node", plan(agent_port), log_level="info")
        print(f"ccswitch is up: SIP 127.0.0.1:{node.sip_port}, metrics {node.url('/metrics')}")
        agents = Sipp("uas_answer.xml", "-i", "127.0.0.1", "-p", str(agent_port),
                      "-mp", str(free_udp_port()), "-rtp_echo", cwd=workdir, name="agents")
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
                print(f"  active calls {active:.0f}, waiting {depth:.0f}", flush=True)
        finally:
            for stream in streams:
                stream.stop()
            agents.stop()
            node.stop()
        print(f"\nrecordings: {len(node.recordings_done())} in {node.recordings}\n")
        report = subprocess.run(
            [sys.executable, "-m", "ccswitch.cli", "report", "--config", str(node.config_path),
             "--period", "hour"], cwd=REPO, text=True, capture_output=True, timeout=60)
        print(report.stdout or report.stderr)
        return report.returncode


if __name__ == "__main__":
    sys.exit(main())
