"""Loading prompts into pre-encoded 20 ms frames."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np
import pytest

from ccswitch.errors import MediaError
from ccswitch.media import g711
from ccswitch.media.prompt import Prompt, PromptCache, load_prompt


def write_tone(path: Path, *, seconds: float, freq: float, rate: int = 16000,
               channels: int = 2) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    mono = (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    data = np.repeat(mono[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.astype("<i2").tobytes())
    return path


def goertzel_power(samples: np.ndarray, freq: float, rate: int = 8000) -> float:
    x = samples.astype(np.float64)
    n = np.arange(x.shape[0])
    return float(abs(np.sum(x * np.exp(-2j * np.pi * freq * n / rate))) ** 2)


def test_stereo_16k_second_becomes_50_frames(tmp_path: Path) -> None:
    """1 s of 16 kHz stereo becomes 50 frames of 160 bytes at 8 kHz mono."""
    prompt = PromptCache().load(write_tone(tmp_path / "a.wav", seconds=1, freq=440), "PCMU")
    assert len(prompt.frames) == 50
    assert all(len(f) == 160 for f in prompt.frames)
    assert prompt.linear.shape == (50, 160) and prompt.linear.dtype == np.int16
    assert prompt.duration == pytest.approx(1.0)


def test_tone_frequency_survives_conversion(tmp_path: Path) -> None:
    """The 440 Hz tone dominates over 1 kHz after resampling."""
    prompt = PromptCache().load(write_tone(tmp_path / "a.wav", seconds=1, freq=440), "PCMU")
    flat = prompt.linear.reshape(-1)
    assert goertzel_power(flat, 440) > 100 * goertzel_power(flat, 1000)


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_frames_are_the_encoded_linear_samples(tmp_path: Path, codec: str) -> None:
    """Each stored frame is exactly the codec encoding of its linear samples."""
    prompt = PromptCache().load(write_tone(tmp_path / "a.wav", seconds=0.2, freq=440), codec)
    for frame, linear in zip(prompt.frames, prompt.linear):
        assert frame == g711.encode(linear, codec)


def test_last_frame_is_padded_with_silence(tmp_path: Path) -> None:
    """1.01 s gives 51 frames; the tail of the last frame is zeros."""
    prompt = PromptCache().load(write_tone(tmp_path / "a.wav", seconds=1.01, freq=440,
                                           rate=8000, channels=1), "PCMU")
    assert len(prompt.frames) == 51
    assert not prompt.linear[-1, 80:].any()
    assert prompt.linear[-1, :70].any()


def test_linear_samples_are_read_only(tmp_path: Path) -> None:
    """The shared linear array cannot be modified by a consumer."""
    prompt = PromptCache().load(write_tone(tmp_path / "a.wav", seconds=0.1, freq=440), "PCMU")
    with pytest.raises(ValueError):
        prompt.linear[0, 0] = 1


def test_cache_returns_same_prompt(tmp_path: Path) -> None:
    """A second load of an unchanged file with the same codec is a cache hit."""
    cache = PromptCache()
    path = write_tone(tmp_path / "a.wav", seconds=0.1, freq=440)
    assert cache.load(path, "PCMU") is cache.load(path, "PCMU")


def test_cache_separates_codecs(tmp_path: Path) -> None:
    """PCMU and PCMA versions of a file are distinct entries."""
    cache = PromptCache()
    path = write_tone(tmp_path / "a.wav", seconds=0.1, freq=440)
    assert cache.load(path, "PCMU").codec == "PCMU"
    assert cache.load(path, "PCMA").codec == "PCMA"
    assert len(cache) == 2


def test_cache_reloads_changed_file(tmp_path: Path) -> None:
    """A file with a new mtime is decoded again."""
    cache = PromptCache()
    path = write_tone(tmp_path / "a.wav", seconds=0.1, freq=440)
    first = cache.load(path, "PCMU")
    write_tone(path, seconds=0.2, freq=440)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert len(cache.load(path, "PCMU").frames) == 10 != len(first.frames)


def test_cache_is_bounded(tmp_path: Path) -> None:
    """The LRU keeps at most max_entries prompts."""
    cache = PromptCache(max_entries=2)
    for i in range(3):
        cache.load(write_tone(tmp_path / f"{i}.wav", seconds=0.02, freq=440), "PCMU")
    assert len(cache) == 2


def test_missing_file_raises_media_error_with_path(tmp_path: Path) -> None:
    """A missing prompt raises MediaError naming the file."""
    with pytest.raises(MediaError, match="nope.wav"):
        load_prompt(tmp_path / "nope.wav", "PCMU")


def test_garbage_file_raises_media_error_with_path(tmp_path: Path) -> None:
    """An undecodable prompt raises MediaError naming the file."""
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + os.urandom(64))
    with pytest.raises(MediaError, match="bad.wav"):
        load_prompt(bad, "PCMU")


def test_unknown_codec_raises_media_error(tmp_path: Path) -> None:
    """Asking for a codec other than PCMU/PCMA is a MediaError."""
    with pytest.raises(MediaError):
        load_prompt(write_tone(tmp_path / "a.wav", seconds=0.02, freq=440), "G722")


def test_from_samples_pads_to_whole_frames() -> None:
    """Building from 200 samples gives two frames, the second mostly silence."""
    prompt = Prompt.from_samples(np.full(200, 1000, dtype=np.int16), "PCMA")
    assert len(prompt.frames) == 2 and prompt.linear[1, 40:].sum() == 0
