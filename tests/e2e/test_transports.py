"""SIP over TCP and TLS end to end: real ccswitch processes, SIPp over TCP, pjsua2 over
TLS with a throwaway CA, and the bad input a TLS port must survive."""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.certs import TestCA
from tests.e2e.node import AGENT_HZ, ANNOUNCEMENT_S, CALLER_HZ, NodeFactory, dialplan
from tests.phones.client import (
    PhoneFactory, SippFactory, free_tcp_port, free_udp_port, write_ulaw_tone,
)

pytestmark = pytest.mark.e2e


def sidecar(wav: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(wav.with_suffix(".json").read_text())
    return data


def test_sipp_caller_and_agent_over_tcp(node_factory: NodeFactory,
                                        sipp_factory: SippFactory) -> None:
    """A SIPp caller over TCP reaches a SIPp agent over TCP (agent URI ;transport=tcp):
    answered, bridged, hung up by the caller, recorded; no UDP involved."""
    agent_port = free_tcp_port()
    node = node_factory(dialplan({"alice": {
        "uri": f"sip:alice@127.0.0.1:{agent_port};transport=tcp"}}), transports=("tcp",))
    agent = sipp_factory("uas_answer.xml", "-t", "t1", "-m", "1", "-i", "127.0.0.1",
                         "-p", str(agent_port), "-mp", str(free_udp_port()), "-rtp_echo",
                         "-timeout", "40s", name="agent")
    write_ulaw_tone(sipp_factory.cwd / "caller_audio.ulaw", CALLER_HZ, seconds=1.0)
    caller = sipp_factory("uac_call.xml", f"127.0.0.1:{node.stream_ports['tcp']}",
                          "-t", "t1", "-s", "100", "-m", "1",
                          "-d", str(int((ANNOUNCEMENT_S + 3.0) * 1000)),
                          "-i", "127.0.0.1", "-p", str(free_tcp_port()),
                          "-mp", str(free_udp_port()), "-timeout", "40s", name="caller")
    assert caller.wait(40) == 0, caller.describe() + node.log()
    assert agent.wait(10) == 0, agent.describe() + node.log()
    [wav] = node.wait_recordings(1)
    meta = sidecar(wav)
    assert (meta["outcome"], meta["agent_id"]) == ("answered_inhouse", "alice")
    assert meta["talk"] >= 2.0
    log = node.log()
    assert "SIP tcp connection 1 from ('127.0.0.1'" in log
    assert f"SIP tcp connection 2 to ('127.0.0.1', {agent_port}) opening" in log


def tls_node(node_factory: NodeFactory, ca: TestCA, plan: dict[str, Any],
             **tls: Any) -> Any:
    cert = ca.issue("node")
    return node_factory(plan, transports=("tls",), sip={"tls": {
        "certificate": str(cert.certificate), "key": str(cert.key),
        "ca": str(ca.certificate), **tls}})


def test_pjsua_caller_and_agent_over_tls(node_factory: NodeFactory,
                                         phone_factory: PhoneFactory,
                                         tmp_path: Path) -> None:
    """A pjsua2 caller over TLS (verifying ccswitch's certificate) reaches a pjsua2 agent
    over TLS (sips: URI, its certificate verified by ccswitch): bridged both ways."""
    ca = TestCA(tmp_path / "ca")
    agent_port = free_tcp_port()
    node = tls_node(node_factory, ca, dialplan({"alice": {
        "uri": f"sips:alice@127.0.0.1:{agent_port}"}}))
    agent_cert = ca.issue("agent")
    agent = phone_factory("--role", "agent", "--transport", "tls", "--port", str(agent_port),
                          "--user", "alice", "--tls-ca", str(ca.certificate),
                          "--tls-cert", str(agent_cert.certificate),
                          "--tls-key", str(agent_cert.key), "--tone", str(AGENT_HZ),
                          "--timeout", "40", name="agent")
    caller = phone_factory("--role", "caller", "--transport", "tls",
                           "--tls-ca", str(ca.certificate),
                           "--dial", f"sips:100@127.0.0.1:{node.stream_ports['tls']}",
                           "--tone", str(CALLER_HZ), "--hangup-after",
                           str(ANNOUNCEMENT_S + 4.0), "--timeout", "40", name="caller")
    assert caller.wait_exit(30) == 0, caller.describe() + node.log()
    assert agent.wait_exit(10) == 0, agent.describe() + node.log()
    [wav] = node.wait_recordings(1)
    meta = sidecar(wav)
    assert (meta["outcome"], meta["agent_id"]) == ("answered_inhouse", "alice")
    assert meta["talk"] >= 2.0
    log = node.log()
    assert "SIP tls connection 1 from ('127.0.0.1'" in log
    assert f"to ('127.0.0.1', {agent_port}) opening" in log


def invite(transport: str, port: int, *, length: int | None = None) -> bytes:
    body = b"v=0\r\n"
    size = len(body) if length is None else length
    return (f"INVITE sip:100@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bKbad1;rport\r\n"
            "From: <sip:bad@127.0.0.1>;tag=b1\r\nTo: <sip:100@127.0.0.1>\r\n"
            "Call-ID: bad-input-1\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:bad@127.0.0.1:{port}>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {size}\r\n\r\n").encode() + body


def closed_by_peer(sock: socket.socket, timeout: float) -> tuple[bool, bytes]:
    """Read until the far end closes (True) or ``timeout`` passes (False)."""
    sock.settimeout(0.2)
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except (ConnectionResetError, ssl.SSLError):
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


def active_calls(node: Any) -> int:
    with urllib.request.urlopen(node.url("/healthz"), timeout=5) as r:
        count: int = json.load(r)["active_calls"]
    return count


def test_plaintext_on_the_tls_port_is_closed(node_factory: NodeFactory,
                                             tmp_path: Path) -> None:
    """Plain SIP sent to the TLS port: the connection is closed, the node logs why, no
    call is made."""
    node = tls_node(node_factory, TestCA(tmp_path / "ca"), dialplan({}))
    with socket.create_connection(("127.0.0.1", node.stream_ports["tls"]), 5) as sock:
        sock.sendall(invite("TLS", 5999))
        closed, answer = closed_by_peer(sock, 5)
    assert closed and b"SIP/2.0" not in answer
    node.wait_log("closed: TLS")
    assert active_calls(node) == 0


def test_wrong_client_certificate_refused_when_required(node_factory: NodeFactory,
                                                        tmp_path: Path) -> None:
    """verify_client required: a client certificate from another CA never gets a SIP
    message through; the node logs the failed handshake."""
    ca = TestCA(tmp_path / "ca")
    node = tls_node(node_factory, ca, dialplan({}), verify_client="required")
    stranger = TestCA(tmp_path / "other", "other CA").issue("intruder")
    context = ssl.create_default_context(cafile=str(ca.certificate))
    context.load_cert_chain(str(stranger.certificate), str(stranger.key))
    with socket.create_connection(("127.0.0.1", node.stream_ports["tls"]), 5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                sock.sendall(invite("TLS", 5999))
                closed, answer = closed_by_peer(sock, 5)
                assert closed and answer == b""
        except (ssl.SSLError, ConnectionResetError):
            pass  # refused during the handshake itself (TLS 1.2)
    node.wait_log("closed: TLS")
    assert active_calls(node) == 0


def test_agent_with_expired_certificate_is_not_reached(node_factory: NodeFactory,
                                                       phone_factory: PhoneFactory,
                                                       tmp_path: Path) -> None:
    """A TLS agent whose certificate expired: ccswitch refuses the connection (logged),
    the agent never sees the INVITE, the caller's call ends cleanly with a record."""
    ca = TestCA(tmp_path / "ca")
    agent_port = free_tcp_port()
    node = tls_node(node_factory, ca, dialplan({"alice": {
        "uri": f"sips:alice@127.0.0.1:{agent_port}"}}))
    old = ca.issue("agent", expired=True)
    agent = phone_factory("--role", "agent", "--transport", "tls", "--port", str(agent_port),
                          "--user", "alice", "--tls-cert", str(old.certificate),
                          "--tls-key", str(old.key), "--timeout", "30", name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone",
                           str(CALLER_HZ), "--hangup-after", str(ANNOUNCEMENT_S + 2.0),
                           "--timeout", "30", name="caller")
    assert caller.wait_exit(20) == 0, caller.describe()
    node.wait_log("certificate verify failed")
    assert agent.find("incoming") == []
    [wav] = node.wait_recordings(1)
    assert sidecar(wav)["outcome"].startswith("abandoned")
    assert active_calls(node) == 0


def test_lying_content_length_over_tcp(node_factory: NodeFactory) -> None:
    """An INVITE over TCP whose Content-Length promises more than is sent: no answer,
    the connection is closed after sip.connections.idle_timeout, logged, no call left."""
    node = node_factory(dialplan({}), transports=("tcp",),
                        sip={"connections": {"idle_timeout": 1.5}})
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", node.stream_ports["tcp"]), 5) as sock:
        sock.sendall(invite("TCP", 5999, length=400))
        closed, answer = closed_by_peer(sock, 6)
    waited = time.monotonic() - started
    assert closed and answer == b""
    assert 1.0 <= waited <= 4.0
    node.wait_log("idle for 1.5s")
    assert active_calls(node) == 0


def peer_common_name(port: int, ca: TestCA) -> str:
    context = ssl.create_default_context(cafile=str(ca.certificate))
    with socket.create_connection(("127.0.0.1", port), 5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            cert = sock.getpeercert()
    subject = dict(item[0] for item in cert["subject"])
    name: str = subject["commonName"]
    return name


def test_sighup_puts_a_renewed_certificate_in_force(node_factory: NodeFactory,
                                                    tmp_path: Path) -> None:
    """Certificate files replaced and SIGHUP: new TLS connections get the new certificate,
    one opened before stays up and still works."""
    ca = TestCA(tmp_path / "ca")
    node = tls_node(node_factory, ca, dialplan({}))
    port = node.stream_ports["tls"]
    assert peer_common_name(port, ca) == "node"
    context = ssl.create_default_context(cafile=str(ca.certificate))
    with socket.create_connection(("127.0.0.1", port), 5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as before:
            renewed = ca.issue("renewed")
            node_cert = tmp_path / "ca" / "node.crt"
            node_cert.write_bytes(renewed.certificate.read_bytes())
            (tmp_path / "ca" / "node.key").write_bytes(renewed.key.read_bytes())
            node.reload(dialplan({}))
            node.wait_log("TLS certificate")
            assert peer_common_name(port, ca) == "renewed"
            before.sendall(b"OPTIONS sip:100@127.0.0.1 SIP/2.0\r\n"
                           b"Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKkeep;rport\r\n"
                           b"From: <sip:k@127.0.0.1>;tag=k\r\nTo: <sip:100@127.0.0.1>\r\n"
                           b"Call-ID: keep-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
            before.settimeout(5)
            assert before.recv(4096).startswith(b"SIP/2.0 200")


def test_stopping_mid_call_sends_bye_over_tcp(node_factory: NodeFactory,
                                              phone_factory: PhoneFactory,
                                              sipp_factory: SippFactory) -> None:
    """SIGTERM during a call with a TCP agent: the agent's BYE is written before the
    connections close (SIPp's scenario ends only with that BYE)."""
    agent_port = free_tcp_port()
    node = node_factory(dialplan({"alice": {
        "uri": f"sip:alice@127.0.0.1:{agent_port};transport=tcp"}}), transports=("tcp",))
    agent = sipp_factory("uas_answer.xml", "-t", "t1", "-m", "1", "-i", "127.0.0.1",
                         "-p", str(agent_port), "-mp", str(free_udp_port()), "-rtp_echo",
                         "-timeout", "40s", name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone",
                           str(CALLER_HZ), "--timeout", "40", name="caller")
    caller.wait_state("CONFIRMED", timeout=15)
    node.wait_log("ringing agent alice")
    time.sleep(ANNOUNCEMENT_S + 1.0)  # the agent answers once the notice has played
    assert node.stop() == 0, node.log()
    assert agent.wait(10) == 0, agent.describe() + node.log()
    assert caller.wait_exit(10) == 0, caller.describe()
