"""``PlaybackTap``: what the speakers played, by time, at 16 kHz."""

from __future__ import annotations

import numpy as np

from assistant.audio.playback_tap import PlaybackTap
from assistant.audio.resample import resample

T0 = 100.0


def tone(seconds: float, rate: int, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * 10000).astype(np.int16)


def play(tap: PlaybackTap, audio: np.ndarray, rate: int, start: float, block: int = 1024) -> None:
    for i in range(0, audio.size, block):
        tap.write(audio[i : i + block], rate, start + i / rate)


def test_blocks_are_found_again_at_their_time_resampled_to_16k() -> None:
    tap = PlaybackTap(seconds=4.0, clock=lambda: T0)
    sound = tone(1.0, 22050)
    play(tap, sound, 22050, T0 + 0.5)
    expected = resample(sound, 22050, 16000)
    got = tap.read(T0 + 0.5, expected.size)
    assert np.max(np.abs(got[:-40].astype(int) - expected[:-40].astype(int))) <= 2  # the stream's tail is pending
    assert not np.any(tap.read(T0 + 0.2, 4000)), "before the sound: silence"
    assert tap.read_at(tap.position(T0 + 0.5) + 800, 10).tolist() == got[800:810].tolist()


def test_a_gap_in_the_writes_reads_as_silence_and_re_anchors() -> None:
    tap = PlaybackTap(seconds=4.0, clock=lambda: T0)
    play(tap, tone(0.2, 16000), 16000, T0)
    play(tap, tone(0.2, 16000), 16000, T0 + 0.5)  # the device paused 0.3 s
    assert tap.reanchors == 1 and tap.disruptions == 1
    assert not np.any(tap.read(T0 + 0.25, 3000))
    assert np.any(tap.read(T0 + 0.5, 1600))


def test_it_holds_only_its_capacity() -> None:
    tap = PlaybackTap(seconds=1.0, clock=lambda: T0)
    play(tap, tone(3.0, 16000), 16000, T0)
    assert not np.any(tap.read(T0, 16000)), "the first second was overwritten"
    assert np.any(tap.read(T0 + 2.5, 1600))
