"""The compressed copy of a sealed recording, encoded while the call is recorded.

A node with ``recordings.encrypt`` cannot read a recording back once it is written, and
pydub's encoder goes through temporary files, so the copy is made on the way in: each
block of audio the recorder flushes also goes to an ``ffmpeg`` process through its
stdin (raw 8 kHz 16-bit stereo), and what ffmpeg writes to its stdout is sealed
(``sealed.py``) into ``.incomplete/<safe id>.<fmt>.enc`` by a reader thread. No clear
audio touches the disk. ``finish`` closes ffmpeg's input, waits for the rest, seals the
final chunk and moves the file next to the recording.

The recorder's thread never blocks on ffmpeg: its stdin is non-blocking and what does
not fit in the pipe waits in memory, up to ``MAX_PENDING`` bytes (a minute of audio);
beyond that, or if ffmpeg fails, the copy is given up (logged, the recording itself goes
on) and its partial file removed. One ffmpeg process and one thread per recorded call.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Final, Sequence

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from twisted.logger import Logger

from ccswitch.errors import RecordingError
from ccswitch.recording.sealed import SUFFIX as SEALED_SUFFIX, SealedWriter

__all__ = ["MAX_PENDING", "SealedCopy", "encoder_command"]

log = Logger()

MAX_PENDING: Final = 60 * 8000 * 4
_READ: Final = 1 << 16
_FINISH_TIMEOUT: Final = 60.0


def encoder_command(fmt: str) -> list[str]:
    """ffmpeg reading raw 8 kHz 16-bit stereo on stdin, writing ``fmt`` on stdout."""
    return ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "s16le",
            "-ar", "8000", "-ac", "2", "-i", "pipe:0", "-f", fmt, "pipe:1"]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class SealedCopy:
    """One call's sealed compressed copy: ``feed`` audio, then ``finish`` or ``abandon``."""

    def __init__(self, fd: int, temp_path: Path, fmt: str, seal: X25519PublicKey, *,
                 command: Sequence[str] | None = None) -> None:
        """``fd`` is the new temp file ``temp_path``, open for writing (taken over)."""
        self.fmt = fmt
        self.temp_path = temp_path
        self._fd = fd
        self._writer = SealedWriter(seal)
        self._pending = bytearray()
        self.error: str | None = None
        try:
            _write_all(fd, self._writer.header)
            self._process = subprocess.Popen(
                list(command or encoder_command(fmt)), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True)
        except OSError as e:
            os.close(fd)
            self._unlink()
            raise RecordingError(f"cannot start the {fmt} encoder: {e}") from e
        assert self._process.stdin is not None and self._process.stdout is not None
        self._stdin = self._process.stdin
        self._stdout = self._process.stdout
        os.set_blocking(self._stdin.fileno(), False)
        self._reader = threading.Thread(target=self._read, name=f"copy {temp_path.name}",
                                        daemon=True)
        self._reader.start()

    @property
    def suffix(self) -> str:
        return f".{self.fmt}{SEALED_SUFFIX}"

    def feed(self, audio: bytes) -> None:
        """Hand raw audio to the encoder without blocking; a copy that failed ignores it."""
        if self.error is not None:
            return
        self._pending += audio
        if len(self._pending) > MAX_PENDING:
            self._give_up("the encoder does not keep up")
            return
        while self._pending:
            try:
                written = os.write(self._stdin.fileno(), self._pending)
            except BlockingIOError:
                return
            except OSError as e:
                self._give_up(f"the encoder stopped: {e}")
                return
            del self._pending[:written]

    def _read(self) -> None:
        """Reader thread: seal what ffmpeg writes, as it comes."""
        try:
            while piece := os.read(self._stdout.fileno(), _READ):
                _write_all(self._fd, self._writer.update(piece))
        except (OSError, ValueError) as e:  # ValueError: the pipe was closed by abandon
            if self.error is None:
                self.error = f"cannot write {self.temp_path.name}: {e}"

    def finish(self, target: Path) -> Path:
        """Blocking: end the input, seal the rest, move the copy to ``target``.

        RecordingError (and nothing left on disk) if the copy failed."""
        if self.error is None:
            try:
                os.set_blocking(self._stdin.fileno(), True)
                _write_all(self._stdin.fileno(), bytes(self._pending))
                self._pending.clear()
            except OSError as e:
                self.error = f"the encoder stopped: {e}"
        self._close_stdin()
        self._reader.join(_FINISH_TIMEOUT)
        try:
            code = self._process.wait(timeout=_FINISH_TIMEOUT if self.error is None else 5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = self._process.wait()
        if self.error is None and self._reader.is_alive():
            self.error = "the encoder did not finish"
        if self.error is None and code != 0:
            self.error = f"the encoder exited with {code}"
        try:
            if self.error is None:
                _write_all(self._fd, self._writer.final())
                os.fsync(self._fd)
        except OSError as e:
            self.error = f"cannot write {self.temp_path.name}: {e}"
        finally:
            os.close(self._fd)
            self._stdout.close()
        if self.error is not None:
            self._unlink()
            raise RecordingError(f"compressed copy {self.fmt} failed: {self.error}")
        os.replace(self.temp_path, target)
        return target

    def abandon(self) -> None:
        """Stop the encoder and remove the partial copy (the recording failed)."""
        self._give_up("the recording was abandoned")
        self._reader.join(5)
        os.close(self._fd)
        self._stdout.close()
        self._unlink()

    def _give_up(self, reason: str) -> None:
        if self.error is None:
            self.error = reason
            log.error("compressed copy {path} given up: {reason}", path=self.temp_path.name,
                      reason=reason)
        self._pending.clear()
        self._close_stdin()
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()

    def _close_stdin(self) -> None:
        try:
            self._stdin.close()
        except OSError:
            pass  # a broken pipe on close: the encoder is gone, which error already says

    def _unlink(self) -> None:
        try:
            self.temp_path.unlink()
        except FileNotFoundError:
            pass
