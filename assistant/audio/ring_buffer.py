"""A bounded ring of int16 PCM samples shared by one writer and one reader thread.

The writer (the asyncio thread) calls ``write`` and ``flush``; the reader (the
audio device callback) calls ``read_into``. Neither side blocks or takes a lock:
each side advances only its own counter, the counters only grow, and each side
publishes its counter after touching the samples, which the GIL keeps ordered.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Samples = NDArray[np.int16]


class PcmRingBuffer:
    """Holds up to ``capacity`` samples; a write that does not fit drops its newest samples."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._samples: Samples = np.zeros(capacity, dtype=np.int16)
        self._capacity = capacity
        self._written_total = 0  # advanced by the writer only
        self._read_total = 0  # advanced by the reader only
        self._discard_before = 0  # set by flush(): the reader skips everything written before it
        self._dropped_total = 0  # writer only

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def available(self) -> int:
        """Samples waiting to be read (flushed ones excluded)."""
        return self._written_total - max(self._read_total, self._discard_before)

    @property
    def free(self) -> int:
        """Samples a write can take without dropping any."""
        return self._capacity - (self._written_total - self._read_total)

    @property
    def dropped_samples(self) -> int:
        """Samples refused by ``write`` because the ring was full."""
        return self._dropped_total

    @property
    def written_samples(self) -> int:
        """Samples ever taken by ``write`` (a position in the stream of all writes)."""
        return self._written_total

    @property
    def read_samples(self) -> int:
        """Position up to which the reader has consumed or skipped samples."""
        return self._read_total

    def write(self, samples: Samples) -> int:
        """Appends what fits and returns how many samples were taken; never blocks."""
        wanted = len(samples)
        count = min(wanted, self.free)
        if count < wanted:
            self._dropped_total += wanted - count
        if count <= 0:
            return 0
        start = self._written_total % self._capacity
        first = min(count, self._capacity - start)
        self._samples[start : start + first] = samples[:first]
        if count > first:
            self._samples[: count - first] = samples[first:count]
        self._written_total += count
        return count

    def read_into(self, out: Samples) -> int:
        """Fills the head of ``out`` with the oldest samples; returns how many. Reader side only."""
        read_total = max(self._read_total, self._discard_before)
        count = min(len(out), self._written_total - read_total)
        if count <= 0:
            self._read_total = read_total
            return 0
        start = read_total % self._capacity
        first = min(count, self._capacity - start)
        out[:first] = self._samples[start : start + first]
        if count > first:
            out[first:count] = self._samples[: count - first]
        self._read_total = read_total + count
        return count

    def flush(self) -> None:
        """Discards everything written so far; the reader's next read skips it. Writer side only."""
        self._discard_before = self._written_total
