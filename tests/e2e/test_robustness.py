"""Robustness end to end: a real ccswitch process against misbehaving peers."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.audio import read_wav, tone_present
from tests.e2e.node import (
    AGENT_HZ, ANNOUNCEMENT_S, CALLER_HZ, NodeFactory, agent_uri, dialplan,
)
from tests.phones.client import PhoneFactory, SippFactory, free_udp_port, write_ulaw_tone
from tests.redisd import RedisServer

pytestmark = pytest.mark.e2e


def sidecar(wav: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(wav.with_suffix(".json").read_text())
    return data


def test_an_agent_sending_no_rtp_ends_the_call_as_media_timeout(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        sipp_factory: SippFactory) -> None:
    """A SIPp agent that answers but never sends RTP: after rtp.timeout both sides get a BYE
    and the call is recorded with outcome media_timeout."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}),
                        rtp_timeout=2)
    agent = sipp_factory("uas_answer.xml", "-m", "1", "-i", "127.0.0.1", "-p", str(agent_port),
                         "-mp", str(free_udp_port()), "-timeout", "30s", name="silent-agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--timeout", "30", name="caller")
    assert caller.wait_exit(25) == 0, caller.describe()
    assert caller.find("hangup") == []  # ccswitch hung up, not the caller
    assert agent.wait(10) == 0, agent.describe()  # it got its BYE
    [wav] = node.wait_recordings(1)
    meta = sidecar(wav)
    assert (meta["outcome"], meta["agent_id"]) == ("media_timeout", "alice")
    assert meta["answered_at"] - meta["arrived_at"] == pytest.approx(ANNOUNCEMENT_S, abs=1.0)
    assert 2.0 <= meta["talk"] <= 4.0
    assert node.metric("ccswitch_calls_total", outcome="media_timeout") == 1


def test_a_recording_write_failure_keeps_the_call_and_says_so_in_the_record(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """Recording files may not grow past 160 kB (EFBIG, as on a full disk): the call goes on
    to its normal end, the error is counted and logged, and the sidecar and the CDR row say
    the recording is incomplete; what was written is a valid WAV."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}),
                        log_level="info", file_size_limit=160_000)
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--timeout", "40", name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", str(ANNOUNCEMENT_S + 8.0), "--timeout", "40",
                           name="caller")
    assert caller.wait_exit(30) == 0, caller.describe()
    assert agent.wait_exit(10) == 0, agent.describe()
    [hung_up] = caller.find("hangup")  # the caller ended it, on schedule
    [wav] = node.wait_recordings(1)
    meta = sidecar(wav)
    assert meta["outcome"] == "answered_inhouse"
    assert meta["talk"] == pytest.approx(8.0, abs=1.0)
    assert "File too large" in meta["recording"]["error"]
    rate, audio = read_wav(wav)
    assert 3.0 < len(audio) / rate < 5.5  # 160 kB of 32 kB/s stereo, then nothing more
    [cdr] = node.wait_cdr(1)
    assert "File too large" in cdr["recording_error"]
    assert cdr["recording_path"] == str(wav) and cdr["outcome"] == "answered_inhouse"
    assert node.metric("ccswitch_recording_errors_total") == 1
    assert "recording failed" in node.log()


def test_kill_9_mid_call_then_restart_recovers_the_recording_and_its_record(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """SIGKILL during a recorded call; on restart the temp WAV is repaired and put in place,
    playable, with its audio, and sidecar and CDR row say interrupted."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}))
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--timeout", "40", name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--timeout", "40", name="caller")
    node.wait_metric(1, "ccswitch_agents", timeout=20, group="inhouse", state="on_call")
    time.sleep(3.0)  # a few seconds of talk reach the disk (1 s write buffer)
    node.kill()
    caller.stop()
    agent.stop()
    assert node.recordings_done() == []
    node.start()

    [wav] = node.wait_recordings(1)
    meta = sidecar(wav)
    assert meta["outcome"] == "interrupted" and meta["queue"] == "support"
    assert meta["recording"]["error"].startswith("interrupted")
    rate, audio = read_wav(wav)
    assert len(audio) / rate > 1.5  # the talk before the kill (recorded after the notice)
    talk = audio[int(0.5 * rate):]
    assert tone_present(talk[:, 0], rate, CALLER_HZ)
    assert tone_present(talk[:, 1], rate, AGENT_HZ)
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=channels",
                            "-of", "csv=p=0", str(wav)], capture_output=True, text=True,
                           timeout=20)
    assert (probe.returncode, probe.stdout.strip()) == (0, "2")
    [cdr] = node.wait_cdr(1)
    assert (cdr["call_id"], cdr["outcome"], cdr["recording_path"]) == (
        meta["call_id"], "interrupted", str(wav))
    assert not list((node.recordings / ".incomplete").iterdir())


