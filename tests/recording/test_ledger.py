"""The ledger: an append-only hash chain, and verify finding changed, missing,
unledgered files and a broken chain."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ccswitch.recording import ledger


def put(directory: Path, name: str, body: bytes, call_id: str = "c1") -> None:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    ledger.append(directory, "recording", 10.0, call_id=call_id,
                  files={name: ledger.file_sha256(path)})


def lines(directory: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (directory / ledger.LEDGER_NAME).read_text().splitlines()]


def test_entries_link_to_the_previous_one(tmp_path: Path) -> None:
    """Each entry carries the previous entry's hash and the next sequence number."""
    put(tmp_path, "2024/01/02/a.wav", b"a")
    ledger.append(tmp_path, "download", 11.0, call_id="c1", client="127.0.0.1",
                  file="2024/01/02/a.wav")
    first, second = lines(tmp_path)
    assert first["prev"] == ledger.GENESIS and first["seq"] == 0
    assert second["prev"] == first["hash"] and second["seq"] == 1


def test_ledger_is_private(tmp_path: Path) -> None:
    """The ledger file is created with mode 0600."""
    put(tmp_path, "2024/01/02/a.wav", b"a")
    assert stat.S_IMODE(os.stat(tmp_path / ledger.LEDGER_NAME).st_mode) == 0o600


def test_clean_directory_verifies(tmp_path: Path) -> None:
    """Untouched files and chain: no problems, every file checked."""
    put(tmp_path, "2024/01/02/a.wav", b"a")
    put(tmp_path, "2024/01/02/a.json", b"{}")
    result = ledger.verify(tmp_path)
    assert result.problems == () and (result.entries, result.files) == (2, 2)


def test_changed_file_is_found(tmp_path: Path) -> None:
    """A changed byte in a recording is reported as changed."""
    put(tmp_path, "2024/01/02/a.wav", b"abc")
    (tmp_path / "2024/01/02/a.wav").write_bytes(b"abd")
    assert ledger.verify(tmp_path).problems == ("changed: 2024/01/02/a.wav",)


def test_missing_file_is_found(tmp_path: Path) -> None:
    """A deleted recording that was never purged is reported as missing."""
    put(tmp_path, "2024/01/02/a.wav", b"abc")
    (tmp_path / "2024/01/02/a.wav").unlink()
    assert ledger.verify(tmp_path).problems == ("missing: 2024/01/02/a.wav",)


def test_purged_file_is_not_missing(tmp_path: Path) -> None:
    """A file removed by a ledgered purge is not reported."""
    put(tmp_path, "2024/01/02/a.wav", b"abc")
    (tmp_path / "2024/01/02/a.wav").unlink()
    ledger.append(tmp_path, "purge", 20.0, call_id="c1", files=["2024/01/02/a.wav"])
    assert ledger.verify(tmp_path).problems == ()


def test_unledgered_file_is_found(tmp_path: Path) -> None:
    """A recording file the ledger does not know is reported."""
    put(tmp_path, "2024/01/02/a.wav", b"abc")
    (tmp_path / "2024/01/02/b.wav.enc").write_bytes(b"x")
    assert ledger.verify(tmp_path).problems == ("unledgered: 2024/01/02/b.wav.enc",)


def test_removed_line_breaks_the_chain(tmp_path: Path) -> None:
    """Dropping an entry is found at the line after it."""
    for name in ("a", "b", "c"):
        put(tmp_path, f"2024/01/02/{name}.wav", name.encode())
    path = tmp_path / ledger.LEDGER_NAME
    kept = path.read_text().splitlines()
    path.write_text(kept[0] + "\n" + kept[2] + "\n")
    (tmp_path / "2024/01/02/b.wav").unlink()
    problems = ledger.verify(tmp_path).problems
    assert problems[0].startswith("ledger line 2: does not follow line 1")


def test_edited_line_breaks_the_chain(tmp_path: Path) -> None:
    """A rewritten hash in an entry (to cover a changed file) is found."""
    put(tmp_path, "2024/01/02/a.wav", b"abc")
    path = tmp_path / ledger.LEDGER_NAME
    entry = lines(tmp_path)[0]
    entry["files"] = {"2024/01/02/a.wav": "0" * 64}
    path.write_text(json.dumps(entry) + "\n")
    assert ledger.verify(tmp_path).problems[0].startswith(
        "ledger line 1: its hash does not match")


def test_append_refuses_after_a_torn_line(tmp_path: Path) -> None:
    """A torn last line stops further appends instead of starting a new chain."""
    put(tmp_path, "2024/01/02/a.wav", b"abc")
    with open(tmp_path / ledger.LEDGER_NAME, "ab") as f:
        f.write(b'{"seq": 1, "pr')
    with pytest.raises(ledger.LedgerError, match="not an entry"):
        ledger.append(tmp_path, "download", 1.0, call_id="c1")


def test_two_processes_appending_keep_one_chain(tmp_path: Path) -> None:
    """Two processes appending at once (the node and ccswitch purge): flock keeps one
    unbroken chain with every entry."""
    gate = tmp_path / "go"
    script = ("import sys, time; from pathlib import Path; from ccswitch.recording import ledger\n"
              "deadline = time.monotonic() + 30\n"
              "while not Path(sys.argv[3]).exists() and time.monotonic() < deadline:\n"
              "    time.sleep(0.001)\n"
              "for n in range(200): ledger.append(Path(sys.argv[1]), 'download', n, "
              "call_id=sys.argv[2])\n")
    writers = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), name, str(gate)],
                                cwd=Path(__file__).resolve().parents[2])
               for name in ("node", "purge")]
    time.sleep(1.0)  # both interpreters started, waiting at the gate
    gate.touch()
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    result = ledger.verify(tmp_path)
    assert result.problems == () and result.entries == 400
