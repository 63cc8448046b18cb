"""The PCM ring buffer and the per-block playback logic (no sound device needed)."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.audio.playback_state import StreamState, fill_block
from assistant.audio.ring_buffer import PcmRingBuffer


def ramp(start: int, count: int) -> np.ndarray:
    return (np.arange(start, start + count) % 30000).astype(np.int16)


def read(ring: PcmRingBuffer, count: int) -> np.ndarray:
    out = np.full(count, -1, dtype=np.int16)
    got = ring.read_into(out)
    return out[:got]


def test_samples_come_out_in_order_across_the_wraparound() -> None:
    ring = PcmRingBuffer(10)
    written = 0
    expected_next = 0
    for chunk in (7, 3, 6, 9, 4, 10, 1):
        assert ring.write(ramp(written, chunk)) == chunk
        written += chunk
        got = read(ring, chunk)
        assert got.tolist() == ramp(expected_next, chunk).tolist()
        expected_next += chunk
    assert ring.available == 0
    assert ring.dropped_samples == 0


def test_partial_reads_leave_the_rest_in_order() -> None:
    ring = PcmRingBuffer(8)
    ring.write(ramp(0, 6))
    assert read(ring, 4).tolist() == [0, 1, 2, 3]
    ring.write(ramp(6, 5))  # wraps
    assert ring.available == 7
    assert read(ring, 100).tolist() == list(range(4, 11))


def test_overflow_drops_the_newest_samples_and_counts_them() -> None:
    ring = PcmRingBuffer(10)
    assert ring.write(ramp(0, 8)) == 8
    assert ring.write(ramp(8, 5)) == 2
    assert ring.dropped_samples == 3
    assert ring.free == 0
    assert ring.write(ramp(13, 4)) == 0
    assert ring.dropped_samples == 7
    assert read(ring, 10).tolist() == list(range(10))  # the oldest were kept, in order


def test_flush_discards_everything_written_before_it() -> None:
    ring = PcmRingBuffer(16)
    ring.write(ramp(0, 12))
    read(ring, 2)
    ring.flush()
    assert ring.available == 0
    ring.write(ramp(100, 3))  # written after the flush: kept
    assert read(ring, 16).tolist() == [100, 101, 102]
    assert ring.available == 0


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PcmRingBuffer(0)


def test_fill_block_plays_silence_when_dry_and_counts_one_underrun_per_dry_spell() -> None:
    ring = PcmRingBuffer(100)
    state = StreamState(sample_rate=1000, first_sample=0)
    block = np.ones(10, dtype=np.int16)
    assert fill_block(block, ring, state) == 0
    assert not block.any() and state.underruns == 0  # not started yet: waiting is not an underrun
    ring.write(ramp(1, 15))
    assert fill_block(block, ring, state, clock=lambda: 42.0) == 10
    assert state.first_audio_monotonic == 42.0
    assert fill_block(block, ring, state) == 5
    assert block[5:].tolist() == [0] * 5
    assert state.underruns == 1
    fill_block(block, ring, state)
    fill_block(block, ring, state)
    assert state.underruns == 1  # one dry spell, one underrun
    ring.write(ramp(0, 10))
    fill_block(block, ring, state)
    ring.write(ramp(0, 3))
    fill_block(block, ring, state)
    assert state.underruns == 2
    assert state.samples_played == 28


def test_running_dry_after_the_end_is_not_an_underrun() -> None:
    ring = PcmRingBuffer(100)
    state = StreamState(sample_rate=1000, first_sample=0)
    ring.write(ramp(1, 25))
    state.ended = True
    block = np.zeros(10, dtype=np.int16)
    for _ in range(5):
        fill_block(block, ring, state)
    assert state.underruns == 0
    assert state.samples_played == 25


def test_samples_of_a_previous_stream_are_not_counted_as_played() -> None:
    ring = PcmRingBuffer(100)
    ring.write(ramp(1, 30))
    state = StreamState(sample_rate=1000, first_sample=ring.written_samples)  # began after those 30
    block = np.zeros(10, dtype=np.int16)
    fill_block(block, ring, state)
    assert state.samples_played == 0
    assert state.first_audio_monotonic is None
    ring.write(ramp(1, 30))
    for _ in range(6):
        fill_block(block, ring, state)
    assert state.samples_played == 30
