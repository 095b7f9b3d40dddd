"""Signal checks for test recordings (WAV files written by phones or ccswitch).

All functions take mono float samples (any scale; int16 arrays are fine) unless
noted; pick a channel with ``samples[:, 0]`` (caller, left) or ``[:, 1]``
(agent, right) from :func:`read_wav`.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def read_wav(path: str | Path) -> tuple[int, npt.NDArray[np.int16]]:
    """Read a 16-bit PCM WAV: (sample rate, int16 array of shape (frames, channels))."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * w.getsampwidth()}-bit samples, expected 16-bit")
        rate = w.getframerate()
        channels = w.getnchannels()
        raw = w.readframes(w.getnframes())
    data = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    usable = len(data) - len(data) % channels
    return rate, data[:usable].reshape(-1, channels)


def _mono(samples: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(samples, dtype=np.float64)
    if arr.ndim == 2:
        if arr.shape[1] != 1:
            raise ValueError("pass one channel, e.g. samples[:, 0]")
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"expected 1-D samples, got shape {arr.shape}")
    return arr


def rms(samples: npt.ArrayLike) -> float:
    """Root mean square level (0.0 for an empty signal)."""
    x = _mono(samples)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def goertzel_power(samples: npt.ArrayLike, rate: int, freq: float) -> float:
    """Mean power of ``samples`` at ``freq`` Hz (Goertzel on the exact frequency).

    Normalised so a full sine of amplitude A gives about A**2 / 2, comparable
    with ``rms(x)**2`` (the total power).
    """
    x = _mono(samples)
    n = x.size
    if n == 0:
        return 0.0
    # Same magnitude as the Goertzel recurrence, computed as one vectorised
    # single-frequency DFT term (exact for non-integer bins too).
    phase = (2.0 * np.pi * freq / rate) * np.arange(n)
    re = float(np.dot(x, np.cos(phase)))
    im = float(np.dot(x, np.sin(phase)))
    power = re * re + im * im
    return float(2.0 * power / (n * n))


def band_power(samples: npt.ArrayLike, rate: int, freq: float, width: float = 20.0) -> float:
    """Mean power within ``freq +- width`` Hz (Hann-windowed FFT), same scale as rms**2."""
    x = _mono(samples)
    if x.size == 0:
        return 0.0
    win = np.hanning(x.size)
    spec = np.abs(np.fft.rfft(x * win)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1.0 / rate)
    sel = (freqs >= freq - width) & (freqs <= freq + width)
    # Parseval with the window's energy: sum|X|^2 = n * sum(x^2 w^2) ~ total.
    scale = 2.0 / (x.size * float(np.sum(win * win)))
    return float(np.sum(spec[sel]) * scale)


def dominant_frequency(samples: npt.ArrayLike, rate: int, min_freq: float = 50.0) -> float:
    """Frequency (Hz) of the strongest FFT bin at or above ``min_freq`` (DC ignored)."""
    x = _mono(samples)
    if x.size < 2:
        return 0.0
    x = x - x.mean()
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1.0 / rate)
    spec[freqs < min_freq] = 0.0
    return float(freqs[int(np.argmax(spec))])


def tone_ratio(samples: npt.ArrayLike, rate: int, freq: float, width: float = 20.0) -> float:
    """Share (0..1) of the signal's power that lies within ``freq +- width`` Hz."""
    x = _mono(samples)
    x = x - x.mean() if x.size else x
    total = rms(x) ** 2
    if total <= 0.0:
        return 0.0
    return min(1.0, band_power(x, rate, freq, width) / total)


def tone_present(samples: npt.ArrayLike, rate: int, freq: float, min_ratio: float = 0.5,
                 min_rms: float = 100.0, width: float = 20.0) -> bool:
    """True when the signal is audible (rms >= ``min_rms`` on the int16 scale)
    and at least ``min_ratio`` of its power is within ``freq +- width`` Hz.

    Band power rather than one bin keeps this robust to G.711 quantisation
    noise, jitter-buffer gaps and small clock offsets.
    """
    if rms(samples) < min_rms:
        return False
    return tone_ratio(samples, rate, freq, width) >= min_ratio


def normalized_xcorr_max(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Peak normalised cross-correlation (-1..1) of ``a`` and ``b`` over all lags.

    Each lag is normalised by the energy of the overlapping stretch of the
    longer signal, so a copy of the shorter signal anywhere inside the longer
    one scores ~1.0 whatever its level; use it for "this channel contains the
    announcement" checks (compare with a score for an unrelated signal).
    """
    x = _mono(a)
    y = _mono(b)
    if x.size == 0 or y.size == 0:
        return 0.0
    if y.size > x.size:
        x, y = y, x  # x: the longer haystack, y: the needle
    y = y - y.mean()
    ny = float(np.sqrt(np.sum(y * y)))
    if ny == 0.0:
        return 0.0
    m = y.size
    size = 1 << int(np.ceil(np.log2(x.size + m)))
    corr = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(y, size)), size)[: x.size - m + 1]
    # Windowed energy (and mean) of x under each placement of y.
    c1 = np.concatenate(([0.0], np.cumsum(x)))
    c2 = np.concatenate(([0.0], np.cumsum(x * x)))
    s1 = c1[m:] - c1[:-m]
    s2 = c2[m:] - c2[:-m]
    var = np.maximum(s2 - s1 * s1 / m, 0.0)
    nx = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(nx > 1e-9 * max(1.0, ny), corr / (nx * ny), 0.0)
    return float(np.max(score)) if score.size else 0.0
