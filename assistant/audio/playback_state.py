"""What the device callback does with each block, kept free of any device so it can be tested.

A ``StreamState`` belongs to one stream (one reply's audio). The player swaps in a
fresh one per stream, so the callback never sees counters of two streams mixed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from assistant.audio.ring_buffer import PcmRingBuffer, Samples


@dataclass
class StreamState:
    """Counters of one stream. The writer sets ``ended``; the device callback sets the rest."""

    sample_rate: int
    first_sample: int  # the ring's write count when the stream began: earlier samples are not ours
    ended: bool = False  # no more data will come (end announced, or flushed)
    started: bool = False  # the first sample of this stream reached the device
    dry: bool = False  # the last block could not be filled
    underruns: int = 0
    samples_played: int = 0
    first_audio_monotonic: float | None = None


def fill_block(
    out: Samples,
    ring: PcmRingBuffer,
    state: StreamState | None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Fills one device block from the ring (silence where it runs dry); returns samples taken.

    An underrun is counted once per dry spell, only while a started stream has not
    announced its end.
    """
    taken = ring.read_into(out)
    if taken < len(out):
        out[taken:] = 0
    if state is None:
        return taken
    read_end = ring.read_samples
    ours = read_end - max(read_end - taken, state.first_sample)
    if ours > 0:
        if not state.started:
            state.started = True
            state.first_audio_monotonic = clock()
        state.samples_played += ours
    if taken < len(out):
        if state.started and not state.ended and not state.dry:
            state.underruns += 1
        state.dry = True
    else:
        state.dry = False
    return taken
