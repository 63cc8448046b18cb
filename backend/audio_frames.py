"""Cutting synthesized PCM into wire frames, and pacing them against real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

from backend.engines.base import Pcm16

FRAME_SECONDS = 0.04
"""Audio goes out in frames of 40 ms, so an interrupt takes effect quickly."""

LEAD_SECONDS = 2.0
"""How far audio may run ahead of real time; the client buffer never holds more than this."""


def iter_frames(pcm: Pcm16, sample_rate: int) -> Iterator[bytes]:
    """All of ``pcm`` in frames, the last one possibly short."""
    per_frame = max(1, int(sample_rate * FRAME_SECONDS))
    for i in range(0, pcm.size, per_frame):
        yield pcm[i : i + per_frame].astype("<i2", copy=False).tobytes()


class AudioPacer:
    """Keeps a stream at most ``lead_s`` ahead of real time, measured from its first frame."""

    def __init__(
        self,
        sample_rate: int,
        lead_s: float = LEAD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = sample_rate
        self._lead = lead_s
        self._clock = clock
        self._started: float | None = None
        self._sent_samples = 0

    @property
    def sent_seconds(self) -> float:
        return self._sent_samples / self._rate

    def ahead_seconds(self) -> float:
        """Audio sent but not yet due to be played, in seconds (0 before the first frame)."""
        if self._started is None:
            return 0.0
        return max(0.0, self.sent_seconds - (self._clock() - self._started))

    async def before_send(self, samples: int) -> None:
        """Waits until ``samples`` more may be sent; on cancel, returns nothing and sends nothing."""
        if self._started is None:
            self._started = self._clock()
        excess = self.ahead_seconds() - self._lead
        if excess > 0:
            await asyncio.sleep(excess)
        self._sent_samples += samples
