"""Drive ``tests/phones/pjphone.py`` subprocesses from pytest.

    phone = start_phone("--role", "agent", "--tone", "1000")
    phone.port                                   # its SIP port (after "ready")
    phone.wait_for("state", lambda e: e["state"] == "CONFIRMED", timeout=10)
    assert phone.wait_exit(15) == 0
    phone.stop()                                 # idempotent; SIGTERM then SIGKILL

Prefer the ``phone_factory`` fixture (tests/conftest.py), which stops every
phone at teardown even when the test fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

PJPHONE = Path(__file__).resolve().with_name("pjphone.py")
REPO = PJPHONE.parents[2]
SIPP_DIR = REPO / "tests" / "data" / "sipp"

Event = dict[str, Any]


class PhoneError(AssertionError):
    """A phone did not do what the test waited for (carries its recent output)."""


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Phone:
    """A running pjphone subprocess and the JSON events it has printed."""

    def __init__(self, args: tuple[str, ...], *, name: str = "phone") -> None:
        """Spawn the phone; call :meth:`wait_ready` before using ``port``."""
        self.args = args
        self.name = name
        self.events: list[Event] = []
        self.stderr_tail: list[str] = []
        self._cond = threading.Condition()
        self._closed = False
        self.proc = subprocess.Popen(
            [sys.executable, str(PJPHONE), *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=str(REPO), start_new_session=True,
        )
        self._readers = [
            threading.Thread(target=self._read_stdout, name=f"{name}-out", daemon=True),
            threading.Thread(target=self._read_stderr, name=f"{name}-err", daemon=True),
        ]
        for t in self._readers:
            t.start()
        self.port = 0
        self.uri = ""

    def wait_ready(self, timeout: float = 10.0) -> Event:
        """Wait for the ``ready`` event; sets ``port`` and ``uri`` (our own SIP URI)."""
        ready = self.wait_for("ready", timeout=timeout)
        self.port = int(ready["port"])
        self.uri = str(ready["uri"])
        return ready

    # -- readers -------------------------------------------------------------
    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "garbage", "line": line}
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_tail.append(line.rstrip())
            if len(self.stderr_tail) > 200:
                del self.stderr_tail[:100]

    # -- waiting ---------------------------------------------------------------
    def find(self, event: str, predicate: Callable[[Event], bool] | None = None) -> list[Event]:
        """Every event so far named ``event`` (and matching ``predicate``)."""
        with self._cond:
            return [e for e in self.events
                    if e.get("event") == event and (predicate is None or predicate(e))]

    def wait_for(self, event: str, predicate: Callable[[Event], bool] | None = None,
                 timeout: float = 10.0) -> Event:
        """The first event named ``event`` matching ``predicate``, seen so far or
        arriving within ``timeout`` s; raises PhoneError on timeout or exit."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events:
                    if e.get("event") == event and (predicate is None or predicate(e)):
                        return e
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
        why = "exited" if self._closed else f"timed out after {timeout}s"
        raise PhoneError(f"{self.name}: {why} waiting for {event!r}\n{self.describe()}")

    def wait_state(self, state: str, timeout: float = 10.0, call: int | None = None) -> Event:
        """Shortcut: the first ``state`` event with this state (and call number)."""
        return self.wait_for(
            "state", lambda e: e["state"] == state and (call is None or e["call"] == call),
            timeout)

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait for the process to end; its return code (raises PhoneError if it doesn't)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise PhoneError(f"{self.name}: still running after {timeout}s\n"
                             f"{self.describe()}") from None
        for t in self._readers:
            t.join(2.0)
        return rc

    @property
    def done(self) -> Event | None:
        """The ``done`` event, once printed."""
        found = self.find("done")
        return found[0] if found else None

    def describe(self) -> str:
        """Recent events and stderr lines, for failure messages."""
        with self._cond:
            events = "\n".join(json.dumps(e) for e in self.events[-30:])
        errs = "\n".join(self.stderr_tail[-20:])
        return (f"args: {' '.join(self.args)}\nrc: {self.proc.poll()}\n"
                f"events:\n{events}\nstderr:\n{errs}")

    def stop(self, timeout: float = 5.0) -> int:
        """End the phone: SIGTERM (it hangs up its calls), then SIGKILL."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5.0)
            except ProcessLookupError:
                pass
        for t in self._readers:
            t.join(2.0)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode


def start_phone(*args: str, name: str = "phone", ready_timeout: float = 10.0) -> Phone:
    """Spawn ``pjphone.py *args`` with this interpreter; returns once it is ready."""
    phone = Phone(tuple(str(a) for a in args), name=name)
    try:
        phone.wait_ready(ready_timeout)
    except BaseException:
        phone.stop()
        raise
    return phone


class PhoneFactory:
    """Starts phones for one test and stops every one of them in :meth:`stop_all`."""

    def __init__(self) -> None:
        self.phones: list[Phone] = []

    def __call__(self, *args: str, name: str = "phone", ready_timeout: float = 10.0) -> Phone:
        """Like :func:`start_phone`; the phone is tracked before it is even ready."""
        phone = Phone(tuple(str(a) for a in args), name=name)
        self.phones.append(phone)
        phone.wait_ready(ready_timeout)
        return phone

    def stop_all(self) -> None:
        """Stop every phone started here (SIGTERM, then SIGKILL)."""
        for phone in self.phones:
            phone.stop()
        self.phones.clear()


# -- SIPp -------------------------------------------------------------------------

def ulaw_encode(samples: list[int]) -> bytes:
    """G.711 mu-law bytes for 16-bit linear samples (no header)."""
    out = bytearray(len(samples))
    for i, v in enumerate(samples):
        sign = 0x80 if v < 0 else 0
        mag = min(abs(v), 32635) + 0x84
        exponent = mag.bit_length() - 8
        mantissa = (mag >> (exponent + 3)) & 0x0F
        out[i] = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return bytes(out)


def write_ulaw_tone(path: str | Path, freq: float = 440.0, seconds: float = 1.0,
                    amplitude: float = 0.3, rate: int = 8000) -> Path:
    """Write a raw mu-law sine for ``uac_call.xml`` (its ``caller_audio.ulaw``);
    whole-Hz tones of whole seconds loop seamlessly."""
    n = int(rate * seconds)
    peak = amplitude * 32767.0
    step = 2.0 * math.pi * freq / rate
    data = ulaw_encode([int(round(peak * math.sin(step * i))) for i in range(n)])
    target = Path(path)
    target.write_bytes(data)
    return target


class Sipp:
    """A sipp process running ``tests/data/sipp/<scenario>`` in ``cwd``.

    Output goes to ``cwd/<name>.log`` and unexpected messages to
    ``cwd/<name>_errors.log``; :meth:`describe` returns both tails. sipp exits
    0 when every call succeeded, 1 when one failed, 99 when none ran.
    """

    def __init__(self, scenario: str, *args: str, cwd: str | Path, name: str = "sipp") -> None:
        self.cwd = Path(cwd)
        self.name = name
        self.log = self.cwd / f"{name}.log"
        self.errors = self.cwd / f"{name}_errors.log"
        self.cmd = ["sipp", "-sf", str(SIPP_DIR / scenario), "-nostdin",
                    "-trace_err", "-error_file", str(self.errors), *map(str, args)]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.cmd, cwd=str(self.cwd), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def wait(self, timeout: float = 30.0) -> int:
        """Its exit status (raises PhoneError if still running after ``timeout``)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise PhoneError(f"{self.name}: still running after {timeout}s\n"
                             f"{self.describe()}") from None

    def stop(self) -> int | None:
        """SIGTERM then SIGKILL; idempotent."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(3.0)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5.0)
            except ProcessLookupError:
                pass
        return self.proc.returncode

    def describe(self) -> str:
        """Command, exit status and the tails of its logs."""
        parts = [f"cmd: {' '.join(self.cmd)}", f"rc: {self.proc.poll()}"]
        for f in (self.log, self.errors):
            if f.exists():
                text = f.read_text(errors="replace")
                parts.append(f"--- {f.name} (tail) ---\n{text[-3000:]}")
        return "\n".join(parts)


class SippFactory:
    """Starts sipp processes for one test; :meth:`stop_all` ends any left running."""

    def __init__(self, cwd: str | Path) -> None:
        self.cwd = Path(cwd)
        self.procs: list[Sipp] = []

    def __call__(self, scenario: str, *args: str, name: str = "sipp") -> Sipp:
        """Start ``sipp -sf tests/data/sipp/<scenario> -nostdin ... *args`` in ``cwd``."""
        proc = Sipp(scenario, *args, cwd=self.cwd, name=name)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        """Stop every sipp started here."""
        for proc in self.procs:
            proc.stop()
        self.procs.clear()
