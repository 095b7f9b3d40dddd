"""The portal refuses bad input over real HTTP to a real ccswitch node: forged sessions,
missing CSRF tokens, path tricks in recording ids, oversized bodies, SQL metacharacters
in filters, and repeated failed logins."""

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

from tests.e2e.node import Node, NodeFactory, agent_uri, dialplan

pytestmark = pytest.mark.e2e

PASSWORD = "a long test password"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def node(node_factory: NodeFactory) -> Node:
    started = node_factory(dialplan({"alice": {"uri": agent_uri("alice", 5999)}}),
                           portal={"user_failures": 3})
    result = subprocess.run(
        [sys.executable, "-m", "ccswitch.cli", "user", "add", "sue", "--role", "supervisor",
         "--password-stdin", "--config", str(started.config_path)],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return started


def request(node: Node, method: str, path: str, body: bytes | None = None,
            cookies: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=5)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    found = {k.lower(): v for k, v in r.getheaders()}
    # Each cookie comes in its own Set-Cookie header: keep them all, one per line.
    found["set-cookie"] = "\n".join(r.msg.get_all("Set-Cookie") or [])
    out = r.status, found, r.read()
    conn.close()
    return out


def login(node: Node, password: str = PASSWORD, user: str = "sue"
          ) -> tuple[int, dict[str, str]]:
    _, headers, page = request(node, "GET", "/portal/login")
    token = re.search(rb'name="csrf" value="([^"]+)"', page)
    assert token is not None
    body = f"csrf={token.group(1).decode()}&username={user}&password={password}".encode()
    status, headers, _ = request(node, "POST", "/portal/login", body,
                                 {"ccswitch_login": token.group(1).decode()})
    cookies = {}
    for part in headers["set-cookie"].splitlines():
        name, _, rest = part.strip().partition("=")
        cookies[name] = rest.split(";")[0]
    return status, cookies


def audit(node: Node) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (node.recordings / "portal-audit.log").read_text().splitlines()]


def test_forged_session_cookie_gets_the_login_page(node: Node) -> None:
    """A session cookie the portal did not issue is redirected to the login page."""
    status, headers, _ = request(node, "GET", "/portal/wallboard",
                                 cookies={"ccswitch_session": "forged-token"})
    assert status == 302 and headers["location"] == "/portal/login"


def test_login_without_csrf_token_is_refused(node: Node) -> None:
    """A login POST without the form's CSRF token gets 403 and no session."""
    status, headers, _ = request(node, "POST", "/portal/login",
                                 f"username=sue&password={PASSWORD}".encode())
    assert status == 403 and "ccswitch_session" not in headers.get("set-cookie", "")


def test_logout_without_csrf_token_is_refused(node: Node) -> None:
    """A logout POST without the session's CSRF token gets 403; the session lives on."""
    status, cookies = login(node)
    assert status == 302 and cookies.get("ccswitch_session")
    session = {"ccswitch_session": cookies["ccswitch_session"]}
    assert request(node, "POST", "/portal/logout", b"", session)[0] == 403
    assert request(node, "GET", "/portal/wallboard", cookies=session)[0] == 200


def test_path_tricks_in_recording_ids_are_refused(node: Node) -> None:
    """A call id with path characters gets 400 and an audit line."""
    _, cookies = login(node)
    status, _, body = request(node, "GET", "/portal/calls/..%2F..%2Fetc%2Fpasswd/recording",
                              cookies={"ccswitch_session": cookies["ccswitch_session"]})
    assert status == 400 and b"Traceback" not in body
    assert audit(node)[-1]["event"] == "recording_refused"


def test_oversized_post_is_refused(node: Node) -> None:
    """A body above max_body gets 413."""
    status, _, _ = request(node, "POST", "/portal/login", b"x" * 20000)
    assert status == 413


def test_sql_metacharacters_in_a_filter_find_nothing(node: Node) -> None:
    """A queue filter with SQL in it is a plain value: 200 and an empty list."""
    _, cookies = login(node)
    status, _, body = request(node, "GET", "/portal/calls?queue=x%27%20OR%20%271%27%3D%271",
                              cookies={"ccswitch_session": cookies["ccswitch_session"]})
    assert status == 200 and b"<tbody></tbody>" in body


def test_repeated_failed_logins_lock_the_user_out(node: Node) -> None:
    """After user_failures wrong passwords even the right one gets 429; all audited."""
    for _ in range(3):
        assert login(node, "wrong password!")[0] == 401
    assert login(node)[0] == 429
    events = [e["event"] for e in audit(node)]
    assert events.count("login_failed") == 3 and "lockout" in events
    assert events[-1] == "login_locked"


def test_unknown_path_and_wrong_method_answer_without_a_traceback(node: Node) -> None:
    """No such page gets 404, a POST to a GET page 405; neither body has a traceback."""
    status, _, body = request(node, "GET", "/portal/no-such-page")
    assert status == 404 and b"Traceback" not in body
    status, _, body = request(node, "POST", "/portal/wallboard", b"")
    assert status == 405 and b"Traceback" not in body


def test_session_cookie_flags(node_factory: NodeFactory) -> None:
    """Portal cookies are HttpOnly, SameSite=Strict, Path=/portal; Secure when configured."""
    secure = node_factory(dialplan({"alice": {"uri": agent_uri("alice", 5999)}}),
                          portal={"secure_cookies": True})
    _, headers, _ = request(secure, "GET", "/portal/login")
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/portal" in cookie and "Secure" in cookie


def test_wallboard_stream_stays_open_and_sends_a_snapshot_each_second(node: Node) -> None:
    """One /portal/events connection delivers several snapshots, not one and a close."""
    _, cookies = login(node)
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=5)
    conn.request("GET", "/portal/events",
                 headers={"Cookie": f"ccswitch_session={cookies['ccswitch_session']}"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    events, deadline = 0, time.monotonic() + 3.5
    while events < 3 and time.monotonic() < deadline:
        line = response.readline()
        if not line:
            break
        events += line.startswith(b"data: ")
    conn.close()
    assert events >= 3


def test_qa_reviewer_cannot_open_the_wallboard_or_its_stream(node: Node) -> None:
    """A QA reviewer gets 403 on the wallboard page and on its event stream."""
    added = subprocess.run(
        [sys.executable, "-m", "ccswitch.cli", "user", "add", "quinn", "--role", "qa_reviewer",
         "--password-stdin", "--config", str(node.config_path)],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, cwd=REPO)
    assert added.returncode == 0, added.stderr
    _, cookies = login(node, user="quinn")
    session = {"ccswitch_session": cookies["ccswitch_session"]}
    assert request(node, "GET", "/portal/wallboard", cookies=session)[0] == 403
    assert request(node, "GET", "/portal/events", cookies=session)[0] == 403
    assert request(node, "GET", "/portal/vendors", cookies=session)[0] == 200