def test_kill_9_during_the_qa_notice_leaves_an_interrupted_record_after_restart(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """SIGKILL while the caller still hears the QA notice (nothing recorded yet): on restart
    the call has a CDR row, outcome interrupted, with no recording file."""
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", free_udp_port())}}))
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--timeout", "30", name="caller")
    caller.wait_state("CONFIRMED", timeout=10)  # answered: the notice is playing
    node.kill()
    caller.stop()
    node.start()

    [cdr] = node.wait_cdr(1)
    assert (cdr["outcome"], cdr["queue"], cdr["dialed"]) == ("interrupted", "support", "100")
    assert (cdr["recording_path"], cdr["answered_ms"], cdr["agent_id"]) == (None, None, None)
    assert cdr["recording_error"].startswith("interrupted")
    assert cdr["qa_notice_played"] is False
    assert 0 <= cdr["total_ms"] < ANNOUNCEMENT_S * 1000
    assert node.recordings_done() == []
    assert not list((node.recordings / ".incomplete").iterdir())


def test_a_call_that_ended_leaves_no_note_so_a_restart_changes_no_record(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """A caller who hangs up during the notice gets their own record; the call note is
    gone with it, so a kill -9 and restart add nothing and keep the outcome."""
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", free_udp_port())}}))
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--hangup-after", "1", "--timeout", "20", name="caller")
    assert caller.wait_exit(15) == 0, caller.describe()
    [before] = node.wait_cdr(1)
    assert before["outcome"] == "short_abandon"
    assert not list((node.recordings / ".incomplete").iterdir())
    node.kill()
    node.start()
    assert node.wait_cdr(1) == [before]


def stream_records(server: RedisServer) -> list[dict[str, Any]]:
    """The records in the shared record stream, oldest first."""
    entries: Any = server.client().xrange("ccswitch:records")
    return [json.loads(fields[b"record"]) for _, fields in entries]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


def test_kill_9_during_the_qa_notice_with_redis_state_streams_the_interrupted_record(
        node_factory: NodeFactory, phone_factory: PhoneFactory,
        redis_server: RedisServer) -> None:
    """With shared state in Redis, the call killed during the notice reaches the record
    stream after the restart, as the same record as its CDR row."""
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", free_udp_port())}}),
                        state=redis_server.url, node="node-a")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--timeout", "30", name="caller")
    caller.wait_state("CONFIRMED", timeout=10)
    node.kill()
    caller.stop()
    node.start()

    [cdr] = node.wait_cdr(1)
    [streamed] = stream_records(redis_server)
    assert (streamed["call_id"], streamed["outcome"]) == (cdr["call_id"], "interrupted")
    assert streamed["recording_path"] is None


def test_kill_9_while_talking_keeps_the_agent_and_answer_time_in_the_record(
        node_factory: NodeFactory, phone_factory: PhoneFactory) -> None:
    """SIGKILL while the caller talks to a pjsua2 agent: the interrupted row names the agent,
    the answer and queue times, and a second restart adds no row."""
    agent_port = free_udp_port()
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", agent_port)}}))
    agent = phone_factory("--role", "agent", "--port", str(agent_port), "--user", "alice",
                          "--tone", str(AGENT_HZ), "--timeout", "40", name="agent")
    caller = phone_factory("--role", "caller", "--dial", node.dial_uri, "--tone", str(CALLER_HZ),
                           "--timeout", "40", name="caller")
    node.wait_metric(1, "ccswitch_agents", timeout=20, group="inhouse", state="on_call")
    answered = time.time()
    time.sleep(1.0)
    node.kill()
    caller.stop()
    agent.stop()
    node.start()

    [cdr] = node.wait_cdr(1)
    assert (cdr["outcome"], cdr["agent_id"], cdr["route"]) == ("interrupted", "alice", "inhouse")
    assert cdr["answered_ms"] == pytest.approx(answered * 1000, abs=1000)
    assert cdr["queued_ms"] == pytest.approx(cdr["arrived_ms"] + ANNOUNCEMENT_S * 1000,
                                             abs=1000)
    assert cdr["qa_notice_played"] is True
    assert 500 <= cdr["talk_ms"] <= 3000
    [wav] = node.wait_recordings(1)
    assert sidecar(wav)["agent_id"] == "alice"
    node.stop()
    node.start()  # recovery runs before the node listens, so it is done by now
    assert len(node.wait_cdr(1)) == 1


def test_ten_times_the_call_rate_limit_refuses_cleanly_and_records_every_call(
        node_factory: NodeFactory, sipp_factory: SippFactory) -> None:
    """SIPp offers 20 calls/s against max_call_rate 2: the excess gets 503 + Retry-After,
    the admitted calls complete with recordings, and every one of the 60 calls has a
    call record (answered or rejected)."""
    agent_port = free_udp_port()  # one SIPp answers for 12 agents
    node = node_factory(dialplan({f"a{n}": {"uri": agent_uri(f"a{n}", agent_port)}
                                  for n in range(12)}, wrap_up=0),
                        sip={"max_call_rate": 2, "retry_after": 7}, log_level="info")
    agents = sipp_factory("uas_answer.xml", "-i", "127.0.0.1", "-p", str(agent_port),
                          "-mp", str(free_udp_port()), "-rtp_echo", name="agent")
    write_ulaw_tone(sipp_factory.cwd / "caller_audio.ulaw", CALLER_HZ, seconds=1.0)
    callers = sipp_factory("uac_overload.xml", f"127.0.0.1:{node.sip_port}", "-s", "100",
                           "-m", "60", "-r", "20", "-d", "6000", "-l", "60",
                           "-i", "127.0.0.1", "-p", str(free_udp_port()),
                           "-mp", str(free_udp_port()), "-timeout", "90s", name="callers")
    assert callers.wait(90) == 0, callers.describe()
    records = node.wait_cdr(60, timeout=30)
    outcomes = [r["outcome"] for r in records]
    admitted = outcomes.count("answered_inhouse")
    assert admitted + outcomes.count("rejected") == 60
    assert 4 <= admitted <= 12  # 2/s over the 3 s of arrivals, plus the burst of 2
    assert node.metric("ccswitch_overload_refused_total", limit="rate") == 60 - admitted
    assert node.metric("ccswitch_sip_rejected_total", status="503") == 60 - admitted
    node.wait_metric(0, "ccswitch_active_calls", timeout=20)
    assert len(node.wait_recordings(admitted)) == admitted
    agents.stop()


def test_scanners_floods_and_bans_are_dropped_while_trusted_peers_are_served(
        node_factory: NodeFactory) -> None:
    """From an untrusted source (127.0.0.2): a scanner User-Agent gets no answer at all;
    a flood is answered up to its burst, then dropped, then banned; the trusted source
    (127.0.0.1) is answered throughout; the ban ends after ban_seconds."""
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", free_udp_port())}}),
                        trusted=("127.0.0.1/32",), log_level="info",
                        sip={"flood": {"rate": 1, "burst": 5, "ban_after": 10,
                                       "ban_seconds": 3}})
    outsider = Probe("127.0.0.2", node.sip_port)
    insider = Probe("127.0.0.1", node.sip_port)
    try:
        assert outsider.options(user_agent="friendly-scanner") is None
        assert node.metric("ccswitch_sip_dropped_total", reason="scanner") == 1
        assert outsider.flood(20) in (5, 6)  # the burst (and maybe one refilled token)
        node.wait_metric(1, "ccswitch_sip_banned_sources")
        assert node.metric("ccswitch_sip_dropped_total", reason="banned") >= 1
        assert "SIP source 127.0.0.2 banned for 3s" in node.log()
        assert insider.options() == 200
        time.sleep(3.5)
        assert outsider.options() == 200  # the ban is over
        assert node.metric("ccswitch_sip_banned_sources") == 0
    finally:
        outsider.close()
        insider.close()


