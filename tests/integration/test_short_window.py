"""Whisper on a window sized to the utterance: as accurate on questions, silent on silence and noise."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from backend.engines.stt.short_window import FULL_WINDOW_FRAMES, MIN_WINDOW_FRAMES, window_frames
from backend.engines.stt.whisper_local import WhisperLocalSTT
from tests.integration.conftest import run_bounded
from tests.integration.test_whisper_stt import SENTENCES, word_error_rate
from tests.spoken import espeak, silence


def test_the_window_covers_the_utterance_in_steps() -> None:
    assert window_frames(100) == MIN_WINDOW_FRAMES
    assert window_frames(950) == 1500
    assert window_frames(2950) == FULL_WINDOW_FRAMES
    assert window_frames(5000) == FULL_WINDOW_FRAMES


def transcribe(engine: WhisperLocalSTT, clips: list[np.ndarray]) -> list[str]:
    async def scenario() -> list[str]:
        return [await asyncio.wait_for(engine.transcribe(clip), 60) for clip in clips]

    return run_bounded(scenario(), 300)


@pytest.mark.slow
def test_short_and_full_windows_agree_on_spoken_questions(tiny: WhisperLocalSTT) -> None:
    clips = [np.concatenate([silence(0.3), espeak(s), silence(0.5)]) for s in SENTENCES]
    assert tiny.short_window
    short = transcribe(tiny, clips)
    tiny.short_window = False
    try:
        full = transcribe(tiny, clips)
    finally:
        tiny.short_window = True
    assert word_error_rate(list(SENTENCES), short) < 0.15, short
    assert word_error_rate(full, short) < 0.15, (full, short)


@pytest.mark.slow
def test_silence_and_noise_give_no_words(tiny: WhisperLocalSTT) -> None:
    noise = (np.random.default_rng(1).standard_normal(32000) * 330).astype(np.int16)
    hum = (np.sin(np.arange(48000) * 2 * np.pi * 100 / 16000) * 2000).astype(np.int16)
    assert transcribe(tiny, [silence(2.0), noise, hum]) == ["", "", ""]
