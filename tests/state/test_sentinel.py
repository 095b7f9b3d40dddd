"""The Redis store through a real Redis Sentinel (redis-server in sentinel mode)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ccswitch.state.redis_store import RedisStore
from ccswitch.state.store import Grant
from tests.phones.client import free_tcp_port
from tests.redisd import RedisServer


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[tuple[RedisServer, int]]:
    """A master and one sentinel watching it as service ``ccs``."""
    master = RedisServer(tmp_path / "master")
    port = free_tcp_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor ccs 127.0.0.1 {master.port} 1\n"
                    "sentinel down-after-milliseconds ccs 1000\n")
    proc = subprocess.Popen([master.binary, str(conf), "--sentinel"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                answer = redis.Redis(port=port, socket_timeout=1).execute_command(  # type: ignore[no-untyped-call]
                    "SENTINEL", "get-master-addr-by-name", "ccs")
                if answer:
                    break
            except redis.ConnectionError:
                pass
            time.sleep(0.05)
        else:
            raise AssertionError("sentinel did not come up")
        yield master, port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        master.stop()


def test_a_store_found_through_sentinel_shares_state(
        sentinel: tuple[RedisServer, int]) -> None:
    """Two nodes reaching the master through the sentinel see one center."""
    master, port = sentinel
    url = f"redis+sentinel://127.0.0.1:{port}/ccs/0"
    a = RedisStore.from_url(url, node="A", prefix="sentinel:")
    b = RedisStore.from_url(url, node="B", prefix="sentinel:")
    try:
        a.heartbeat(5)
        b.heartbeat(5)
        a.set_presence("alice", "ready")
        assert b.presences() == {"alice": "ready"}
        assert a.reserve("alice", "c1", "support", ["support"], 5).grant is Grant.GRANTED
        assert b.reserve("alice", "c2", "support", ["support"], 5).grant is Grant.BUSY
        assert master.client().exists("sentinel:hold:alice") == 1
    finally:
        a.close()
        b.close()
