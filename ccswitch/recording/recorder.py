"""Call recorder: 8 kHz 16-bit stereo WAV (left = caller side, right = agent) + JSON sidecar.

The recorder is synchronous and knows nothing about RTP or Twisted: the media
engine hands it one 20 ms frame per channel per tick. Frames are interleaved
into a preallocated buffer and written about once a second, so recording costs
no syscall per frame.

Files are never visible half-done: audio goes to
``<directory>/.incomplete/<safe_id>.wav``; ``finish`` fixes the WAV header,
fsyncs, and ``os.replace``-s it to ``<directory>/YYYY/MM/DD/<safe_id>.wav``
(UTC date of ``started_at``), then writes ``<safe_id>.json`` the same way. The
sidecar is written last, so its presence means the recording is complete.

With ``seal`` (an X25519 public key, config ``recordings.encrypt``) the file is a
sealed one (``sealed.py``): ``<safe_id>.wav.enc``, encrypted chunk by chunk as it is
written; its plaintext is the same WAV, except that its header keeps zero sizes (a
sealed file is never rewritten in place: ``sealed_wav`` sets them when it is read).
The recorder cannot read it back, so a compressed copy (``sealed_copy``, a format) is
encoded while the call is recorded (``compressed.py``) and sealed as
``<safe_id>.<fmt>.enc`` next to the recording.

``finish`` notes the SHA-256 of the final file in the sidecar and appends the recording
(file and sidecar hashes) to the recordings directory's ledger (``ledger.py``).

The call id comes from the network: ``safe_call_id`` reduces it to
``[A-Za-z0-9._-]`` (with a short hash when anything was changed) before it
touches a path.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import struct
import time
from pathlib import Path
from typing import Any, Callable, Final, Iterator, Mapping

import attrs
import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from twisted.logger import Logger

from ccswitch.errors import RecordingError
from ccswitch.recording import ledger
from ccswitch.recording.compressed import SealedCopy
from ccswitch.recording.sealed import SUFFIX as SEALED_SUFFIX, SealedWriter

__all__ = [
    "CHANNELS", "SAMPLE_RATE", "CallRecorder", "RecordingResult", "export_compressed",
    "recording_suffix", "safe_call_id", "sealed_wav", "sidecar_path",
]

log = Logger()

SAMPLE_RATE: Final = 8000
CHANNELS: Final = 2
SAMPLE_WIDTH: Final = 2
BLOCK_ALIGN: Final = CHANNELS * SAMPLE_WIDTH
HEADER_SIZE: Final = 44
INCOMPLETE_DIR: Final = ".incomplete"
MAX_ID_LENGTH: Final = 80
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]")
_FORMAT: Final = re.compile(r"^[a-z0-9]{1,10}$")


def safe_call_id(call_id: str, max_length: int = MAX_ID_LENGTH) -> str:
    """``call_id`` reduced to ``[A-Za-z0-9._-]`` (no leading dot or dash), at most ``max_length``.

    If anything had to change, a 10-hex-digit hash of the original is appended
    so different ids stay different.
    """
    cleaned = _UNSAFE.sub("_", call_id).lstrip(".-")
    if cleaned == call_id and 0 < len(cleaned) <= max_length:
        return cleaned
    digest = hashlib.sha256(call_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    stem = cleaned[: max_length - len(digest) - 1] or "call"
    return f"{stem}-{digest}"


def _wav_header(data_bytes: int) -> bytes:
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + data_bytes, b"WAVE",
        b"fmt ", 16, 1, CHANNELS, SAMPLE_RATE, SAMPLE_RATE * BLOCK_ALIGN, BLOCK_ALIGN,
        SAMPLE_WIDTH * 8,
        b"data", data_bytes,
    )


def recording_suffix(name: str) -> str | None:
    """``.wav`` or ``.wav.enc`` if ``name`` is a recording's file name, else None."""
    for suffix in (".wav" + SEALED_SUFFIX, ".wav"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    return None


def sidecar_path(recording: Path) -> Path:
    """The sidecar next to a recording (``x.wav`` or ``x.wav.enc``: ``x.json``)."""
    suffix = recording_suffix(recording.name) or recording.suffix
    return recording.with_name(recording.name[:-len(suffix)] + ".json")


def sealed_wav(chunks: Iterator[bytes], plaintext_bytes: int) -> Iterator[bytes]:
    """A sealed recording's plaintext (``plaintext_bytes`` long) as a WAV with its sizes
    set. The first chunk is read before anything is yielded, so a wrong key or a changed
    first chunk yields nothing."""
    data = max(0, plaintext_bytes - HEADER_SIZE)
    data -= data % BLOCK_ALIGN
    first = next(chunks, b"")
    yield _wav_header(data)
    skip, left = HEADER_SIZE, data
    for chunk in itertools.chain((first,), chunks):
        out = chunk[skip:skip + left]
        skip = max(0, skip - len(chunk))
        left -= len(out)
        if out:
            yield out


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _open_exclusive(directory: Path, stem: str, suffix: str,
                    flags: int = 0) -> tuple[int, Path]:
    """A new file ``<stem><suffix>`` (or ``<stem>-2<suffix>``...) opened for writing."""
    for n in range(1, 1000):
        name = f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}"
        path = directory / name
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | flags, 0o640), path
        except FileExistsError:
            continue
    raise RecordingError(f"no free file name for {stem}{suffix} in {directory}")


