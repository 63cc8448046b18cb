"""What the speakers actually played, on a 16 kHz timeline: the echo canceller's reference.

The audio player's device callback writes every block it hands to the device
(silence included) with the time the block will reach the speaker (PortAudio's
DAC time, moved onto ``time.monotonic``). The tap resamples the blocks to 16 kHz
and stores them in a bounded ring indexed by time, so the microphone side can ask
"what was playing at this moment" for each 10 ms frame it captures. A block's
position comes from counting samples since the stream's first block (the device
clock is what paces them); when the reported time drifts away from the count by
more than ``REANCHOR_S`` (an overflow, a device change), the timeline is re-anchored.

One writer (the output callback) and one reader (the microphone's processing
thread); neither blocks or takes a lock. Unwritten positions read as silence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import numpy as np

from assistant.audio.resample import Pcm16, Resampler

RATE: Final = 16000
DEFAULT_SECONDS: Final = 4.0
REANCHOR_S: Final = 0.03


class PlaybackTap:
    """A bounded ring of the last ``seconds`` of played audio, by monotonic time; see the module docstring."""

    def __init__(self, seconds: float = DEFAULT_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = max(RATE // 10, int(seconds * RATE))
        self._ring = np.zeros(self._capacity, dtype=np.int16)
        self._origin = clock()  # timeline position 0
        self._head = 0  # one past the last position written (advanced after the samples)
        self._resampler: Resampler | None = None
        self._source_rate = 0
        self._anchor_time = 0.0  # DAC time of the first input sample since the last anchor
        self._anchor_position = 0  # timeline position of that sample
        self._inputs = 0  # input samples since the anchor
        self._outputs = 0  # 16 kHz samples since the anchor
        self.reanchors = 0
        self.disruptions = 0
        """Times the played timeline slipped (re-anchored, or the device ran dry); the player adds its own."""

    @property
    def written_until(self) -> int:
        """One past the last timeline position written: what has not been handed to the device yet starts here."""
        return self._head

    def position(self, at: float) -> int:
        """The timeline position (16 kHz samples) of monotonic time ``at``."""
        return round((at - self._origin) * RATE)

    def write(self, block: Pcm16, sample_rate: int, dac_time: float) -> None:
        """Output callback side: ``block`` (1-D int16 at ``sample_rate``) starts sounding at ``dac_time``."""
        if self._resampler is None or sample_rate != self._source_rate or self._drifted(dac_time, sample_rate):
            self._anchor(sample_rate, dac_time)
        assert self._resampler is not None
        out = self._resampler.process(block)
        self._inputs += block.size
        if out.size:
            self._store(self._anchor_position + self._outputs, out)
            self._outputs += out.size

    def read(self, at: float, count: int) -> Pcm16:
        """Reader side: the ``count`` samples that played from monotonic time ``at`` on (silence where none)."""
        return self.read_at(self.position(at), count)

    def read_at(self, start: int, count: int) -> Pcm16:
        """Reader side: ``count`` samples from timeline position ``start`` (read a stream by counting on)."""
        out = np.zeros(count, dtype=np.int16)
        head = self._head
        first = max(start, head - self._capacity, 0)
        last = min(start + count, head)
        if last > first:
            index = np.arange(first, last) % self._capacity
            out[first - start : last - start] = self._ring[index]
        return out

    def reset(self) -> None:
        """Forgets the stream position (the next write anchors anew); played audio stays readable."""
        self._resampler = None

    def _drifted(self, dac_time: float, sample_rate: int) -> bool:
        expected = self._anchor_time + self._inputs / sample_rate
        return abs(dac_time - expected) > REANCHOR_S

    def _anchor(self, sample_rate: int, dac_time: float) -> None:
        if self._resampler is not None:
            self.reanchors += 1
            self.disruptions += 1
        self._resampler = Resampler(sample_rate, RATE)
        self._source_rate = sample_rate
        self._anchor_time = dac_time
        self._anchor_position = self.position(dac_time)
        self._inputs = 0
        self._outputs = 0

    def _store(self, position: int, samples: Pcm16) -> None:
        head = self._head
        if position > head:  # a gap (the stream paused): it was silent
            gap = min(position - head, self._capacity)
            self._put(position - gap, np.zeros(gap, dtype=np.int16))
        if samples.size > self._capacity:
            position += samples.size - self._capacity
            samples = samples[-self._capacity :]
        self._put(position, samples)
        self._head = max(head, position + samples.size)

    def _put(self, position: int, samples: Pcm16) -> None:
        start = position % self._capacity
        first = min(samples.size, self._capacity - start)
        self._ring[start : start + first] = samples[:first]
        if samples.size > first:
            self._ring[: samples.size - first] = samples[first:]
