"""The supervisor portal in a real headless Chromium (Debian's, driven by ChromeDriver)
against a real ccswitch node with pjsua2 phones. Screenshots go to the test's tmp dir."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.e2e.node import (
    AGENT_HZ, ANNOUNCEMENT_S, CALLER_HZ, Node, NodeFactory, agent_uri, dialplan,
)
from tests.phones.client import PhoneFactory, free_udp_port

pytestmark = pytest.mark.e2e

REQUIRED = bool(os.environ.get("CCSWITCH_REQUIRE_TOOLS"))
PASSWORD = "a long test password"
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1200,900")


def chromium_tools() -> tuple[str, str]:
    """(chromium, chromedriver) paths; skips, or fails when tools are required."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        if REQUIRED:
            pytest.fail("chromium and chromium-driver are required (CCSWITCH_REQUIRE_TOOLS=1)")
        pytest.skip("chromium / chromium-driver are not installed here")
    return browser, driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    binary, driver = chromium_tools()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    chrome.set_page_load_timeout(20)
    try:
        yield chrome
    finally:
        chrome.quit()


def add_user(node: Node, name: str, role: str, vendor: str | None = None) -> None:
    extra = ["--vendor", vendor] if vendor else []
    result = subprocess.run(
        [sys.executable, "-m", "ccswitch.cli", "user", "add", name, "--role", role, *extra,
         "--password-stdin", "--config", str(node.config_path)],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr


def log_in(chrome: Any, node: Node, name: str) -> None:
    from selenium.webdriver.common.by import By

    chrome.get(node.url("/portal/login"))
    chrome.find_element(By.ID, "username").send_keys(name)
    chrome.find_element(By.ID, "password").send_keys(PASSWORD)
    chrome.find_element(By.ID, "login").click()
    wait_for(lambda: "/portal/login" not in chrome.current_url, 10, "login")


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s")


def cell(chrome: Any, table: str, row_key: str, column: str) -> str:
    """One cell's text, read in one script run (the live tables are redrawn each second)."""
    return str(chrome.execute_script("""
        const [table, key, column] = arguments;
        for (const tr of document.querySelectorAll("#" + table + " tbody tr")) {
          if (tr.cells.length && tr.cells[0].textContent === key) {
            const td = tr.querySelector('td[data-col="' + column + '"]');
            return td ? td.textContent : "";
          }
        }
        return "";""", table, row_key, column))


def audit(node: Node) -> list[dict[str, Any]]:
    path = node.recordings / "portal-audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_wallboard_follows_a_call_and_vendor_reviewer_cannot_play_others(
        node_factory: NodeFactory, phone_factory: PhoneFactory, browser: Any,
        tmp_path: Path) -> None:
    """Live wallboard shows the agent on the call without reloading, the comparison shows
    the call, logout ends the session, and a vendor reviewer's request for an in-house
    recording gets 403 + audit."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}),
                        recording_start="answer", portal={})
    add_user(node, "sue", "supervisor")
    add_user(node, "vic", "vendor_reviewer", vendor="acme")

    log_in(browser, node, "sue")
    browser.get(node.url("/portal/wallboard"))
    browser.execute_script("window.notReloaded = true;")
    wait_for(lambda: cell(browser, "agents", "alice", "state") == "ready", 10, "alice ready")
    browser.save_screenshot(str(tmp_path / "wallboard-idle.png"))

    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--answer-delay", "0.5", "--timeout", "40",
                          name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone",
                           str(CALLER_HZ), "--hangup-after", str(ANNOUNCEMENT_S + 6.0),
                           "--timeout", "40", name="caller")
    started = time.monotonic()
    wait_for(lambda: cell(browser, "agents", "alice", "state") == "on_call", 20,
             "alice on_call on the wallboard")
    seen_after = time.monotonic() - started
    browser.save_screenshot(str(tmp_path / "wallboard-on-call.png"))
    assert browser.execute_script("return window.notReloaded === true;")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()
    wait_for(lambda: cell(browser, "agents", "alice", "state") == "wrap_up"
             or cell(browser, "agents", "alice", "state") == "ready", 15, "call over")
    [record] = node.wait_cdr(1)
    print(f"wallboard showed on_call {seen_after:.1f}s after dialling")

    browser.get(node.url("/portal/vendors"))
    assert cell(browser, "comparison", record["arrived_ms"] and _day(record), "offered") == "1"
    assert browser.find_elements("css selector", "svg.chart")
    browser.save_screenshot(str(tmp_path / "vendors.png"))
    assert browser.execute_script(  # everything from this node: the page works offline
        "return [...document.querySelectorAll('script[src], link[href]')]"
        ".every(e => (e.getAttribute('src') || e.getAttribute('href'))"
        ".startsWith('/portal/static/'));")

    browser.find_element("css selector", "form.logout button").click()
    wait_for(lambda: browser.current_url.endswith("/portal/login"), 10, "logged out")
    assert audit(node)[-1]["event"] == "logout"
    browser.get(node.url("/portal/wallboard"))
    assert browser.current_url.endswith("/portal/login")

    log_in(browser, node, "vic")
    cookie = browser.get_cookie("ccswitch_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    request = urllib.request.Request(node.url(f"/portal/calls/{record['call_id']}/recording"),
                                     headers={"Cookie": f"ccswitch_session={cookie['value']}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 403
    assert {"event": "recording_refused", "user": "vic", "call_id": record["call_id"]}.items() \
        <= audit(node)[-1].items()


def _day(record: dict[str, Any]) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(record["arrived_ms"] / 1000))


def test_vendor_reviewer_sees_and_plays_only_its_vendors_calls(
        node_factory: NodeFactory, phone_factory: PhoneFactory, browser: Any,
        tmp_path: Path) -> None:
    """A call answered by vendor acme: acme's reviewer sees only acme's line and plays the
    call; globex's reviewer opening the same recording in the browser gets 403."""
    from selenium.webdriver.common.by import By

    vendor_port = free_udp_port()
    plan = dialplan({"alice": {"uri": agent_uri("alice", free_udp_port()),
                               "logged_in": False}},
                    overflow=[{"no_agents_logged_in": True, "to": ["acme"]}])
    plan["vendors"] = {"acme": {"trunks": [f"sip:overflow@127.0.0.1:{vendor_port}"],
                                "max_channels": 5, "probe_interval": 1}}
    node = node_factory(plan, portal={})
    add_user(node, "vic", "vendor_reviewer", vendor="acme")
    add_user(node, "gwen", "vendor_reviewer", vendor="globex")
    vendor = phone_factory("--role", "agent", "--port", str(vendor_port), "--user", "overflow",
                           "--tone", "1500", "--timeout", "40", name="vendor")
    node.wait_metric(1, "ccswitch_vendor_up", vendor="acme")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone",
                           str(CALLER_HZ), "--hangup-after", str(ANNOUNCEMENT_S + 3.0),
                           "--timeout", "40", name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert vendor.wait_exit(10) == 0, vendor.describe()
    [record] = node.wait_cdr(1)
    assert record["vendor"] == "acme" and record["recording_path"]

    log_in(browser, node, "vic")
    assert browser.current_url.endswith("/portal/vendors")
    assert cell(browser, "comparison", _day(record), "route") == "acme"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#comparison tbody tr")) == 1
    assert not browser.find_elements(By.LINK_TEXT, "Wallboard")
    browser.save_screenshot(str(tmp_path / "vendor-reviewer-comparison.png"))
    browser.get(node.url("/portal/calls"))
    link = browser.find_element(By.LINK_TEXT, "play").get_attribute("href")
    cookie = browser.get_cookie("ccswitch_session")["value"]
    with urllib.request.urlopen(urllib.request.Request(
            link, headers={"Cookie": f"ccswitch_session={cookie}"}), timeout=5) as played:
        assert played.status == 200
        assert played.headers["Content-Type"] in ("audio/wav", "audio/x-wav")
        assert played.read(4) == b"RIFF"
    assert audit(node)[-1]["event"] == "recording_play"

    browser.delete_all_cookies()
    log_in(browser, node, "gwen")
    browser.get(link)
    assert "not yours" in browser.find_element(By.TAG_NAME, "body").text
    assert {"event": "recording_refused", "user": "gwen"}.items() <= audit(node)[-1].items()
