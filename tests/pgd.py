"""A real, throwaway PostgreSQL server for tests: initdb in a temp dir, a free port.

Debian's ``postgresql`` package puts its programs in ``/usr/lib/postgresql/<major>/bin``
(not on PATH); the newest major found there is used, or ``initdb`` from PATH. PostgreSQL
refuses to run as root, so as root the cluster belongs to the ``postgres`` user and its
programs run through ``runuser``. The server never touches a running system cluster.

One server serves a whole test session (:func:`postgres_server`); each test takes a
fresh database (:meth:`PostgresServer.new_database`). ``stop()`` and ``start()``
again (same port, same data) simulate an outage.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.phones.client import free_tcp_port

_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_RUN_AS = "postgres"


def _major(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name)) or (0,)


def postgres_bindir_or_skip() -> Path:
    """The directory of initdb / pg_ctl; skips (fails with CCSWITCH_REQUIRE_TOOLS=1)."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).parent
    candidates = sorted((d for d in _DEBIAN_ROOT.glob("*") if (d / "bin" / "initdb").exists()),
                        key=_major) if _DEBIAN_ROOT.is_dir() else []
    if candidates:
        return candidates[-1] / "bin"
    if os.environ.get("CCSWITCH_REQUIRE_TOOLS") == "1":
        pytest.fail("PostgreSQL (initdb, pg_ctl) is required (CCSWITCH_REQUIRE_TOOLS=1)")
    pytest.skip("PostgreSQL is not installed")


class PostgresServer:
    def __init__(self) -> None:
        self.bindir = postgres_bindir_or_skip()
        self.as_root = os.geteuid() == 0
        # Not under pytest's tmp dirs: as root those are 0700 and the postgres user
        # could not reach its data directory.
        self.workdir = Path(tempfile.mkdtemp(prefix="ccswitch-pg-"))
        self.datadir = self.workdir / "data"
        self.user = _RUN_AS if self.as_root else pwd.getpwuid(os.geteuid()).pw_name
        if self.as_root:
            account = pwd.getpwnam(_RUN_AS)
            os.chown(self.workdir, account.pw_uid, account.pw_gid)
        self.port = free_tcp_port()
        self._names = itertools.count(1)
        self._run("initdb", "-D", str(self.datadir), "-U", self.user, "--auth=trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        self.start()

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if self.as_root:
            command = ["runuser", "-u", _RUN_AS, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.workdir} -c fsync=off "
                   f"-c full_page_writes=off -c synchronous_commit=off")
        self._run("pg_ctl", "start", "-D", str(self.datadir), "-w", "-t", "30",
                  "-l", str(self.workdir / "postgres.log"), "-o", options)

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-D", str(self.datadir), "-m", "fast", "-w", "-t", "30")

    def new_database(self) -> str:
        """A new, empty database; returns its URL."""
        name = f"t{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped by the test
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the test session, removed at the end."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()
