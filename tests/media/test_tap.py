"""The recording tap's jitter FIFO: decoded inbound audio, one frame drained per tick."""

from __future__ import annotations

import numpy as np

from ccswitch.media.tap import JitterFifo


def test_jitter_fifo_drops_oldest_on_overflow() -> None:
    """Pushing 12 frames into a 10-frame FIFO keeps the newest 10."""
    fifo = JitterFifo(10 * 160)
    identity = np.arange(256, dtype=np.int16)
    for i in range(12):
        fifo.push(memoryview(bytes([i]) * 160), identity)
    out = np.empty(160, dtype=np.int16)
    fifo.pop_into(out)
    assert (out == 2).all() and fifo.dropped == 2 * 160 and len(fifo) == 9 * 160


def test_jitter_fifo_underflow_gives_silence() -> None:
    """Reading more than is buffered pads with zeros and counts an underrun when empty."""
    fifo = JitterFifo(10 * 160)
    fifo.push(memoryview(b"\x07" * 100), np.arange(256, dtype=np.int16))
    out = np.full(160, 99, dtype=np.int16)
    fifo.pop_into(out)
    assert (out[:100] == 7).all() and not out[100:].any()
    fifo.pop_into(out)
    assert not out.any() and fifo.underruns == 1
