"""Overflow to vendor trunks end to end: a real ccswitch, pjsua2 and SIPp as agents and vendors.

Vendors here are plain SIP endpoints at trunk URIs: a pjsua2 phone sending a
1500 Hz tone (so the recording's second channel can be told from an in-house
agent's 1000 Hz), or SIPp scenarios that answer 503, challenge for digest
credentials, or answer and echo RTP.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.audio import read_wav, tone_present
from tests.e2e.node import (
    AGENT_HZ, ANNOUNCEMENT_S, CALLER_HZ, NodeFactory, agent_uri, dialplan,
)
from tests.phones.client import PhoneFactory, SippFactory, free_udp_port

pytestmark = pytest.mark.e2e

VENDOR_HZ = 1500.0


def sidecar(wav: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(wav.with_suffix(".json").read_text())
    return data


def trunk(port: int) -> str:
    return f"sip:overflow@127.0.0.1:{port}"


def vendor_plan(agents: dict[str, dict[str, Any]], vendors: dict[str, dict[str, Any]],
                rules: list[dict[str, Any]], **queue: Any) -> dict[str, Any]:
    plan = dialplan(agents, overflow=rules, **queue)
    plan["vendors"] = {name: {"max_channels": 5, "probe_interval": 0, **spec}
                       for name, spec in vendors.items()}
    return plan


def absent_alice() -> dict[str, dict[str, Any]]:
    return {"alice": {"uri": agent_uri("alice", free_udp_port()), "logged_in": False}}


def test_no_agent_logged_in_sends_the_call_to_a_vendor_and_records_it(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """No in-house agent: the pjsua2 vendor answers; the recording's second channel is the
    vendor, and sidecar, CDR and metrics name the vendor and the rule."""
    vendor_port = free_udp_port()
    node = node_factory(vendor_plan(
        absent_alice(), {"acme": {"trunks": [trunk(vendor_port)], "probe_interval": 1}},
        [{"no_agents_logged_in": True, "to": ["acme"]}]))
    vendor = phone_factory("--role", "agent", "--port", str(vendor_port), "--user", "overflow",
                           "--tone", str(VENDOR_HZ), "--timeout", "40", name="vendor")
    node.wait_metric(1, "ccswitch_vendor_up", vendor="acme")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 4.0), "--timeout", "40",
                           name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert vendor.wait_exit(10) == 0, vendor.describe()

    [wav] = node.wait_recordings(1)
    meta = sidecar(wav)
    assert (meta["outcome"], meta["route"], meta["vendor"], meta["overflow_reason"]) == (
        "answered_vendor", "vendor", "acme", "no_agents_logged_in")
    assert meta["agent_id"] is None and meta["qa_notice_played"] is True
    assert [(o["vendor"], o["trunk"], o["result"]) for o in meta["offers"]] == [
        ("acme", trunk(vendor_port), "answered")]
    assert meta["overflowed_at"] == pytest.approx(meta["queued_at"], abs=0.05)
    rate, audio = read_wav(wav)
    talk = audio[int(1.0 * rate):]  # the recording starts after the QA notice
    assert tone_present(talk[:, 0], rate, CALLER_HZ)
    assert tone_present(talk[:, 1], rate, VENDOR_HZ)

    [cdr] = node.wait_cdr(1)
    assert (cdr["outcome"], cdr["route"], cdr["vendor"], cdr["overflow_reason"]) == (
        "answered_vendor", "vendor", "acme", "no_agents_logged_in")
    assert cdr["overflowed_ms"] == round(meta["overflowed_at"] * 1000)
    assert node.metric("ccswitch_overflow_total", queue="support",
                       reason="no_agents_logged_in", vendor="acme") == 1
    assert node.metric("ccswitch_calls_total", queue="support", outcome="answered_vendor",
                       route="vendor", vendor="acme") == 1
    assert node.metric("ccswitch_call_talk_seconds_count", route="vendor", vendor="acme") == 1
    assert node.metric("ccswitch_vendor_wait_seconds_count", vendor="acme",
                       outcome="answered_vendor") == 1
    node.wait_metric(0, "ccswitch_vendor_channels_in_use", vendor="acme")
    assert node.metric("ccswitch_vendor_channels_max", vendor="acme") == 5


def test_a_vendor_answering_503_fails_over_to_the_next_vendor(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        sipp_factory: SippFactory) -> None:
    """acme's trunk (SIPp) answers 503: globex (pjsua2) is rung next and answers."""
    down_port, good_port = free_udp_port(), free_udp_port()
    node = node_factory(vendor_plan(
        absent_alice(), {"acme": {"trunks": [trunk(down_port)]},
                         "globex": {"trunks": [trunk(good_port)]}},
        [{"no_agents_logged_in": True, "to": ["acme", "globex"]}]))
    down = sipp_factory("uas_503.xml", "-m", "1", "-i", "127.0.0.1", "-p", str(down_port),
                        "-timeout", "30s", name="acme")
    good = phone_factory("--role", "agent", "--port", str(good_port), "--user", "overflow",
                         "--tone", str(VENDOR_HZ), "--timeout", "40", name="globex")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 3.0), "--timeout", "40",
                           name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert good.wait_exit(10) == 0, good.describe()
    assert down.wait(10) == 0, down.describe()

    [wav] = node.wait_recordings(1)
    meta = sidecar(wav)
    assert (meta["outcome"], meta["vendor"], meta["overflow_reason"]) == (
        "answered_vendor", "globex", "no_agents_logged_in")
    assert [(o["vendor"], o["result"]) for o in meta["offers"]] == [
        ("acme", "failed:503"), ("globex", "answered")]
    rate, audio = read_wav(wav)
    assert tone_present(audio[int(1.0 * rate):, 1], rate, VENDOR_HZ)
    for vendor in ("acme", "globex"):  # two sends, one overflowed call (first vendor: acme)
        assert node.metric("ccswitch_vendor_sends_total", reason="no_agents_logged_in",
                           vendor=vendor) == 1
        assert node.metric("ccswitch_overflow_total", reason="no_agents_logged_in",
                           vendor=vendor) == (1 if vendor == "acme" else 0)
    assert node.metric("ccswitch_overflow_failed_total", vendor="acme", cause="failed") == 1