def test_max_calls_zero_drains_the_node_with_503_and_retry_after(
        node_factory: NodeFactory) -> None:
    """max_calls 0 (drain): an INVITE gets 503 with the configured Retry-After, and the
    refused call still has a call record."""
    node = node_factory(dialplan({"alice": {"uri": agent_uri("alice", free_udp_port())}}),
                        sip={"max_calls": 0, "retry_after": 30})
    probe = Probe("127.0.0.1", node.sip_port)
    try:
        answer = probe.request("INVITE")
    finally:
        probe.close()
    assert answer is not None and answer.startswith(b"SIP/2.0 503 ")
    assert b"\r\nRetry-After: 30\r\n" in answer
    [cdr] = node.wait_cdr(1)
    assert (cdr["outcome"], cdr["queue"]) == ("rejected", "support")
    assert node.metric("ccswitch_overload_refused_total", limit="calls") == 1


class Probe:
    """A bare UDP socket on ``host`` sending OPTIONS and waiting for the status code."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.host, self.port, self.n = host, port, 0

    def options(self, *, user_agent: str = "probe", timeout: float = 1.0) -> int | None:
        self.sock.sendto(self._message(user_agent), ("127.0.0.1", self.port))
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65535)
        except socket.timeout:
            return None
        return int(data.split(b" ", 2)[1])

    def flood(self, count: int) -> int:
        """Send ``count`` OPTIONS back to back; how many were answered (within 1 s)."""
        for _ in range(count):
            self.sock.sendto(self._message("probe"), ("127.0.0.1", self.port))
        answered = 0
        self.sock.settimeout(1.0)
        try:
            while answered < count:
                self.sock.recvfrom(65535)
                answered += 1
        except socket.timeout:
            pass
        return answered

    def request(self, method: str, timeout: float = 2.0) -> bytes | None:
        """Send one ``method`` request to number 100; the first final response, raw."""
        self.sock.sendto(self._message("probe", method), ("127.0.0.1", self.port))
        self.sock.settimeout(timeout)
        try:
            while True:
                data, _ = self.sock.recvfrom(65535)
                if not data.startswith(b"SIP/2.0 1"):
                    return data
        except socket.timeout:
            return None

    def _message(self, user_agent: str, method: str = "OPTIONS") -> bytes:
        self.n += 1
        local = self.sock.getsockname()[1]
        return (
            f"{method} sip:100@127.0.0.1:{self.port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.host}:{local};branch=z9hG4bK-probe-{self.n}\r\n"
            f"From: <sip:probe@{self.host}>;tag=p{self.n}\r\n"
            f"To: <sip:ccswitch@127.0.0.1>\r\nCall-ID: probe-{self.n}@{self.host}\r\n"
            f"CSeq: {self.n} {method}\r\nMax-Forwards: 70\r\nUser-Agent: {user_agent}\r\n"
            f"Contact: <sip:probe@{self.host}:{local}>\r\n"
            "Content-Length: 0\r\n\r\n").encode()

    def close(self) -> None:
        self.sock.close()
