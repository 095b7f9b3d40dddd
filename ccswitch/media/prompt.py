"""Prompts (announcements, music on hold) decoded once into 20 ms G.711 frames.

``load_prompt`` reads any file pydub/ffmpeg can read, converts it to 8 kHz
mono 16-bit, splits it into 160-sample frames (the last one padded with
silence) and keeps both the encoded payloads (what goes on the wire) and the
linear samples (what the recorder mixes in, without decoding again).

Loading blocks (file I/O, possibly an ffmpeg subprocess): do it at start-up
(``preload``) or in a thread. Results are cached by (path, mtime, codec), so a
replaced file is picked up on the next load.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from ccswitch.errors import MediaError
from ccswitch.media import g711

__all__ = ["FRAME_SAMPLES", "SAMPLE_RATE", "Prompt", "PromptCache", "load_prompt", "prompt_cache",
           "silence"]

SAMPLE_RATE: Final = 8000
FRAME_SAMPLES: Final = 160


def _validate_linear(instance: object, attribute: attrs.Attribute[npt.NDArray[np.int16]],
                     value: npt.NDArray[np.int16]) -> None:
    if value.dtype != np.int16 or value.ndim != 2 or value.shape[1] != FRAME_SAMPLES:
        raise ValueError(f"linear must be an int16 array of shape (n, {FRAME_SAMPLES})")


@attrs.frozen(kw_only=True, eq=False)
class Prompt:
    """A decoded prompt: ``frames[i]`` is the payload of 20 ms frame i, ``linear[i]`` its samples."""

    path: Path
    codec: str = attrs.field(validator=attrs.validators.in_(g711.CODECS))
    frames: tuple[bytes, ...]
    linear: npt.NDArray[np.int16] = attrs.field(validator=_validate_linear)

    def __attrs_post_init__(self) -> None:
        if len(self.frames) != self.linear.shape[0]:
            raise ValueError("frames and linear disagree on the frame count")

    @property
    def duration(self) -> float:
        """Length in seconds (a whole number of 20 ms frames)."""
        return len(self.frames) * FRAME_SAMPLES / SAMPLE_RATE

    @classmethod
    def from_samples(cls, samples: npt.NDArray[np.int16], codec: str,
                     path: Path = Path("<memory>")) -> Prompt:
        """Build a prompt from 8 kHz mono int16 samples (padded to whole frames)."""
        flat = np.asarray(samples, dtype=np.int16).reshape(-1)
        count = -(-flat.shape[0] // FRAME_SAMPLES)
        linear = np.zeros((count, FRAME_SAMPLES), dtype=np.int16)
        linear.reshape(-1)[: flat.shape[0]] = flat
        linear.setflags(write=False)
        encoded = g711.encode(linear.reshape(-1), codec)
        frames = tuple(encoded[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES] for i in range(count))
        return cls(path=path, codec=codec, frames=frames, linear=linear)


def _read_samples(path: Path) -> npt.NDArray[np.int16]:
    try:
        from pydub import AudioSegment

        segment = AudioSegment.from_file(str(path))
        segment = segment.set_channels(1).set_frame_rate(SAMPLE_RATE).set_sample_width(2)
        return np.frombuffer(segment.raw_data, dtype="<i2").astype(np.int16)
    except MediaError:
        raise
    except Exception as e:  # pydub raises anything from OSError to CouldntDecodeError
        raise MediaError(f"cannot read prompt {path}: {e}") from e


class PromptCache:
    """A small LRU of decoded prompts keyed by (resolved path, mtime_ns, codec); thread-safe."""

    def __init__(self, max_entries: int = 64) -> None:
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, int, str], Prompt] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def load(self, path: Path, codec: str) -> Prompt:
        if codec not in g711.CODECS:
            raise MediaError(f"prompt {path}: unsupported codec {codec!r}")
        try:
            resolved = path.resolve()
            mtime = resolved.stat().st_mtime_ns
        except OSError as e:
            raise MediaError(f"cannot read prompt {path}: {e}") from e
        key = (str(resolved), mtime, codec)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                return cached
        prompt = Prompt.from_samples(_read_samples(resolved), codec, path)
        with self._lock:
            self._entries[key] = prompt
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return prompt


prompt_cache: Final = PromptCache()


def silence(codec: str) -> Prompt:
    """One second of silence in ``codec``, to loop where a party must hear nothing."""
    return Prompt.from_samples(np.zeros(SAMPLE_RATE, dtype=np.int16), codec,
                               path=Path("<silence>"))


def load_prompt(path: Path, codec: str) -> Prompt:
    """Load (or fetch from the cache) ``path`` as 20 ms ``codec`` frames; MediaError if unreadable."""
    return prompt_cache.load(Path(path), codec)
