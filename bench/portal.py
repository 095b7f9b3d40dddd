#!/usr/bin/env python3
"""Portal benchmark: what the live wallboard costs ccswitch with many viewers under load.

A fresh ccswitch with the portal and ``--calls`` SIPp agents takes ``--calls`` held SIPp
calls. Once they are all up, the node's CPU is sampled for ``--window`` seconds without
viewers, then again with ``--clients`` wallboard streams (``/portal/events``, one
supervisor session each) open; the difference is the wallboard's cost, in percent of one
core (target: < 5 % for 50 clients at 200 calls).

    .venv/bin/python bench/portal.py                        # 50 clients, 200 calls
    .venv/bin/python bench/portal.py --clients 10 --calls 10 --window 5   # a smoke run

Everything binds to 127.0.0.1; every wait is bounded and every process stopped at the end.
"""

from __future__ import annotations

import argparse
import http.client
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import REPO, Node, active_calls, cpu_seconds, machine, plan
from tests.phones.client import Sipp, free_udp_port, write_ulaw_tone

PASSWORD = "bench password, not a secret"


def session_cookie(node: Node) -> str:
    """Log the bench supervisor in; its session token."""
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=10)
    conn.request("GET", "/portal/login")
    r = conn.getresponse()
    token = re.search(rb'name="csrf" value="([^"]+)"', r.read())
    assert token is not None, "no login form"
    csrf = token.group(1).decode()
    conn.request("POST", "/portal/login",
                 body=f"csrf={csrf}&username=bench&password={PASSWORD}".encode(),
                 headers={"Cookie": f"ccswitch_login={csrf}",
                          "Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    r.read()
    for header in r.msg.get_all("Set-Cookie") or []:
        if header.startswith("ccswitch_session="):
            return header.split(";")[0].split("=", 1)[1]
    raise RuntimeError(f"login failed: {r.status}")


class Viewer(threading.Thread):
    """One wallboard: reads /portal/events until told to stop; counts events."""

    def __init__(self, node: Node, cookie: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.events = 0
        self._conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=5)
        self._conn.request("GET", "/portal/events",
                           headers={"Cookie": f"ccswitch_session={cookie}"})
        self._response = self._conn.getresponse()
        assert self._response.status == 200, self._response.status
        self._halt = stop

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                line = self._response.readline()
                if not line:
                    return
                if line.startswith(b"data: "):
                    self.events += 1
        except OSError:
            return
        finally:
            self._conn.close()


def cpu_percent(pid: int, window: float) -> float:
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(window)
    return 100 * (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="calls offered per second")
    parser.add_argument("--window", type=float, default=15.0, help="seconds per CPU sample")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ccswitch-portal-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        agent_port, caller_port = free_udp_port(), free_udp_port()
        node = Node(tmp / "node", plan(args.calls, agent_port),
                    rtp_ports=max(4 * args.calls + 100, 400), log_level="info", portal={})
        added = subprocess.run(
            [sys.executable, "-m", "ccswitch.cli", "user", "add", "bench", "--role",
             "supervisor", "--password-stdin", "--config", str(node.config_path)],
            input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, cwd=REPO)
        if added.returncode != 0:
            node.stop()
            raise RuntimeError(added.stderr)
        write_ulaw_tone(tmp / "caller_audio.ulaw", 440.0, seconds=1.0)
        setup = args.calls / args.rate
        hold = setup + 2 * args.window + 30
        uas = Sipp("uas_answer.xml", "-i", "127.0.0.1", "-p", str(agent_port),
                   "-mp", str(free_udp_port()), "-rtp_echo", "-max_socket", "4096",
                   cwd=tmp, name="agents")
        uac = Sipp("uac_call.xml", f"127.0.0.1:{node.sip_port}", "-s", "100",
                   "-m", str(args.calls), "-l", str(args.calls), "-r", f"{args.rate:g}",
                   "-d", str(int(hold * 1000)), "-i", "127.0.0.1", "-p", str(caller_port),
                   "-mp", str(free_udp_port()), "-timeout", f"{int(hold + 60)}s",
                   cwd=tmp, name="callers")
        stop = threading.Event()
        viewers: list[Viewer] = []
        try:
            deadline = time.monotonic() + setup + 20
            while time.monotonic() < deadline and (active_calls(node) or 0) < args.calls:
                time.sleep(0.5)
            up = active_calls(node)
            pid = node.process.pid
            idle = cpu_percent(pid, args.window)
            cookie = session_cookie(node)
            viewers = [Viewer(node, cookie, stop) for _ in range(args.clients)]
            for v in viewers:
                v.start()
            watched = cpu_percent(pid, args.window)
        finally:
            stop.set()
            uac.stop()
            uas.stop()
            node.stop()
            for v in viewers:
                v.join(timeout=5)
    events = sum(v.events for v in viewers)
    cost = watched - idle
    print(f"Machine: {machine()}")
    print(f"calls up: {up}, clients: {args.clients}, events received: {events}")
    print(f"node CPU without viewers {idle:.1f} %, with {watched:.1f} %: "
          f"wallboard cost {cost:.1f} % of one core (target < 5 %)")
    return 0 if cost < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
