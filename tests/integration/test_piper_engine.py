"""PiperTTS with the real joe voice from its package."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from backend.config import TTSConfig
from backend.engines.base import EngineError, Pcm16
from backend.engines.tts.piper_local import PiperTTS
from backend.models.manager import ModelManager
from tests.integration.conftest import ignore_progress, run_bounded


def rms(audio: Pcm16) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))


def test_a_missing_voice_file_is_an_engine_error(tmp_path: Path) -> None:
    engine = PiperTTS(TTSConfig(voice=str(tmp_path / "nobody.onnx")), ModelManager(tmp_path))

    async def scenario() -> None:
        try:
            with pytest.raises(EngineError, match="does not exist"):
                await engine.load(ignore_progress)
        finally:
            await engine.aclose()

    run_bounded(scenario(), 30)


@pytest.mark.slow
def test_speaks_two_sentences_as_two_int16_chunks(engine_models: ModelManager) -> None:
    engine = PiperTTS(TTSConfig(), engine_models)

    async def scenario() -> tuple[list[Pcm16], list[Pcm16]]:
        try:
            await asyncio.wait_for(engine.load(ignore_progress), 60)

            async def collect(text: str) -> list[Pcm16]:
                return [chunk async for chunk in engine.synthesize(text)]

            spoken = await asyncio.wait_for(collect("The weather is nice today. Shall we go for a walk?"), 60)
            blank = await asyncio.wait_for(collect("   \n"), 10)
            return spoken, blank
        finally:
            await asyncio.wait_for(engine.aclose(), 20)

    chunks, blank = run_bounded(scenario(), 180)

    assert engine.sample_rate == 22050
    assert engine.name == "piper joe"
    assert len(chunks) == 2
    for chunk in chunks:
        assert chunk.dtype == np.int16 and chunk.ndim == 1
        assert 0.5 < len(chunk) / engine.sample_rate < 10.0
        assert rms(chunk) > 500
    assert blank == []


@pytest.mark.slow
def test_speed_shortens_the_audio(engine_models: ModelManager) -> None:
    text = "This sentence is spoken at two different speeds."

    async def duration(speed: float) -> int:
        engine = PiperTTS(TTSConfig(speed=speed), engine_models)
        try:
            await asyncio.wait_for(engine.load(ignore_progress), 60)

            async def collect() -> int:
                return sum([len(chunk) async for chunk in engine.synthesize(text)])

            return await asyncio.wait_for(collect(), 60)
        finally:
            await asyncio.wait_for(engine.aclose(), 20)

    normal = run_bounded(duration(1.0), 120)
    fast = run_bounded(duration(1.5), 120)

    assert fast < normal * 0.85


@pytest.mark.slow
def test_cancel_stops_synthesis_between_sentences(engine_models: ModelManager) -> None:
    engine = PiperTTS(TTSConfig(), engine_models)
    long_text = " ".join(f"This is sentence number {n} of a very long story." for n in range(300))

    async def scenario() -> tuple[bool, int]:
        try:
            await asyncio.wait_for(engine.load(ignore_progress), 60)
            chunks: list[Pcm16] = []
            first = asyncio.Event()

            async def consume() -> None:
                async for chunk in engine.synthesize(long_text):
                    chunks.append(chunk)
                    first.set()

            task = asyncio.ensure_future(consume())
            await asyncio.wait_for(first.wait(), 60)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=10)
            # The worker must be free again: all 300 sentences would take far longer than this bound.

            async def speak_short() -> int:
                return len([c async for c in engine.synthesize("Hi.")])

            short = await asyncio.wait_for(speak_short(), 8)
            return task in done and task.cancelled(), short
        finally:
            await asyncio.wait_for(engine.aclose(), 20)

    cancelled, short_chunks = run_bounded(scenario(), 180)

    assert cancelled
    assert short_chunks == 1
