"""AudioPlayer on a real sound device: the PulseAudio null sink, recorded from its monitor.

Start the virtual sound card first: eval "$(tests/audio_env.sh)". Without a
PulseAudio server the audio tests are skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.audio.device import AudioUnavailable, parse_device
from assistant.audio.player import AudioPlayer
from tests.monitor_recorder import recording_monitor

RATE = 22050
FRAME = RATE * 40 // 1000  # 40 ms, as the backend sends


def tone(freq: float, seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


@pytest.fixture
def recording(pulseaudio: str, tmp_path: Path) -> Iterator[Path]:
    """Records the null sink's monitor to a raw s16le mono file while the test runs."""
    with recording_monitor(tmp_path / "monitor.raw", RATE) as path:
        yield path


def peak_frequency(samples: np.ndarray, rate: int = RATE) -> float:
    window = samples.astype(np.float64) * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(window))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def loud(samples: np.ndarray, threshold: int = 2000) -> np.ndarray:
    """The recorded samples from the first to the last loud one."""
    idx = np.flatnonzero(np.abs(samples) > threshold)
    return samples[idx[0] : idx[-1] + 1] if len(idx) else samples[:0]


async def feed_paced(player: AudioPlayer, pcm: np.ndarray, lead_s: float = 0.5) -> None:
    """Feeds like the backend: a head start, then 40 ms frames a little faster than real time."""
    head = int(lead_s * RATE)
    player.feed(pcm[:head])
    for start in range(head, len(pcm), FRAME):
        player.feed(pcm[start : start + FRAME])
        await asyncio.sleep(0.02)


@pytest.mark.audio
def test_a_tone_is_played_whole_and_without_underruns(recording: Path) -> None:
    pcm = tone(880.0, 2.0)

    async def body() -> None:
        player = AudioPlayer()
        try:
            player.begin_stream(RATE)
            started = time.monotonic()
            await feed_paced(player, pcm)
            player.end_stream()
            assert await player.wait_drained(10.0)
            assert player.samples_played == len(pcm)
            assert player.underruns == 0
            first = player.first_audio_monotonic
            assert first is not None and started <= first < started + 2.0
        finally:
            player.close()

    asyncio.run(asyncio.wait_for(body(), 30.0))
    time.sleep(0.3)  # the tail reaches the monitor
    heard = loud(np.fromfile(recording, dtype=np.int16))
    assert len(heard) > 1.5 * RATE, f"only {len(heard) / RATE:.2f} s of the tone was recorded"
    assert abs(peak_frequency(heard[:RATE]) - 880.0) < 15.0


@pytest.mark.audio
def test_flush_silences_the_output_at_once(recording: Path) -> None:
    pcm = tone(440.0, 6.0)

    async def body() -> float:
        player = AudioPlayer()
        try:
            player.begin_stream(RATE)
            player.feed(pcm)
            await asyncio.sleep(0.8)
            assert player.is_playing
            player.flush()
            flushed_at = time.monotonic()
            assert player.drained and player.queued_seconds == 0.0
            await asyncio.sleep(1.0)
            assert player.underruns == 0  # a flush ends the stream: silence after it is no underrun
            assert player.samples_played < len(pcm) // 2
            return flushed_at
        finally:
            player.close()

    asyncio.run(asyncio.wait_for(body(), 30.0))
    samples = np.fromfile(recording, dtype=np.int16)
    heard = loud(samples)
    assert 0.3 * RATE < len(heard) < 2.0 * RATE, f"{len(heard) / RATE:.2f} s of tone after a flush at 0.8 s"
    assert np.abs(samples[-int(0.5 * RATE) :]).max() < 200  # silent after the flush


@pytest.mark.audio
def test_a_new_sample_rate_reopens_the_device(recording: Path) -> None:
    async def body() -> None:
        player = AudioPlayer()
        try:
            player.begin_stream(RATE)
            player.feed(tone(440.0, 0.3))
            player.end_stream()
            assert await player.wait_drained(5.0)
            player.begin_stream(16000)
            assert player.sample_rate == 16000
            player.feed(tone(1000.0, 0.5, rate=16000))
            player.end_stream()
            assert await player.wait_drained(5.0)
            assert player.samples_played == 8000
        finally:
            player.close()

    asyncio.run(asyncio.wait_for(body(), 30.0))


def test_an_unknown_device_is_a_clear_text_only_message() -> None:
    player = AudioPlayer("no-such-device-for-parley-tests")
    with pytest.raises(AudioUnavailable) as caught:
        player.open(RATE)
    assert "no-such-device-for-parley-tests" in caught.value.user_message
    assert "text only" in caught.value.user_message
    assert not player.is_open
    assert player.feed(b"\0\0" * 10) == 0  # no stream: feeding is harmless


def test_device_setting_parsing() -> None:
    assert parse_device("") is None
    assert parse_device("  ") is None
    assert parse_device("3") == 3
    assert parse_device("pulse") == "pulse"
