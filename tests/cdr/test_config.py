"""``cdr.database`` as a PostgreSQL URL: checked without connecting, read by the commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ccswitch.cdr.store import CdrStore
from ccswitch.cli import main
from ccswitch.config import check_config
from tests.cdr.test_store import RECORD
from tests.config.test_config import failed, reason_of, service, setup
from tests.pgd import PostgresServer
from tests.phones.client import free_tcp_port


def test_a_postgresql_url_is_kept_and_node_files_go_to_the_recordings(tmp_path: Path) -> None:
    """A URL database is taken as it is; the node's own files live in the recordings dir."""
    url = "postgresql://ccswitch:pw@db.example:5432/cdr"
    config = check_config(setup(tmp_path, config={**service(), "cdr": {"database": url}})).config
    assert config is not None
    assert config.cdr.database == url
    assert config.cdr.node_directory == tmp_path / "rec"


def test_a_sqlite_database_keeps_node_files_next_to_it(tmp_path: Path) -> None:
    """With a file database the node's files stay in its folder, as before URLs existed."""
    cfg = {**service(), "cdr": {"database": "db/calls.sqlite"}}
    config = check_config(setup(tmp_path, config=cfg)).config
    assert config is not None and config.cdr.node_directory == tmp_path / "db"


@pytest.mark.parametrize("url, reason", [
    ("mysql://root@db/cdr", "unknown database scheme 'mysql'"),
    ("postgresql:///cdr", "no host"),
    ("postgresql://user@db.example:99999/cdr", "bad port"),
    ("postgresql://user@db.example:5432/", "no database"),
])
def test_a_bad_database_url_is_a_config_error(tmp_path: Path, url: str, reason: str) -> None:
    """Scheme, host, port and database name are checked, with the key in the error."""
    errors = failed(setup(tmp_path, config={**service(), "cdr": {"database": url}}))
    assert reason in reason_of(errors, "cdr.database")


def test_check_accepts_a_url_whose_server_is_down(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """ccswitch check does not connect: a valid URL to nothing listening passes."""
    url = f"postgresql://ccswitch@127.0.0.1:{free_tcp_port()}/cdr"
    path = setup(tmp_path, config={**service(), "cdr": {"database": url}})
    assert main(["check", "--config", str(path)]) == 0
    assert "OK" in capsys.readouterr().out


def test_report_and_export_read_a_postgresql_database(
        tmp_path: Path, postgres_server: PostgresServer,
        capsys: pytest.CaptureFixture[str]) -> None:
    """export-cdr and report work on a URL database as on a file: every node's calls."""
    url = postgres_server.new_database()
    store = CdrStore(url)
    store.add({**RECORD, "call_id": "on-a", "node": "a"})
    store.add({**RECORD, "call_id": "on-b", "node": "b", "arrived_at": 1795419743.0})
    store.close()
    path = setup(tmp_path, config={**service(), "cdr": {"database": url}})
    assert main(["export-cdr", "--config", str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["call_id"], r["node"]) for r in rows] == [("on-a", "a"), ("on-b", "b")]
    assert main(["report", "--config", str(path), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sum(line["offered"] for line in report["lines"]) == 2


def test_report_on_an_unreachable_database_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No server: exit 2 and one line naming the database (password hidden)."""
    url = f"postgresql://ccswitch:secret@127.0.0.1:{free_tcp_port()}/cdr"
    path = setup(tmp_path, config={**service(), "cdr": {"database": url}})
    assert main(["report", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "error: cannot open CDR database postgresql://ccswitch:***@127.0.0.1" in err
    assert "secret" not in err
