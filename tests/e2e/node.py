"""Run a real ``ccswitch run`` process for end-to-end tests.

Every node gets its own free SIP, HTTP and RTP ports on 127.0.0.1, its own
recordings directory and a dialplan written for the test's phones.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import yaml

from tests.phones.client import free_tcp_port, free_udp_port

REPO = Path(__file__).resolve().parents[2]
SOUNDS = REPO / "dialplans" / "sounds"
ANNOUNCEMENT = SOUNDS / "qa_notice.wav"
MUSIC_ON_HOLD = SOUNDS / "moh.wav"


CALLER_HZ = 440.0  # test callers send this tone
AGENT_HZ = 1000.0  # test agents send this tone
ANNOUNCEMENT_S = 3.97  # length of the shipped QA notice


def agent_uri(name: str, port: int) -> str:
    return f"sip:{name}@127.0.0.1:{port}"


def dialplan(agents: dict[str, dict[str, Any]], **queue: Any) -> dict[str, Any]:
    """A one-queue dialplan: number 100 -> queue support served by ``agents``."""
    support: dict[str, Any] = {
        "group": "inhouse",
        "strategy": "longest_idle",
        "announcement": str(ANNOUNCEMENT),
        "music_on_hold": str(MUSIC_ON_HOLD),
        "ring_timeout": 10,
        "max_misses": 3,
        "wrap_up": 1,
    }
    support.update(queue)
    return {
        "agents": agents,
        "groups": {"inhouse": list(agents)},
        "queues": {"support": support},
        "routes": [{"number": "100", "queue": "support"}],
    }


class Node:
    """A ccswitch process; ``stop()`` sends SIGTERM and waits."""

    def __init__(self, workdir: Path, plan: dict[str, Any], *,
                 trusted: tuple[str, ...] = ("127.0.0.0/8",), rtp_ports: int = 400,
                 log_level: str = "debug", log_format: str = "text",
                 rtp_timeout: float | None = None, file_size_limit: int | None = None,
                 api_token: str | None = None, sip: dict[str, Any] | None = None,
                 state: str | None = None, node: str | None = None,
                 hold_ttl: float | None = None, recording_start: str | None = None,
                 transports: tuple[str, ...] = (),
                 cdr_database: str | None = None, encrypt_public_key: Path | None = None,
                 recording_key: Path | None = None,
                 compressed_copy: str | None = None, hold_audio: str | None = None,
                 portal: dict[str, Any] | None = None) -> None:
        """``transports``: "tcp" and/or "tls" listeners beside UDP, each on a free port
        (``stream_ports``); a tls one needs ``sip={"tls": {...}}``. ``encrypt_public_key``:
        recordings sealed to it (``recordings.encrypt``); ``recording_key``: the private key
        the API decrypts downloads with (``http.recording_key``)."""
        self.workdir = workdir
        self.sip_port = free_udp_port()
        self.stream_ports = {name: free_tcp_port() for name in transports}
        self.http_port = free_tcp_port()
        # Below the ephemeral range (32768+), where free_udp_port() finds the SIP port.
        rtp_base = random.randrange(10000, 31000, 2)
        self.recordings = workdir / "recordings"
        plans = workdir / "dialplans"
        plans.mkdir(parents=True, exist_ok=True)
        self.plan_path = plans / "test.yaml"
        self.plan_path.write_text(yaml.safe_dump(plan))
        rtp: dict[str, Any] = {"address": "127.0.0.1",
                               "ports": f"{rtp_base}-{rtp_base + rtp_ports}"}
        if rtp_timeout is not None:
            rtp["timeout"] = rtp_timeout
        http: dict[str, Any] = {"listen": f"127.0.0.1:{self.http_port}"}
        if api_token is not None:
            token_file = workdir / "api-token"
            token_file.write_text(api_token + "\n")
            token_file.chmod(0o600)
            http["api_token_file"] = str(token_file)
        if recording_key is not None:
            http["recording_key"] = str(recording_key)
        listen: str | list[dict[str, Any]] = f"127.0.0.1:{self.sip_port}"
        if transports:
            listen = [{"transport": "udp", "address": "127.0.0.1", "port": self.sip_port}]
            listen += [{"transport": name, "address": "127.0.0.1", "port": port}
                       for name, port in self.stream_ports.items()]
        config: dict[str, Any] = {
            "sip": {"listen": listen, "trusted": list(trusted), **(sip or {})},
            "rtp": rtp,
            "http": http,
            "recordings": {"directory": str(self.recordings),
                           **({"start": recording_start} if recording_start else {}),
                           **({"encrypt": {"public_key": str(encrypt_public_key)}}
                              if encrypt_public_key is not None else {}),
                           **({"compressed_copy": compressed_copy} if compressed_copy else {}),
                           **({"hold_audio": hold_audio} if hold_audio else {})},
            "dialplans": str(plans),
            "state": state or "embedded",
        }
        if node is not None:
            config["node"] = node
        if hold_ttl is not None:
            config["hold_ttl"] = hold_ttl
        if cdr_database is not None:  # a path or a postgresql:// URL; default: SQLite
            config["cdr"] = {"database": cdr_database}
        if portal is not None:  # the supervisor portal's settings ({} for the defaults)
            config["portal"] = portal
        self.config_path = workdir / "ccswitch.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "ccswitch.log"
        self._log = self.log_path.open("wb")
        # file_size_limit: RLIMIT_FSIZE for the process, so any file it writes past that
        # size fails with EFBIG (a full disk, as seen by the writer; Python ignores SIGXFSZ).
        limit = [] if file_size_limit is None else ["prlimit", f"--fsize={file_size_limit}", "--"]
        self._command = [*limit, sys.executable, "-m", "ccswitch.cli", "run", "--config",
                         str(self.config_path), "--log-level", log_level,
                         "--log-format", log_format]
        self.start()

    def start(self) -> None:
        """Start (or restart, after ``kill``) the process and wait until it is healthy."""
        if self._log.closed:
            self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self._command, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._wait_healthy(timeout=20)

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as in a crash."""
        self.process.kill()
        self.process.wait(timeout=5)

    @property
    def dial_uri(self) -> str:
        return f"sip:100@127.0.0.1:{self.sip_port}"

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ccswitch exited {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=1) as r:
                    if json.load(r).get("status") == "ok":
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"ccswitch not healthy in {timeout}s:\n{self.log()}")

    def reload(self, plan: dict[str, Any] | str) -> None:
        """Rewrite the dialplan (a dict, or raw YAML text) and send SIGHUP."""
        text = plan if isinstance(plan, str) else yaml.safe_dump(plan)
        self.plan_path.write_text(text)
        self.process.send_signal(signal.SIGHUP)

    def wait_metric(self, value: float, name: str, timeout: float = 10,
                    **labels: str) -> None:
        """Wait until the sample ``name{labels}`` equals ``value``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metric(name, **labels) == value:
                return
            time.sleep(0.1)
        raise AssertionError(f"{name}{labels} != {value} after {timeout}s "
                             f"(is {self.metric(name, **labels)})\n{self.log()}")

    def api(self, method: str, path: str, token: str | None = None) -> tuple[int, Any]:
        """Call the operator API; (status, decoded JSON or raw bytes)."""
        request = urllib.request.Request(self.url(f"/api/v1/{path}"), method=method,
                                         data=b"" if method == "POST" else None)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                status, body, kind = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, body, kind = e.code, e.read(), e.headers.get("Content-Type", "")
        return status, json.loads(body) if kind == "application/json" else body

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as r:
            return str(r.read().decode("utf-8"))

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one sample in /metrics, or None if absent."""
        for line in self.metrics().splitlines():
            m = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$", line)
            if not m or m.group(1) != name:
                continue
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(m.group(4))
        return None

    def recordings_done(self) -> list[Path]:
        """Finished recordings (WAVs or sealed ``.wav.enc`` with their sidecar), oldest
        first."""
        files = [p for pattern in ("*.wav", "*.wav.enc") for p in self.recordings.rglob(pattern)
                 if ".incomplete" not in p.parts]
        return sorted((p for p in files
                       if p.with_name(re.sub(r"\.wav(\.enc)?$", ".json", p.name)).exists()),
                      key=lambda p: p.stat().st_mtime)

    def wait_recordings(self, count: int, timeout: float = 20) -> list[Path]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.recordings_done()
            if len(done) >= count:
                return done
            time.sleep(0.2)
        raise AssertionError(f"expected {count} recording(s), have "
                             f"{self.recordings_done()}\n{self.log()}")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``ccswitch <args> --config <this node's config>``."""
        return subprocess.run([sys.executable, "-m", "ccswitch.cli", *args,
                               "--config", str(self.config_path)],
                              cwd=REPO, capture_output=True, text=True, timeout=60)

    def wait_cdr(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """The call detail records (via ``ccswitch export-cdr``) once there are ``count``."""
        deadline = time.monotonic() + timeout
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.cli("export-cdr")
            if result.returncode == 0:
                rows = [json.loads(line) for line in result.stdout.splitlines()]
                if len(rows) >= count:
                    return rows
            time.sleep(0.2)
        raise AssertionError(f"expected {count} CDR row(s), have {rows}\n{self.log()}")

    def wait_log(self, text: str, timeout: float = 10) -> None:
        """Wait until ``text`` appears in the node's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not logged in {timeout}s\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-20000:]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()
        return self.process.returncode


NodeFactory = Callable[..., Node]