def test_a_vendor_at_its_cap_leaves_the_caller_waiting_for_in_house(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        sipp_factory: SippFactory) -> None:
    """acme (max_channels 1) is busy with one overflow call: the next caller is not dropped
    but waits, and alice takes it when she is free."""
    alice_port, acme_port = free_udp_port(), free_udp_port()
    node = node_factory(vendor_plan(
        {"alice": {"uri": agent_uri("alice", alice_port)}},
        {"acme": {"trunks": [trunk(acme_port)], "max_channels": 1}},
        [{"no_agents_available": True, "to": ["acme"]}], wrap_up=0))
    alice = phone_factory("--role", "agent", "--port", str(alice_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--calls", "2", "--timeout", "60",
                          name="alice")
    acme = sipp_factory("uas_answer.xml", "-m", "1", "-i", "127.0.0.1", "-p", str(acme_port),
                        "-mp", str(free_udp_port()), "-rtp_echo", "-timeout", "40s",
                        name="acme")

    def call(name: str, talk: float) -> Any:
        return phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone",
                             str(CALLER_HZ), "--hangup-after", str(ANNOUNCEMENT_S + talk),
                             "--timeout", "60", name=name)

    first = call("first", 14.0)  # alice
    node.wait_metric(1, "ccswitch_agents", timeout=20, group="inhouse", state="on_call")
    second = call("second", 16.0)  # acme, its only channel
    node.wait_metric(1, "ccswitch_vendor_channels_in_use", timeout=20, vendor="acme")
    third = call("third", 14.0)  # nobody: waits
    node.wait_metric(1, "ccswitch_overflow_failed_total", timeout=20, vendor="acme",
                     cause="full")
    assert node.metric("ccswitch_queue_depth", queue="support") == 1
    for phone in (first, second, third):
        assert phone.wait_exit(40) == 0, phone.describe()
    assert alice.wait_exit(10) == 0, alice.describe()
    assert acme.wait(10) == 0, acme.describe()

    records = node.wait_cdr(3)
    by_outcome = sorted((r["outcome"], r["vendor"] or r["agent_id"]) for r in records)
    assert by_outcome == [("answered_inhouse", "alice"), ("answered_inhouse", "alice"),
                          ("answered_vendor", "acme")]
    waited = max(records, key=lambda r: r["wait_ms"] or 0)
    assert waited["outcome"] == "answered_inhouse" and waited["overflow_reason"] is None
    assert waited["wait_ms"] > 2000  # it really waited for alice
    assert node.metric("ccswitch_overflow_total", reason="no_agents_available",
                       vendor="acme") == 1


def test_digest_credentials_are_sent_to_a_challenging_vendor(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        sipp_factory: SippFactory) -> None:
    """A trunk answering 401 gets the INVITE again with digest credentials that SIPp's own
    verifyauth accepts; the call is answered by the vendor."""
    port = free_udp_port()
    node = node_factory(vendor_plan(
        absent_alice(), {"acme": {"trunks": [trunk(port)], "username": "ccswitch",
                                  "password": "s3cret"}},
        [{"no_agents_logged_in": True, "to": ["acme"]}]))
    acme = sipp_factory("uas_auth.xml", "-m", "1", "-i", "127.0.0.1", "-p", str(port),
                        "-mp", str(free_udp_port()), "-rtp_echo", "-timeout", "30s",
                        name="acme")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 3.0), "--timeout", "40",
                           name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert acme.wait(10) == 0, acme.describe()
    [cdr] = node.wait_cdr(1)
    assert (cdr["outcome"], cdr["vendor"]) == ("answered_vendor", "acme")
    rate, audio = read_wav(Path(cdr["recording_path"]))
    # SIPp echoes the caller's tone back: it reached the vendor and came back on channel 1.
    assert tone_present(audio[int(1.0 * rate):, 1], rate, CALLER_HZ)


