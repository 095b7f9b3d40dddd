"""deploy/kamailio/kamailio.cfg in a real Kamailio in front of two real ccswitch nodes.

The nodes share one redis-server and one agent; callers dial Kamailio, whose dispatcher
spreads new calls round-robin, fails over from a dead node and probes nodes with OPTIONS.
Kamailio runs unprivileged in the foreground: runtime dir, working dir, pid file, control
socket and dispatcher.list all live in the test's temp directory.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.node import (
    AGENT_HZ, ANNOUNCEMENT_S, CALLER_HZ, Node, NodeFactory, agent_uri, dialplan,
)
from tests.phones.client import Phone, PhoneFactory, free_udp_port
from tests.redisd import RedisServer

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "kamailio" / "kamailio.cfg"
REQUIRED = bool(os.environ.get("CCSWITCH_REQUIRE_TOOLS"))


def kamailio_binary() -> str:
    """kamailio's path (it lives in /usr/sbin); skips, or fails when tools are required."""
    found = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin:/sbin")
    if found is None:
        if REQUIRED:
            pytest.fail("kamailio is required (CCSWITCH_REQUIRE_TOOLS=1) but not installed")
        pytest.skip("kamailio is not installed here")
    return found


class Kamailio:
    """deploy/kamailio/kamailio.cfg run with ``-DD -E`` on 127.0.0.1:<free port>."""

    def __init__(self, workdir: Path, nodes: list[str], *, ping_interval: int = 1,
                 fr_timer_ms: int = 1000, trusted: str = "127.0.0.0/8") -> None:
        binary = kamailio_binary()
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = free_udp_port()
        self.dispatcher_list = workdir / "dispatcher.list"
        self.dispatcher_list.write_text("".join(f"1 {uri} 0 0\n" for uri in nodes))
        self.log_path = workdir / "kamailio.log"
        self._log = self.log_path.open("wb")
        defines = {
            "LISTEN": f"udp:127.0.0.1:{self.port}",
            "DISPATCHER_LIST": f'"{self.dispatcher_list}"',
            "CTL_SOCKET": f'"unix:{workdir / "ctl"}"',
            "TRUSTED_SOURCES": f'"{trusted}"',
            "PING_INTERVAL": str(ping_interval),
            "FR_TIMER": str(fr_timer_ms),
            "CHILDREN": "2",
        }
        command = [binary, "-DD", "-E", "-f", str(CONFIG), "-Y", str(workdir),
                   "-w", str(workdir), "-P", str(workdir / "kamailio.pid"), "-m", "32"]
        for name, value in defines.items():
            command += ["-A", f"{name}={value}"]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(timeout=10)

    @property
    def dial_uri(self) -> str:
        return f"sip:100@127.0.0.1:{self.port}"

    def request(self, method: str, uri: str, *, extra: str = "",
                timeout: float = 3.0) -> str | None:
        """Send one out-of-dialog request from a fresh UDP port; the first final reply's
        status line, or None if nothing final came within ``timeout``."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            branch = "z9hG4bK" + secrets.token_hex(8)
            message = (f"{method} {uri} SIP/2.0\r\n"
                       f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}\r\n"
                       "Max-Forwards: 70\r\n"
                       f"From: <sip:probe@127.0.0.1:{port}>;tag={secrets.token_hex(4)}\r\n"
                       f"To: <{uri}>\r\n"
                       f"Call-ID: {secrets.token_hex(8)}@127.0.0.1\r\n"
                       f"CSeq: 1 {method}\r\n"
                       f"Contact: <sip:probe@127.0.0.1:{port}>\r\n"
                       f"{extra}Content-Length: 0\r\n\r\n")
            s.sendto(message.encode(), ("127.0.0.1", self.port))
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                s.settimeout(left)
                try:
                    data = s.recv(65535)
                except (socket.timeout, ConnectionRefusedError):
                    return None
                status = data.split(b"\r\n", 1)[0].decode(errors="replace")
                if not status.startswith("SIP/2.0 1"):
                    return status
        return None

    def _wait_ready(self, timeout: float) -> None:
        """Until Kamailio answers OPTIONS to itself (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kamailio exited {self.process.returncode}:\n{self.log()}")
            if self.request("OPTIONS", f"sip:127.0.0.1:{self.port}", timeout=0.5):
                return
        raise RuntimeError(f"kamailio not answering in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-20000:]

    def lines(self, pattern: str) -> list[str]:
        return [line for line in self.log().splitlines() if re.search(pattern, line)]

    def wait_log(self, pattern: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.lines(pattern)
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in kamailio's log after {timeout}s:\n"
                             f"{self.log()}")

    def stop(self) -> None:
        """SIGTERM the main process (it ends its children), SIGKILL its group if stuck."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self._log.close()


KamailioFactory = Callable[..., Kamailio]


@pytest.fixture
def kamailio_factory(tmp_path: Path) -> Iterator[KamailioFactory]:
    """Start Kamailio proxies; each is stopped when the test ends."""
    started: list[Kamailio] = []

    def start(nodes: list[str], **kwargs: Any) -> Kamailio:
        proxy = Kamailio(tmp_path / f"kam{len(started)}", nodes, **kwargs)
        started.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in started:
            proxy.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


def node_uri(node: Node) -> str:
    return f"sip:127.0.0.1:{node.sip_port}"


def two_nodes(node_factory: NodeFactory, redis_server: RedisServer,
              agent_port: int) -> tuple[Node, Node]:
    plan = dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}, wrap_up=0)
    node_a = node_factory(plan, state=redis_server.url, node="node-a")
    node_b = node_factory(plan, state=redis_server.url, node="node-b")
    return node_a, node_b


def agent(phone_factory: PhoneFactory, port: int, calls: int, *args: str) -> Phone:
    return phone_factory("--role", "agent", "--port", str(port), "--user", "alice",
                         "--tone", str(AGENT_HZ), "--calls", str(calls), "--timeout", "90",
                         *args, name="alice")


def caller(phone_factory: PhoneFactory, proxy: Kamailio, name: str, stay: float) -> Phone:
    return phone_factory("--role", "caller", "--user", name, "--dial", proxy.dial_uri,
                         "--tone", str(CALLER_HZ), "--hangup-after", str(stay),
                         "--timeout", "60", name=name)


def cdr_rows(*nodes: Node, count: int, timeout: float = 20.0) -> list[list[dict[str, Any]]]:
    """Each node's CDR rows, once the nodes have ``count`` rows in all."""
    deadline = time.monotonic() + timeout
    rows: list[list[dict[str, Any]]] = []
    while time.monotonic() < deadline:
        rows = [node.wait_cdr(0) for node in nodes]
        if sum(map(len, rows)) >= count:
            return rows
        time.sleep(0.2)
    raise AssertionError(f"expected {count} CDR rows in all, have {rows}")


def test_kamailio_answers_options_to_itself(kamailio_factory: KamailioFactory) -> None:
    """An OPTIONS for Kamailio itself (no user) is answered 200 by Kamailio."""
    proxy = kamailio_factory(["sip:127.0.0.1:9"])
    assert proxy.request("OPTIONS", f"sip:127.0.0.1:{proxy.port}") == "SIP/2.0 200 Keepalive"


def test_kamailio_refuses_requests_from_outside_trusted_sources(
        kamailio_factory: KamailioFactory) -> None:
    """An INVITE from an address outside TRUSTED_SOURCES (nor a node) gets 403."""
    proxy = kamailio_factory(["sip:127.0.0.1:9"], trusted="192.0.2.0/24")
    assert proxy.request("INVITE", proxy.dial_uri) == "SIP/2.0 403 Forbidden"
    assert proxy.lines(r"INVITE from untrusted source 127\.0\.0\.1:")


def test_kamailio_answers_503_when_no_node_is_alive(kamailio_factory: KamailioFactory) -> None:
    """Once probing has marked every node down, a new INVITE gets 503 at once."""
    dead = [f"sip:127.0.0.1:{free_udp_port()}" for _ in range(2)]
    proxy = kamailio_factory(dead)
    for uri in dead:
        proxy.wait_log(f"ccswitch node down: {re.escape(uri)}$")
    assert proxy.request("INVITE", proxy.dial_uri) == "SIP/2.0 503 No ccswitch Node Available"


def test_two_calls_through_kamailio_are_spread_over_both_nodes(
        redis_server: RedisServer, node_factory: NodeFactory, phone_factory: PhoneFactory,
        kamailio_factory: KamailioFactory) -> None:
    """Round-robin gives each node one of two calls; alice (shared through Redis) answers
    them one after the other, and both in-dialog directions (the caller's BYE, ccswitch's
    BYE when alice hangs up) travel the record-routed path through Kamailio."""
    agent_port = free_udp_port()
    node_a, node_b = two_nodes(node_factory, redis_server, agent_port)
    proxy = kamailio_factory([node_uri(node_a), node_uri(node_b)])
    talk = 6.0
    alice = agent(phone_factory, agent_port, 2, "--hangup-after", str(talk))
    first = caller(phone_factory, proxy, "first", ANNOUNCEMENT_S + 3.0)  # hangs up first
    alice.wait_state("CONFIRMED", timeout=20, call=1)
    second = caller(phone_factory, proxy, "second", 60.0)  # alice hangs up this one
    assert first.wait_exit(30) == 0, first.describe()
    assert second.wait_exit(40) == 0, second.describe()
    assert not second.find("hangup"), "the second caller hung up itself, got no BYE"
    assert alice.wait_exit(15) == 0, alice.describe()

    rows_a, rows_b = cdr_rows(node_a, node_b, count=2)
    assert len(rows_a) == 1 and len(rows_b) == 1, (rows_a, rows_b, proxy.log())
    calls = {row["caller"]: row for row in rows_a + rows_b}
    assert {c: (r["outcome"], r["agent_id"]) for c, r in calls.items()} == {
        "first": ("answered_inhouse", "alice"), "second": ("answered_inhouse", "alice")}
    assert calls["second"]["answered_ms"] >= calls["first"]["ended_ms"]  # one at a time
    [hung_up] = first.find("hangup")
    assert abs(calls["first"]["ended_ms"] / 1000 - hung_up["ts"]) < 2.0  # BYE got through
    # Record-Route: the caller's BYE and the node's BYE (alice hung up) both came
    # through Kamailio, not straight to the other end's Contact.
    second_node = node_b if rows_a[0]["caller"] == "first" else node_a
    byes = proxy.lines(r"BYE \S+ from 127\.0\.0\.1:\d+$")
    assert sorted(int(line.rsplit(":", 1)[1]) for line in byes) == sorted(
        [first.port, second_node.sip_port]), byes
    dispatched = proxy.lines(r"dispatching INVITE .* to sip:127\.0\.0\.1:\d+$")
    assert {line.rsplit(" ", 1)[1] for line in dispatched} == {node_uri(node_a),
                                                              node_uri(node_b)}


def test_an_invite_to_a_dead_node_fails_over_to_the_other(
        redis_server: RedisServer, node_factory: NodeFactory, phone_factory: PhoneFactory,
        kamailio_factory: KamailioFactory) -> None:
    """Node B dies before any probe notices: the INVITE round-robin sends it gets no
    answer, failure_route marks B down and relays to A; both calls are served by A."""
    agent_port = free_udp_port()
    node_a, node_b = two_nodes(node_factory, redis_server, agent_port)
    proxy = kamailio_factory([node_uri(node_a), node_uri(node_b)], ping_interval=3600)
    node_b.kill()
    alice = agent(phone_factory, agent_port, 2)
    for name in ("one", "two"):
        phone = caller(phone_factory, proxy, name, ANNOUNCEMENT_S + 2.0)
        assert phone.wait_exit(30) == 0, phone.describe()
    assert alice.wait_exit(15) == 0, alice.describe()

    rows = node_a.wait_cdr(2)
    assert sorted((r["caller"], r["outcome"]) for r in rows) == [
        ("one", "answered_inhouse"), ("two", "answered_inhouse")]
    b = re.escape(node_uri(node_b))
    assert len(proxy.lines(f"node {b} did not answer INVITE .*; marked inactive")) == 1
    assert proxy.lines(f"ccswitch node down: {b}$")
    assert len(proxy.lines(f"failover of INVITE .* to {re.escape(node_uri(node_a))}$")) == 1


def test_probing_takes_a_dead_node_out_and_back_in(
        redis_server: RedisServer, node_factory: NodeFactory, phone_factory: PhoneFactory,
        kamailio_factory: KamailioFactory) -> None:
    """OPTIONS probes mark a stopped node down, so new calls go straight to the live one
    (no failover needed); once the node is back a probe marks it up again."""
    agent_port = free_udp_port()
    node_a, node_b = two_nodes(node_factory, redis_server, agent_port)
    proxy = kamailio_factory([node_uri(node_a), node_uri(node_b)], ping_interval=1)
    b = re.escape(node_uri(node_b))
    time.sleep(2.5)  # a few probe rounds: both nodes answer OPTIONS and stay up
    assert not proxy.lines("ccswitch node down")
    node_b.stop()
    proxy.wait_log(f"ccswitch node down: {b}$")
    alice = agent(phone_factory, agent_port, 2)
    for name in ("one", "two"):
        phone = caller(phone_factory, proxy, name, ANNOUNCEMENT_S + 2.0)
        assert phone.wait_exit(30) == 0, phone.describe()
    assert alice.wait_exit(15) == 0, alice.describe()
    assert len(node_a.wait_cdr(2)) == 2
    assert not proxy.lines("failover of INVITE")

    node_b.start()
    proxy.wait_log(f"ccswitch node up: {b}$")


def test_after_redis_restarts_empty_calls_through_kamailio_reach_the_agent_on_both_nodes(
        redis_server: RedisServer, node_factory: NodeFactory, phone_factory: PhoneFactory,
        kamailio_factory: KamailioFactory) -> None:
    """redis-server restarts without its data while both nodes serve behind Kamailio: each
    node publishes its state again, and the next two calls (one per node, round-robin)
    both reach alice, shared through the refilled Redis."""
    agent_port = free_udp_port()
    node_a, node_b = two_nodes(node_factory, redis_server, agent_port)
    proxy = kamailio_factory([node_uri(node_a), node_uri(node_b)])
    alice = agent(phone_factory, agent_port, 2)
    presence = redis_server.client().hget
    deadline = time.monotonic() + 10
    while presence("ccswitch:presence", "alice") != b"ready":
        assert time.monotonic() < deadline, "alice's presence never reached Redis"
        time.sleep(0.1)
    redis_server.stop()
    redis_server.start()
    for name in ("one", "two"):
        phone = caller(phone_factory, proxy, name, ANNOUNCEMENT_S + 2.0)
        assert phone.wait_exit(30) == 0, phone.describe()
    assert alice.wait_exit(15) == 0, alice.describe()

    rows_a, rows_b = cdr_rows(node_a, node_b, count=2)
    assert len(rows_a) == 1 and len(rows_b) == 1, (rows_a, rows_b, proxy.log())
    assert sorted((r["caller"], r["outcome"], r["agent_id"]) for r in rows_a + rows_b) == [
        ("one", "answered_inhouse", "alice"), ("two", "answered_inhouse", "alice")]
    for node in (node_a, node_b):
        assert "state store refilled" in node.log(), node.log()
