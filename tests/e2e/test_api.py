"""The operator API end to end: a real ccswitch process, real phones, real HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.audio import read_wav
from tests.e2e.node import (
    AGENT_HZ, ANNOUNCEMENT_S, CALLER_HZ, Node, NodeFactory, agent_uri, dialplan,
)
from tests.phones.client import PhoneFactory, free_udp_port

pytestmark = pytest.mark.e2e

TOKEN = "t0k3n-" + "a1b2c3d4" * 4


def wait_for(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not true after {timeout}s: {check}")


def api_node(node_factory: NodeFactory, agent_port: int) -> Node:
    return node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port),
                                            "logged_in": False}}), api_token=TOKEN)


def test_requests_without_the_right_token_are_refused_and_logged_without_it(
        node_factory: NodeFactory) -> None:
    """No token, a wrong token or another scheme: 401 with WWW-Authenticate; the log names
    the client but never the token tried."""
    node = api_node(node_factory, free_udp_port())
    wrong = "x" * len(TOKEN)
    for token in (None, wrong, TOKEN[:-1]):
        status, body = node.api("GET", "agents", token)
        assert (status, body["id"]) == (401, "api.unauthorized")
    assert node.log().count("bad or missing token") == 3
    assert wrong not in node.log() and TOKEN[:-1] not in node.log()


def test_agents_are_controlled_through_the_api_and_calls_follow(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """alice starts logged out; an API login makes her take the next call; the call shows in
    the live calls; pause while on the call is deferred; errors are 404/405/409."""
    agent_port = free_udp_port()
    node = api_node(node_factory, agent_port)
    status, body = node.api("GET", "agents", TOKEN)
    assert status == 200
    assert body["agents"] == [{"agent_id": "alice", "state": "logged_out", "call_id": None,
                               "pending": None, "groups": ["inhouse"]}]
    assert node.api("POST", "agents/alice/login", TOKEN) == (
        200, {"agent_id": "alice", "state": "ready"})
    status, body = node.api("POST", "agents/alice/login", TOKEN)
    assert (status, body["id"]) == (409, "state.illegal_transition")
    assert node.api("POST", "agents/nobody/login", TOKEN)[0] == 404
    assert node.api("GET", "agents/alice/login", TOKEN)[0] == 405
    assert node.api("GET", "nothing/here", TOKEN)[0] == 404

    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--timeout", "40", name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 4.0), "--timeout", "40",
                           name="caller")
    calls = wait_for(lambda: [c for c in node.api("GET", "calls", TOKEN)[1]["calls"]
                              if c["state"] == "bridged"])
    assert (calls[0]["agent_id"], calls[0]["queue"], calls[0]["recording"]) == (
        "alice", "support", "recording")
    assert node.api("POST", "agents/alice/pause", TOKEN) == (
        200, {"agent_id": "alice", "state": "on_call"})
    assert caller.wait_exit(30) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()
    wait_for(lambda: node.api("GET", "agents", TOKEN)[1]["agents"][0]["state"] == "not_ready")
    status, body = node.api("GET", "queues", TOKEN)
    assert body == {"queues": [{"queue": "support", "group": "inhouse", "waiting": 0}]}


def test_recording_pause_silences_both_channels_and_downloads_are_logged(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """PCI pause: before the notice ends nothing records (not_started); silence on both
    channels between pause and resume, the pause in the sidecar; the finished WAV
    downloads with the token and the download is logged."""
    agent_port = free_udp_port()
    node = api_node(node_factory, agent_port)
    node.api("POST", "agents/alice/login", TOKEN)
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--timeout", "40", name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 7.0), "--timeout", "40",
                           name="caller")
    [announcing] = wait_for(lambda: node.api("GET", "calls", TOKEN)[1]["calls"])
    assert (announcing["state"], announcing["recording"]) == ("announcing", "not_started")
    [call] = wait_for(lambda: [c for c in node.api("GET", "calls", TOKEN)[1]["calls"]
                               if c["state"] == "bridged"])
    time.sleep(1.5)
    assert node.api("POST", f"calls/{call['call_id']}/recording/pause", TOKEN) == (
        200, {"call_id": call["call_id"], "recording": "paused"})
    time.sleep(2.0)
    assert node.api("POST", f"calls/{call['call_id']}/recording/resume", TOKEN)[1][
        "recording"] == "recording"
    assert node.api("POST", "calls/nope/recording/pause", TOKEN)[0] == 404
    assert caller.wait_exit(30) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()

    [wav] = node.wait_recordings(1)
    meta = json.loads(wav.with_suffix(".json").read_text())
    [pause] = meta["recording_pauses"]
    assert pause["to"] - pause["from"] == pytest.approx(2.0, abs=0.3)
    rate, audio = read_wav(wav)
    start = meta["recording_started_at"]
    inside = audio[int((pause["from"] - start + 0.3) * rate):int((pause["to"] - start - 0.3)
                                                                   * rate)]
    after = audio[int((pause["to"] - start + 0.5) * rate):]
    assert np.abs(inside).max() == 0
    assert np.sqrt(np.mean(after.astype(float) ** 2, axis=0)).min() > 100

    wait_for(lambda: node.wait_cdr(1))
    assert node.api("GET", f"recordings/{call['call_id']}")[0] == 401
    status, body = node.api("GET", f"recordings/{call['call_id']}", TOKEN)
    assert status == 200 and body == wav.read_bytes()
    [entry] = [json.loads(line) for line in
               (node.recordings / "downloads.log").read_text().splitlines()]
    assert (entry["call_id"], entry["client"], entry["path"], entry["bytes"]) == (
        call["call_id"], "127.0.0.1", str(wav), len(body))
    assert node.api("GET", "recordings/unknown-call", TOKEN)[0] == 404
    assert oct(Path(node.recordings / "downloads.log").stat().st_mode & 0o777) == "0o600"


def test_agent_presence_set_through_the_api_survives_a_kill_9(
        node_factory: NodeFactory) -> None:
    """alice (logged out in the dialplan) logged in and bob paused through the API; after
    SIGKILL and a restart both are as the supervisors left them."""
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", free_udp_port()),
                                            "logged_in": False},
                                  "bob": {"uri": agent_uri("bob", free_udp_port())}}),
                        api_token=TOKEN)
    node.api("POST", "agents/alice/login", TOKEN)
    node.api("POST", "agents/bob/pause", TOKEN)
    wait_for(lambda: (node.recordings / "agents.json").exists())
    time.sleep(0.3)
    node.kill()
    node.start()
    states = {a["agent_id"]: a["state"] for a in node.api("GET", "agents", TOKEN)[1]["agents"]}
    assert states == {"alice": "ready", "bob": "not_ready"}
    assert "agent presence restored" in node.log()