def test_a_vendor_killed_mid_call_ends_the_call_as_vendor_lost_and_is_taken_out(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        sipp_factory: SippFactory) -> None:
    """acme's SIPp (echoing the caller's RTP) is killed mid-call: within dead_media_timeout
    (2 s) + the 1 s watch the caller gets a BYE, the CDR says vendor_lost, acme is down in
    the metrics and the next call goes to globex."""
    acme_port, globex_port = free_udp_port(), free_udp_port()
    node = node_factory(vendor_plan(
        absent_alice(), {"acme": {"trunks": [trunk(acme_port)], "dead_media_timeout": 2},
                         "globex": {"trunks": [trunk(globex_port)]}},
        [{"no_agents_logged_in": True, "to": ["acme", "globex"]}]))
    acme = sipp_factory("uas_answer.xml", "-m", "1", "-i", "127.0.0.1", "-p", str(acme_port),
                        "-mp", str(free_udp_port()), "-rtp_echo", "-timeout", "40s",
                        name="acme")
    globex = sipp_factory("uas_answer.xml", "-m", "1", "-i", "127.0.0.1", "-p",
                          str(globex_port), "-mp", str(free_udp_port()), "-rtp_echo",
                          "-timeout", "40s", name="globex")
    first = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                          "--timeout", "40", name="first")
    node.wait_metric(1, "ccswitch_vendor_channels_in_use", timeout=15, vendor="acme")
    time.sleep(2.0)  # answered, RTP echoed both ways
    acme.stop()
    killed = time.monotonic()
    assert first.wait_exit(10) == 0, first.describe()
    lost_after = time.monotonic() - killed
    assert first.find("hangup") == []  # ccswitch hung up, not the caller
    assert lost_after < 5.0
    [cdr] = node.wait_cdr(1)
    assert (cdr["outcome"], cdr["vendor"]) == ("vendor_lost", "acme")
    assert node.metric("ccswitch_vendor_up", vendor="acme") == 0
    assert node.metric("ccswitch_calls_total", outcome="vendor_lost", queue="support",
                       route="vendor", vendor="acme") == 1

    second = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone",
                           str(CALLER_HZ), "--hangup-after", str(ANNOUNCEMENT_S + 2.0),
                           "--timeout", "30", name="second")
    assert second.wait_exit(20) == 0, second.describe()
    assert globex.wait(10) == 0, globex.describe()
    records = node.wait_cdr(2)
    assert sorted((r["outcome"], r["vendor"]) for r in records) == [
        ("answered_vendor", "globex"), ("vendor_lost", "acme")]


def test_a_trunk_that_never_answers_options_is_down_within_probe_timeout(
        node_factory: NodeFactory) -> None:
    """A trunk that swallows every OPTIONS: acme is down after probe_timeout (1 s), not
    after the transaction's 32 s timer F."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        port = silent.getsockname()[1]
        started = time.monotonic()
        node = node_factory(vendor_plan(
            absent_alice(), {"acme": {"trunks": [trunk(port)], "probe_interval": 30,
                                      "probe_timeout": 1}},
            [{"no_agents_logged_in": True, "to": ["acme"]}]))
        node.wait_metric(0, "ccswitch_vendor_up", timeout=8, vendor="acme")
        down_after = time.monotonic() - started
        assert down_after < 5.0  # node start-up included
        silent.settimeout(1.0)
        assert b"OPTIONS" in silent.recv(65535)  # it was probed, and said nothing
    finally:
        silent.close()


def test_a_vendor_dialog_that_stops_answering_keepalives_is_lost(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        sipp_factory: SippFactory) -> None:
    """acme's SIPp (sending no RTP) is killed once it answered: its in-dialog OPTIONS
    (every 3 s) go unanswered for probe_timeout (1 s), and the call ends vendor_lost."""
    acme_port = free_udp_port()
    node = node_factory(vendor_plan(
        absent_alice(), {"acme": {"trunks": [trunk(acme_port)], "keepalive_interval": 3,
                                  "probe_timeout": 1}},
        [{"no_agents_logged_in": True, "to": ["acme"]}]))
    acme = sipp_factory("uas_answer.xml", "-m", "1", "-i", "127.0.0.1", "-p", str(acme_port),
                        "-mp", str(free_udp_port()), "-timeout", "40s", name="acme")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone",
                           str(CALLER_HZ), "--timeout", "40", name="caller")
    node.wait_metric(1, "ccswitch_vendor_channels_in_use", timeout=15, vendor="acme")
    acme.stop()  # before the first keepalive is due
    killed = time.monotonic()
    assert caller.wait_exit(10) == 0, caller.describe()
    assert time.monotonic() - killed < 7.0  # 3 s interval + 1 s watch + 1 s timeout (+ BYE)
    assert caller.find("hangup") == []
    [cdr] = node.wait_cdr(1)
    assert (cdr["outcome"], cdr["vendor"]) == ("vendor_lost", "acme")
    assert node.metric("ccswitch_vendor_up", vendor="acme") == 0
    node.wait_log("leg lost (options_timeout)")
