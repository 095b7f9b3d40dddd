"""``ccswitch qa ...`` and the purge's exemplary exemption, run as an operator runs them:
a real ``python -m ccswitch.cli`` process on a real SQLite CDR database."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from ccswitch.config import check_config
from ccswitch.qa.store import QaStore
from ccswitch.recording.recorder import CallRecorder
from tests.config.test_config import plan, service, setup
from tests.qa.test_store import ALL, FORM, call

REPO = Path(__file__).resolve().parents[2]


def ccswitch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ccswitch.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def _center(tmp_path: Path) -> tuple[Path, QaStore]:
    """A config whose dialplan samples 100 % and its (opened) CDR database."""
    path = setup(tmp_path, config=service(), plans={"main.yaml": {
        **plan(), "qa": {"sampling": {"seed": "k", "percent": 100}}}})
    config = check_config(path).config
    assert config is not None
    assert isinstance(config.cdr.database, Path)
    return path, QaStore(config.cdr.database)


def test_samples_lists_flagged_calls_with_their_reason(tmp_path: Path) -> None:
    """``qa samples`` prints one line per sampled call: id, queue, agent, reason."""
    path, store = _center(tmp_path)
    store.add(call("c1"))
    store.sample_call("c1", ALL, now_ms=1)
    store.close()
    result = ccswitch("qa", "samples", "--config", str(path), "--agent", "alice")
    assert result.returncode == 0, result.stderr
    [header, line] = result.stdout.splitlines()
    assert line.split("\t")[:6] == ["c1", "2026-11-23T01:00:00+00:00", "support", "inhouse",
                                    "alice", "random"]


def test_samples_filters_hostile_text_as_data(tmp_path: Path) -> None:
    """An agent filter full of SQL lists nothing and harms nothing."""
    path, store = _center(tmp_path)
    store.add(call("c1"))
    store.sample_call("c1", ALL, now_ms=1)
    store.close()
    result = ccswitch("qa", "samples", "--config", str(path), "--agent",
                      "x'; DROP TABLE calls; --", "--format", "json")
    assert (result.returncode, result.stdout) == (0, "")
    assert "0 call(s)" in result.stderr


def test_sample_flags_stored_calls_of_a_range(tmp_path: Path) -> None:
    """``qa sample --since`` applies the dialplan's rules to calls already stored."""
    path, store = _center(tmp_path)
    store.add(call("late"))
    store.close()
    result = ccswitch("qa", "sample", "--config", str(path), "--since", "2026-11-23")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1 call(s) checked, 1 sampled\n"


def test_calibration_prints_the_spread(tmp_path: Path) -> None:
    """``qa calibration CALL SESSION`` prints min, max, stdev and the disagreements as JSON."""
    path, store = _center(tmp_path)
    store.add(call("c1"))
    for reviewer, solved in (("ann", 1), ("ben", 5)):
        store.evaluate(call_id="c1", reviewer=reviewer, form=FORM, session="s1",
                       answers={"greet": "yes", "verify": "yes", "solved": solved}, now_ms=1)
    store.close()
    result = ccswitch("qa", "calibration", "--config", str(path), "c1", "s1")
    assert result.returncode == 0, result.stderr
    spread = json.loads(result.stdout)
    assert (spread["min"], spread["max"], spread["stdev"]) == (50.0, 100.0, 25.0)
    assert spread["disagreement"] == {"solved": {"ann": 1, "ben": 5}}


def test_exemplary_for_an_unknown_call_is_an_error(tmp_path: Path) -> None:
    """Marking a call the CDR does not hold fails with exit 1 and says so."""
    path, store = _center(tmp_path)
    store.close()
    result = ccswitch("qa", "exemplary", "--config", str(path), "ghost", "--by", "rita")
    assert result.returncode == 1 and "no call 'ghost'" in result.stderr


def test_purge_skips_an_exemplary_recording_and_says_so(tmp_path: Path) -> None:
    """After ``qa exemplary``, ``purge`` keeps that old recording, deletes the other, and
    prints which one it kept."""
    path, store = _center(tmp_path)
    recordings = tmp_path / "rec"
    old = time.time() - 400 * 86400
    files = {}
    for call_id in ("best", "plain"):
        recorder = CallRecorder(recordings, call_id, old + 3, {"call_id": call_id})
        files[call_id] = recorder.finish({"arrived_at": old}).path
        store.add(call(call_id, at=old))
    store.close()
    marked = ccswitch("qa", "exemplary", "--config", str(path), "best", "--by", "rita")
    assert marked.returncode == 0, marked.stderr
    result = ccswitch("purge", "--config", str(path), "--older-than", "365")
    assert result.returncode == 0, result.stderr
    assert "kept best: marked exemplary" in result.stdout
    assert files["best"].exists() and not files["plain"].exists()
