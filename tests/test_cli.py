"""The command line as an operator runs it: a real ``python -m ccswitch.cli`` process."""

from __future__ import annotations

import io
import os
import signal
import stat
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

from ccswitch import __version__
from ccswitch.recording.recorder import CallRecorder
from ccswitch.recording.sealed import CHUNK_SIZE, HEADER_SIZE, TAG_SIZE, load_public_key

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "config"


def ccswitch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ccswitch.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def ccswitch_bytes(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "ccswitch.cli", *args], cwd=REPO,
                          capture_output=True, timeout=60)


def test_version_prints_the_package_version() -> None:
    """``ccswitch --version`` prints the version and exits 0."""
    result = ccswitch("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"ccswitch {__version__}"


def test_check_accepts_the_shipped_example_config() -> None:
    """The config and dialplan that ``make run`` uses pass ``check`` with exit 0."""
    result = ccswitch("check", "--config", str(REPO / "deploy" / "ccswitch.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK (1 queue(s), 2 agent(s), 2 route(s))" in result.stdout


def test_check_reports_every_error_with_file_and_key_and_exits_2() -> None:
    """A bad config gets one ``error: file: key: reason`` line per problem and exit code 2."""
    result = ccswitch("check", "--config", str(DATA / "bad" / "ccswitch.yaml"))
    assert result.returncode == 2
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert len(errors) >= 5
    assert any("ccswitch.yaml: sip.user_agnet:" in line for line in errors)
    assert any("http.listen" in line for line in errors)


def test_run_refuses_to_start_on_a_bad_config_with_exit_2() -> None:
    """``run`` uses the same loader: it prints the errors on stderr and exits 2 without serving."""
    result = ccswitch("run", "--config", str(DATA / "bad" / "ccswitch.yaml"))
    assert result.returncode == 2
    assert "error: " in result.stderr and "sip.user_agnet" in result.stderr


def test_missing_config_file_is_a_clear_error() -> None:
    """A config path that does not exist is reported by name, exit 2."""
    result = ccswitch("check", "--config", "/nonexistent/ccswitch.yaml")
    assert result.returncode == 2
    assert "/nonexistent/ccswitch.yaml" in result.stdout


def test_reload_signals_the_process_only_when_the_config_is_valid() -> None:
    """``reload`` checks first: a bad config leaves the target alone, a good one sends SIGHUP."""
    target = subprocess.Popen(["sleep", "30"])  # dies of an unhandled SIGHUP
    try:
        bad = ccswitch("reload", "--config", str(DATA / "bad" / "ccswitch.yaml"),
                       "--pid", str(target.pid))
        assert bad.returncode == 2
        assert "not reloaded" in bad.stdout
        assert target.poll() is None
        good = ccswitch("reload", "--config", str(REPO / "deploy" / "ccswitch.yaml"),
                        "--pid", str(target.pid))
        assert good.returncode == 0, good.stdout
        assert target.wait(timeout=10) == -signal.SIGHUP
    finally:
        target.kill()
        target.wait()


def test_reload_of_a_process_that_does_not_exist_fails_clearly() -> None:
    """A stale pid is reported, exit 1."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    result = ccswitch("reload", "--config", str(REPO / "deploy" / "ccswitch.yaml"),
                      "--pid", str(gone.pid))
    assert result.returncode == 1
    assert f"cannot signal ccswitch (pid {gone.pid})" in result.stdout


def test_report_without_a_cdr_database_says_where_it_looked() -> None:
    """Before any call has ended there is no database: a clear message, exit 2."""
    result = ccswitch("report", "--config", str(DATA / "good" / "conf" / "ccswitch.yaml"))
    assert result.returncode == 2
    assert "no CDR database at" in result.stderr


def test_report_rejects_a_malformed_time() -> None:
    """--since must be ISO 8601; argparse names the bad value."""
    result = ccswitch("report", "--config", str(DATA / "good" / "conf" / "ccswitch.yaml"),
                      "--since", "last tuesday")
    assert result.returncode == 2
    assert "not an ISO 8601 time: 'last tuesday'" in result.stderr


def test_report_shares_and_chart_do_not_go_together() -> None:
    """--chart draws the KPIs, --shares prints the split instead: asking for both is refused."""
    result = ccswitch("report", "--config", str(DATA / "good" / "conf" / "ccswitch.yaml"),
                      "--shares", "--chart", "split.png")
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr


# -- sealed recordings: keygen, decrypt, verify ------------------------------------------

STARTED = 1709942340.0  # 2024-03-08 UTC


def keys(tmp_path: Path) -> tuple[Path, Path]:
    result = ccswitch("keygen", "--out", str(tmp_path / "keys"))
    assert result.returncode == 0, result.stderr
    return tmp_path / "keys" / "recordings.key", tmp_path / "keys" / "recordings.pub"


def sealed_call(directory: Path, public: Path, seconds: int = 2,
                call_id: str = "call-1") -> Path:
    """A finished sealed recording: 440 Hz left, 1 kHz right."""
    rec = CallRecorder(directory, call_id, STARTED, {"call_id": call_id},
                       seal=load_public_key(public.read_bytes()))
    t = np.arange(160) / 8000
    for i in range(50 * seconds):
        phase = i * 160 / 8000
        rec.write((6000 * np.sin(2 * np.pi * 440 * (t + phase))).astype(np.int16),
                  (6000 * np.sin(2 * np.pi * 1000 * (t + phase))).astype(np.int16))
    return rec.finish({}).path


def write_config(tmp_path: Path, extra: str = "") -> tuple[Path, Path]:
    recordings = tmp_path / "rec"
    recordings.mkdir(exist_ok=True)
    config = tmp_path / "ccswitch.yaml"
    config.write_text(
        "sip:\n  listen: 127.0.0.1:5070\n  trusted: [127.0.0.0/8]\n"
        "rtp:\n  address: 127.0.0.1\n  ports: 40000-40099\n"
        "http:\n  listen: 127.0.0.1:0\n"
        f"recordings:\n  directory: {recordings}\n{extra}"
        f"dialplans: {REPO / 'dialplans'}\n")
    return config, recordings


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    """keygen writes recordings.key with mode 0600 and recordings.pub, never overwriting."""
    private, public = keys(tmp_path)
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()
    again = ccswitch("keygen", "--out", str(tmp_path / "keys"))
    assert again.returncode == 1 and "never overwrites" in again.stderr
    assert b"PRIVATE KEY" not in (again.stdout + again.stderr).encode()


def test_decrypt_writes_the_wav(tmp_path: Path) -> None:
    """decrypt turns a sealed recording into the stereo WAV it was, exit 0."""
    private, public = keys(tmp_path)
    sealed = sealed_call(tmp_path / "rec", public)
    result = ccswitch_bytes("decrypt", "--key", str(private), str(sealed))
    assert result.returncode == 0, result.stderr
    with wave.open(io.BytesIO(result.stdout)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 8000, 16000)


def test_decrypt_with_the_wrong_key_fails_clearly(tmp_path: Path) -> None:
    """Another key pair's private key: exit 1, a clear message, nothing on stdout."""
    _, public = keys(tmp_path)
    other = ccswitch("keygen", "--out", str(tmp_path / "other"))
    assert other.returncode == 0
    sealed = sealed_call(tmp_path / "rec", public)
    result = ccswitch_bytes("decrypt", "--key", str(tmp_path / "other" / "recordings.key"),
                            str(sealed))
    assert result.returncode == 1 and result.stdout == b""
    assert b"sealed to another key" in result.stderr


def test_decrypt_of_a_changed_recording_fails(tmp_path: Path) -> None:
    """A flipped byte in the sealed file: exit 1, the chunk named."""
    private, public = keys(tmp_path)
    sealed = sealed_call(tmp_path / "rec", public)
    data = bytearray(sealed.read_bytes())
    data[HEADER_SIZE + CHUNK_SIZE + TAG_SIZE + 100] ^= 0x20
    sealed.write_bytes(bytes(data))
    result = ccswitch_bytes("decrypt", "--key", str(private), str(sealed))
    assert result.returncode == 1 and b"chunk 1 does not authenticate" in result.stderr


def test_decrypt_of_a_truncated_recording_says_it_was_cut_short(tmp_path: Path) -> None:
    """A recording cut at a chunk boundary: the audio before is written, exit 1, cut short."""
    private, public = keys(tmp_path)
    sealed = sealed_call(tmp_path / "rec", public)
    os.truncate(sealed, HEADER_SIZE + 3 * (CHUNK_SIZE + TAG_SIZE))
    out = tmp_path / "out.wav"
    with open(out, "wb") as f:
        result = subprocess.run([sys.executable, "-m", "ccswitch.cli", "decrypt", "--key",
                                 str(private), str(sealed)], cwd=REPO, stdout=f,
                                stderr=subprocess.PIPE, timeout=60)
    assert result.returncode == 1 and b"cut short" in result.stderr
    with wave.open(str(out)) as w:
        assert w.getnframes() == (3 * CHUNK_SIZE - 44) // 4


def test_verify_is_clean_on_untouched_recordings(tmp_path: Path) -> None:
    """verify: every file matches the ledger, exit 0."""
    _, public = keys(tmp_path)
    config, recordings = write_config(tmp_path)
    sealed_call(recordings, public)
    result = ccswitch("verify", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 file(s) checked, 0 problem(s)" in result.stdout


def test_verify_finds_a_changed_byte(tmp_path: Path) -> None:
    """One flipped byte in a sealed recording is reported as changed, exit 1."""
    _, public = keys(tmp_path)
    config, recordings = write_config(tmp_path)
    sealed = sealed_call(recordings, public)
    data = bytearray(sealed.read_bytes())
    data[len(data) // 2] ^= 1
    sealed.write_bytes(bytes(data))
    result = ccswitch("verify", "--config", str(config))
    assert result.returncode == 1
    assert "changed: 2024/03/08/call-1.wav.enc" in result.stdout


def test_verify_finds_a_deleted_file(tmp_path: Path) -> None:
    """A recording deleted outside ccswitch purge is reported as missing, exit 1."""
    _, public = keys(tmp_path)
    config, recordings = write_config(tmp_path)
    sealed_call(recordings, public).unlink()
    result = ccswitch("verify", "--config", str(config))
    assert result.returncode == 1
    assert "missing: 2024/03/08/call-1.wav.enc" in result.stdout


def test_verify_finds_a_broken_chain(tmp_path: Path) -> None:
    """A ledger line removed (with its recording) breaks the chain, exit 1."""
    _, public = keys(tmp_path)
    config, recordings = write_config(tmp_path)
    for n in range(3):
        sealed_call(recordings, public, seconds=1, call_id=f"call-{n}")
    ledger = recordings / "ledger.jsonl"
    lines = ledger.read_text().splitlines(keepends=True)
    ledger.write_text(lines[0] + lines[2])
    for name in ("call-1.wav.enc", "call-1.json"):
        (recordings / "2024/03/08" / name).unlink()
    result = ccswitch("verify", "--config", str(config))
    assert result.returncode == 1
    assert "ledger line 2: does not follow line 1" in result.stdout


def test_check_refuses_a_private_key_as_the_public_key(tmp_path: Path) -> None:
    """A private key given as recordings.encrypt.public_key is refused, not quoted."""
    private, _ = keys(tmp_path)
    config, _ = write_config(tmp_path, f"  encrypt:\n    public_key: {private}\n")
    result = ccswitch("check", "--config", str(config))
    assert result.returncode == 2 and "recordings.encrypt.public_key" in result.stdout
    assert "PRIVATE" not in result.stdout


def test_check_refuses_a_recording_key_others_can_read(tmp_path: Path) -> None:
    """http.recording_key must be mode 0600."""
    private, _ = keys(tmp_path)
    os.chmod(private, 0o644)
    config, _ = write_config(tmp_path)
    text = config.read_text().replace("  listen: 127.0.0.1:0\n",
                                      f"  listen: 127.0.0.1:0\n  recording_key: {private}\n")
    config.write_text(text)
    result = ccswitch("check", "--config", str(config))
    assert result.returncode == 2 and "http.recording_key" in result.stdout
    assert "chmod 600" in result.stdout
