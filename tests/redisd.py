"""A real redis-server for tests: on a free 127.0.0.1 port, in a temp dir, no persistence.

``stop()`` and ``start()`` again (same port) simulate an outage; as the server keeps
nothing, the restarted one is empty. ``freeze()`` / ``thaw()`` (SIGSTOP / SIGCONT) make
it hang: connections stay open, commands sent meanwhile run on thaw.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.phones.client import free_tcp_port


def redis_server_or_skip() -> str:
    """The redis-server binary; skips (fails with CCSWITCH_REQUIRE_TOOLS=1) without it."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CCSWITCH_REQUIRE_TOOLS") == "1":
            pytest.fail("redis-server is required (CCSWITCH_REQUIRE_TOOLS=1)")
        pytest.skip("redis-server is not installed")
    return binary


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.binary = redis_server_or_skip()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_tcp_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def start(self) -> None:
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # a frozen server cannot terminate
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def freeze(self) -> None:
        assert self.process is not None and self.process.poll() is None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