@attrs.frozen(kw_only=True)
class RecordingResult:
    """A finished recording: where it is and how long it is."""

    path: Path
    sidecar: Path
    frames: int = attrs.field(validator=attrs.validators.ge(0))
    duration_seconds: float
    error: str | None = None
    sha256: str = ""


class CallRecorder:
    """Writes one call's stereo recording; ``write`` per 20 ms frame, ``finish`` once."""

    sample_rate: Final = SAMPLE_RATE

    def __init__(self, directory: Path, call_id: str, started_at: float,
                 metadata: Mapping[str, Any], *, buffer_seconds: float = 1.0,
                 seal: X25519PublicKey | None = None, sealed_copy: str | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self.call_id = call_id
        self.started_at = started_at
        self.safe_id = safe_call_id(call_id)
        self._metadata: dict[str, Any] = dict(metadata)
        capacity = max(SAMPLE_RATE // 50, int(SAMPLE_RATE * buffer_seconds))
        self._buf: npt.NDArray[np.int16] = np.zeros((capacity, CHANNELS), dtype="<i2")
        self._bytes = self._buf.data.cast("B")
        self._fill = 0  # samples buffered, not yet on disk
        self._flushed = 0  # bytes of _buf[:_fill] already written by a partial write
        self._data_bytes = 0  # audio bytes on disk
        self._error: str | None = None
        self._finished = False
        self._wall_clock = wall_clock  # dates the ledger entry at finish
        self._sealer = None if seal is None else SealedWriter(seal)
        self._suffix = ".wav" if seal is None else ".wav" + SEALED_SUFFIX
        self._out = bytearray()  # sealed bytes not yet written
        incomplete = self.directory / INCOMPLETE_DIR
        try:
            incomplete.mkdir(parents=True, exist_ok=True)
            self._fd, self.temp_path = _open_exclusive(incomplete, self.safe_id, self._suffix)
        except OSError as e:
            raise RecordingError(f"cannot create recording for {self.safe_id}: {e}") from e
        try:
            if self._sealer is None:
                self._write_all(memoryview(_wav_header(0)))
            else:
                self._out += self._sealer.header + self._sealer.update(_wav_header(0))
                self._drain()
        except (OSError, RecordingError) as e:
            os.close(self._fd)
            raise RecordingError(f"cannot write {self.temp_path}: {e}") from e
        self._copy: SealedCopy | None = None
        if sealed_copy is not None:
            if seal is None or not _FORMAT.match(sealed_copy):
                raise ValueError(f"a sealed copy needs seal and a format, got {sealed_copy!r}")
            self._copy = self._start_copy(seal, sealed_copy)

    def _start_copy(self, seal: X25519PublicKey, fmt: str) -> SealedCopy | None:
        """The sealed compressed copy; None (logged) if it cannot start: the recording
        matters more than its copy."""
        stem = self.temp_path.name[:-len(self._suffix)]
        try:
            fd, path = _open_exclusive(self.temp_path.parent, stem, f".{fmt}{SEALED_SUFFIX}")
            return SealedCopy(fd, path, fmt, seal)
        except (OSError, RecordingError) as e:
            log.error("recording {safe_id}: no compressed copy: {error}",
                      safe_id=self.safe_id, call_id=self.call_id, error=str(e))
            return None

    @property
    def frames(self) -> int:
        """Sample frames recorded so far (on disk plus buffered)."""
        return (self._data_bytes + self._fill * BLOCK_ALIGN - self._flushed) // BLOCK_ALIGN

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def sealed(self) -> bool:
        """Sealed recordings make their compressed copy themselves (``sealed_copy``)."""
        return self._sealer is not None

    def _write_all(self, data: memoryview) -> int:
        written = 0
        while written < len(data):
            written += os.write(self._fd, data[written:])
        return written

    def write(self, left: npt.NDArray[np.int16], right: npt.NDArray[np.int16]) -> None:
        """Append one frame per channel (equal lengths, int16); RecordingError if the disk fails.

        On a failed write the already-buffered audio is kept for the next
        attempt and everything on disk stays; only the frame passed to the
        failing call is dropped.
        """
        if self._finished:
            raise RecordingError(f"recording {self.safe_id} is already finished")
        n = left.shape[0]
        if right.shape[0] != n:
            raise ValueError("left and right frames differ in length")
        if self._fill + n > self._buf.shape[0]:
            self.flush()
        self._buf[self._fill:self._fill + n, 0] = left
        self._buf[self._fill:self._fill + n, 1] = right
        self._fill += n
        if self._fill == self._buf.shape[0]:
            self.flush()

    def flush(self) -> None:
        """Write buffered audio to the temp file (no fsync); RecordingError on OSError."""
        end = self._fill * BLOCK_ALIGN
        if self._sealer is not None:
            if end:
                if self._copy is not None:
                    self._copy.feed(bytes(self._bytes[:end]))
                self._out += self._sealer.update(self._bytes[:end])
                self._data_bytes += end
                self._fill = 0
            self._drain()
            return
        while self._flushed < end:
            try:
                written = os.write(self._fd, self._bytes[self._flushed:end])
            except OSError as e:
                self._error = f"write failed: {e}"
                raise RecordingError(f"recording {self.safe_id}: {e}") from e
            self._flushed += written
            self._data_bytes += written
        self._fill = 0
        self._flushed = 0

    def _drain(self) -> None:
        """Write the sealed bytes waiting; what a failed write left stays for the next."""
        while self._out:
            try:
                written = os.write(self._fd, self._out)
            except OSError as e:
                self._error = f"write failed: {e}"
                raise RecordingError(f"recording {self.safe_id}: {e}") from e
            del self._out[:written]

    def finish(self, metadata: Mapping[str, Any] | None = None) -> RecordingResult:
        """Finalise: fix the header (a sealed file: seal its final chunk), fsync, move into
        place with its sealed copy, write the sidecar, enter both in the ledger. Call once.

        ``metadata`` is merged over the metadata given at construction. If the
        last flush fails, what is on disk is still finalised and the error is
        noted in the result and the sidecar; RecordingError only if the file
        cannot be finalised at all (it then stays in ``.incomplete``).
        """
        if self._finished:
            raise RecordingError(f"recording {self.safe_id} is already finished")
        self._finished = True
        try:
            self.flush()
        except RecordingError as e:
            log.error("recording {safe_id}: final flush failed: {error}",
                      safe_id=self.safe_id, call_id=self.call_id, error=str(e))
        try:
            if self._sealer is not None:
                self._out += self._sealer.final()
                self._drain()
            else:
                usable = self._data_bytes - self._data_bytes % BLOCK_ALIGN
                if usable != self._data_bytes:
                    os.ftruncate(self._fd, HEADER_SIZE + usable)
                    self._data_bytes = usable
                os.pwrite(self._fd, _wav_header(usable), 0)
            os.fsync(self._fd)
        except (OSError, RecordingError) as e:
            if self._copy is not None:
                self._copy.abandon()
            raise RecordingError(f"cannot finalise {self.temp_path}: {e}") from e
        finally:
            os.close(self._fd)
        frames = self._data_bytes // BLOCK_ALIGN
        duration = frames / SAMPLE_RATE
        try:
            wav_path, sidecar = final_paths(self.directory, self.safe_id, self.started_at,
                                            self._suffix)
            os.replace(self.temp_path, wav_path)
            files = {wav_path: ledger.file_sha256(wav_path)}
            digest = files[wav_path]
            copy = self._finish_copy(wav_path)
            if copy is not None:
                files[copy] = ledger.file_sha256(copy)
            _fsync_dir(wav_path.parent)
            document: dict[str, Any] = {**self._metadata, **(metadata or {})}
            recording: dict[str, Any] = {
                "path": str(wav_path),
                "channels": {"left": "caller", "right": "agent"},
                "sample_rate": SAMPLE_RATE,
                "duration_seconds": duration,
                "frames": frames,
                "sha256": digest,
                "sealed": self._sealer is not None,
            }
            if copy is not None:
                recording["compressed"] = {"path": str(copy), "sha256": files[copy]}
            elif self._copy is not None:
                recording["compressed_error"] = self._copy.error
            if self._error is not None:
                recording["error"] = self._error
            document["recording"] = recording
            body = json.dumps(document, indent=2, sort_keys=True, default=str).encode()
            fd, temp_json = _open_exclusive(self.temp_path.parent, self.temp_path.stem, ".json")
            try:
                write_fd(fd, body)
            finally:
                os.close(fd)
            os.replace(temp_json, sidecar)
            _fsync_dir(sidecar.parent)
        except OSError as e:
            raise RecordingError(f"cannot move recording {self.safe_id} into place: {e}") from e
        ledger_recording(self.directory, self.call_id, self._wall_clock(), {
            **files, sidecar: hashlib.sha256(body).hexdigest()})
        log.info("recording {safe_id} finished: {path} ({seconds:.1f} s)",
                 safe_id=self.safe_id, call_id=self.call_id, path=str(wav_path),
                 seconds=duration)
        return RecordingResult(path=wav_path, sidecar=sidecar, frames=frames,
                               duration_seconds=duration, error=self._error, sha256=digest)

    def _finish_copy(self, recording: Path) -> Path | None:
        """Put the sealed copy next to ``recording``; None (logged) if there is none."""
        if self._copy is None:
            return None
        stem = recording.name[:-len(self._suffix)]
        try:
            return self._copy.finish(recording.with_name(stem + self._copy.suffix))
        except RecordingError as e:
            log.error("recording {safe_id}: {error}", safe_id=self.safe_id,
                      call_id=self.call_id, error=str(e))
            return None


def ledger_recording(directory: Path, call_id: str, at: float,
                     files: Mapping[Path, str]) -> None:
    """Append a finished recording's files (path: SHA-256) to the ledger; a failure is
    logged (``ccswitch verify`` will then list the files as unledgered)."""
    try:
        ledger.append(directory, "recording", at, call_id=call_id,
                      files={p.relative_to(directory).as_posix(): h for p, h in files.items()})
    except (ledger.LedgerError, ValueError) as e:
        log.error("recording {call_id}: not entered in the ledger: {error}", call_id=call_id,
                  error=str(e))


def final_paths(directory: Path, safe_id: str, started_at: float,
                suffix: str = ".wav") -> tuple[Path, Path]:
    """Free names for a finished recording and its sidecar: ``YYYY/MM/DD/<safe id><suffix>``
    (UTC day of the start), ``-2``, ``-3``... if taken; the folder is created."""
    day = time.gmtime(started_at)
    folder = directory / f"{day.tm_year:04d}" / f"{day.tm_mon:02d}" / f"{day.tm_mday:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        stem = safe_id if n == 1 else f"{safe_id}-{n}"
        wav, sidecar = folder / f"{stem}{suffix}", folder / f"{stem}.json"
        if not wav.exists() and not sidecar.exists():
            return wav, sidecar
    raise RecordingError(f"no free final name for {safe_id} in {folder}")


def write_fd(fd: int, body: bytes) -> None:
    """Write all of ``body`` to ``fd`` and fsync it."""
    view = memoryview(body)
    written = 0
    while written < len(view):
        written += os.write(fd, view[written:])
    os.fsync(fd)


def export_compressed(wav_path: Path, fmt: str, *,
                      wall_clock: Callable[[], float] = time.time) -> Path:
    """Export a finished WAV as ``fmt`` (e.g. "mp3", "ogg") next to it; blocking, run in a thread.

    Written to a temp name and renamed, so a partial export is never visible; then
    entered in the ledger. Not for sealed recordings: the node cannot read them back
    (the config refuses ``compressed_copy`` with ``encrypt``).
    """
    if not _FORMAT.match(fmt):
        raise RecordingError(f"unsupported compressed format {fmt!r}")
    wav_path = Path(wav_path)
    target = wav_path.with_suffix(f".{fmt}")
    temp = wav_path.with_name(f".{wav_path.stem}.{fmt}.part")
    try:
        from pydub import AudioSegment

        AudioSegment.from_wav(str(wav_path)).export(str(temp), format=fmt)
        os.replace(temp, target)
        _fsync_dir(target.parent)
    except Exception as e:  # pydub/ffmpeg failures come in many types
        try:
            temp.unlink()
        except OSError:
            pass
        raise RecordingError(f"cannot export {wav_path} as {fmt}: {e}") from e
    # A finished recording lies in <directory>/YYYY/MM/DD/: the ledger is in <directory>.
    ledger_recording(wav_path.parents[3], target.stem, wall_clock(),
                     {target: ledger.file_sha256(target)})
    return target
