"""The recording tap: per-leg FIFOs of decoded inbound audio and the stereo frame they
feed a ``CallRecorder`` once per media tick (:class:`~ccswitch.media.engine.MediaEngine`
owns the taps and the tick).

Left channel = audio received from the caller leg plus prompts played to the caller
(saturating add); right channel = audio received from the agent leg. Inbound audio is
decoded into a small per-leg FIFO (``FIFO_FRAMES`` frames, oldest dropped on overflow,
silence on underflow), each packet with the law of its payload type; telephone-event
and other payload types are not recorded. Packet reordering and loss are not concealed
in the recording.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Final

import numpy as np
import numpy.typing as npt
from twisted.logger import Logger

from ccswitch.errors import RecordingError
from ccswitch.recording.recorder import CallRecorder

if TYPE_CHECKING:
    from ccswitch.media.engine import MediaEngine
    from ccswitch.media.leg import MediaLeg

log = Logger()

FIFO_FRAMES: Final = 10

Int16Array = npt.NDArray[np.int16]


class JitterFifo:
    """A ring of decoded samples fed per packet and drained one frame per tick."""

    __slots__ = ("_ring", "_read", "_count", "dropped", "underruns")

    def __init__(self, capacity: int) -> None:
        self._ring: Int16Array = np.zeros(capacity, dtype=np.int16)
        self._read = 0
        self._count = 0
        self.dropped = 0
        self.underruns = 0

    def __len__(self) -> int:
        return self._count

    def push(self, payload: memoryview, table: Int16Array) -> None:
        codes = np.frombuffer(payload, dtype=np.uint8)
        ring = self._ring
        capacity = ring.shape[0]
        n = codes.shape[0]
        if n > capacity:
            self.dropped += n - capacity
            codes = codes[n - capacity:]
            n = capacity
        write = (self._read + self._count) % capacity
        first = min(n, capacity - write)
        table.take(codes[:first], out=ring[write:write + first])
        if first < n:
            table.take(codes[first:], out=ring[:n - first])
        self._count += n
        if self._count > capacity:
            overflow = self._count - capacity
            self.dropped += overflow
            self._read = (self._read + overflow) % capacity
            self._count = capacity

    def pop_into(self, out: Int16Array) -> None:
        ring = self._ring
        capacity = ring.shape[0]
        want = out.shape[0]
        n = min(want, self._count)
        read = self._read
        first = min(n, capacity - read)
        out[:first] = ring[read:read + first]
        if first < n:
            out[first:n] = ring[:n - first]
        if n < want:
            out[n:] = 0
            if n == 0:
                self.underruns += 1
        self._read = (read + n) % capacity
        self._count -= n


class RecordingTap:
    """Feeds one ``CallRecorder`` a frame per tick: left = caller (+ prompts), right = agent."""

    def __init__(self, engine: MediaEngine, caller: MediaLeg, recorder: CallRecorder,
                 on_error: Callable[[RecordingError], None] | None) -> None:
        self._engine = engine
        self.caller = caller
        self.agent: MediaLeg | None = None
        self.recorder = recorder
        self._on_error = on_error
        self.active = True
        self.paused = False  # PCI: write silence on both channels while set
        self.error: RecordingError | None = None
        n = engine.frame_samples
        self._left: Int16Array = np.zeros(n, dtype=np.int16)
        self._right: Int16Array = np.zeros(n, dtype=np.int16)
        self._mix: npt.NDArray[np.int32] = np.zeros(n, dtype=np.int32)
        caller.fifo = JitterFifo(FIFO_FRAMES * n)

    def attach_agent(self, leg: MediaLeg) -> None:
        """Record ``leg``'s inbound audio on the right channel (replacing any previous agent)."""
        if self.agent is not None and self.agent is not leg:
            self.detach_agent()
        self.agent = leg
        if leg.fifo is None:
            leg.fifo = JitterFifo(FIFO_FRAMES * self._engine.frame_samples)

    def detach_agent(self) -> None:
        """Right channel back to silence."""
        if self.agent is not None:
            self.agent.fifo = None
            self.agent = None

    def stop(self) -> None:
        """Stop feeding the recorder (it is not finished here); idempotent."""
        if not self.active:
            return
        self.active = False
        self.detach_agent()
        self.caller.fifo = None
        self._engine._taps.pop(self, None)

    def _frame(self, frame_no: int) -> None:
        left, right = self._left, self._right
        caller = self.caller
        if caller.fifo is not None:
            caller.fifo.pop_into(left)
        else:
            left[:] = 0
        played = caller.played_samples(frame_no)
        if played is not None:
            mix = self._mix
            np.add(left, played, out=mix, dtype=np.int32)
            np.maximum(mix, -32768, out=mix)
            np.minimum(mix, 32767, out=mix)
            left[:] = mix
        agent = self.agent
        if agent is not None and agent.fifo is not None:
            agent.fifo.pop_into(right)
        else:
            right[:] = 0
        if self.paused:
            left[:] = 0
            right[:] = 0
        try:
            self.recorder.write(left, right)
        except RecordingError as e:
            self.error = e
            self.stop()
            log.error("call {call_id}: recording stopped: {error}", call_id=caller.call_id,
                      error=str(e))
            if self._on_error is not None:
                self._on_error(e)
