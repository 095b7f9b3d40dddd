"""The wallboard of one node counts the callers waiting on another (its ``portal.peers``),
read through the peer's operator API: two real ccswitch processes and a pjsua2 caller."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.node import ANNOUNCEMENT_S, CALLER_HZ, Node, NodeFactory, agent_uri, dialplan
from tests.phones.client import PhoneFactory, free_udp_port

pytestmark = pytest.mark.e2e

TOKEN = "a-shared-api-token-of-the-center-0123456789"
PASSWORD = "a long test password"


def supervisor_cookie(node: Node) -> str:
    subprocess.run([sys.executable, "-m", "ccswitch.cli", "user", "add", "sue", "--role",
                    "supervisor", "--password-stdin", "--config", str(node.config_path)],
                   input=PASSWORD + "\n", text=True, capture_output=True, timeout=60,
                   check=True, cwd=Path(__file__).resolve().parents[2])
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=5)
    conn.request("GET", "/portal/login")
    csrf = re.search(rb'name="csrf" value="([^"]+)"', conn.getresponse().read())
    assert csrf is not None
    conn.request("POST", "/portal/login", headers={
        "Cookie": f"ccswitch_login={csrf.group(1).decode()}",
        "Content-Type": "application/x-www-form-urlencoded"},
        body=f"csrf={csrf.group(1).decode()}&username=sue&password={PASSWORD}".encode())
    response = conn.getresponse()
    response.read()
    for header in response.msg.get_all("Set-Cookie") or []:
        if header.startswith("ccswitch_session="):
            return header.split(";")[0].split("=", 1)[1]
    raise AssertionError(f"login failed: {response.status}")


def snapshots(node: Node, cookie: str, timeout: float) -> Any:
    """The wallboard snapshots of one /portal/events stream, for at most ``timeout`` s."""
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=5)
    conn.request("GET", "/portal/events", headers={"Cookie": f"ccswitch_session={cookie}"})
    response = conn.getresponse()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            line = response.readline()
            if not line:
                return
            if line.startswith(b"data: "):
                yield json.loads(line[6:])
    finally:
        conn.close()


def test_wallboard_counts_a_caller_waiting_on_a_peer_node(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """A caller waiting on node B shows on node A's wallboard, and B is listed as up."""
    plan = dialplan({"alice": {"uri": agent_uri("alice", free_udp_port()),
                               "logged_in": False}})
    b = node_factory(plan, api_token=TOKEN)
    a = node_factory(plan, api_token=TOKEN,
                     portal={"peers": [f"http://127.0.0.1:{b.http_port}"]})
    cookie = supervisor_cookie(a)
    caller = phone_factory("--role", "caller", "--dial", b.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 8.0), "--timeout", "40",
                           name="caller")
    seen = None
    for snap in snapshots(a, cookie, timeout=ANNOUNCEMENT_S + 6.0):
        if snap["queues"][0]["waiting"] == 1:
            seen = snap
            break
    caller.wait_exit(30)
    assert seen is not None, b.log()
    assert seen["peers"] == [{"url": f"http://127.0.0.1:{b.http_port}", "up": True}]
    assert seen["queues"][0]["longest_wait"] > 0
