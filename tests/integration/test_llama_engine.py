"""LlamaLocalLLM with the real SmolLM2 model from its package."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from backend.config import LLMConfig, TTSConfig
from backend.engines.base import ChatMessage, EngineError
from backend.engines.core_share import SpeechActivity, speech_activity
from backend.engines.factory import build_llm, build_tts
from backend.engines.llm.llama_local import LlamaLocalLLM, auto_batch_threads, auto_threads
from backend.engines.llm.openai_chat import OpenAIChatLLM
from backend.engines.tts.openai_speech import OpenAISpeechTTS
from backend.engines.tts.piper_local import PiperTTS
from backend.models.manager import ModelManager
from tests.integration.conftest import ignore_progress, run_bounded

COUNTING = [
    ChatMessage("system", "You are a helpful assistant."),
    ChatMessage("user", "Count from one to one hundred in words, separated by commas."),
]
GREETING = [ChatMessage("system", "You are brief."), ChatMessage("user", "Say hello to Ada.")]


def smol_config(**overrides: object) -> LLMConfig:
    settings: dict[str, object] = {"model": "smollm2", "context_tokens": 1024, "max_tokens": 48}
    settings.update(overrides)
    return LLMConfig(**settings)  # type: ignore[arg-type]


def test_thread_counts_follow_the_core_count() -> None:
    assert auto_threads(0, cores=1) == 1
    assert auto_threads(0, cores=2) == 1
    assert auto_threads(0, cores=8) == 7
    assert auto_threads(3, cores=8) == 3
    assert auto_batch_threads(0, cores=2) == 2
    assert auto_batch_threads(1, cores=8) == 1


def test_stream_before_load_is_an_engine_error(tmp_path: Path) -> None:
    engine = LlamaLocalLLM(smol_config(), ModelManager(tmp_path))

    async def scenario() -> None:
        try:
            with pytest.raises(EngineError, match="not loaded"):
                async for _ in engine.stream(GREETING):
                    pass
        finally:
            await engine.aclose()

    run_bounded(scenario(), 30)


def test_load_of_a_file_that_is_not_gguf_is_an_engine_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a model")
    engine = LlamaLocalLLM(smol_config(model=str(fake)), ModelManager(tmp_path))

    async def scenario() -> None:
        try:
            with pytest.raises(EngineError, match="not a GGUF"):
                await engine.load(ignore_progress)
        finally:
            await engine.aclose()

    run_bounded(scenario(), 30)


def test_speech_activity_counts_overlapping_syntheses() -> None:
    activity = SpeechActivity()
    assert not activity.busy
    with activity.synthesizing():
        with activity.synthesizing():
            assert activity.busy
        assert activity.busy
    assert not activity.busy
    with pytest.raises(RuntimeError), activity.synthesizing():
        raise RuntimeError("a failed synthesis still ends")
    assert not activity.busy


@pytest.mark.slow
def test_decoding_takes_every_core_only_while_speech_is_idle(engine_models: ModelManager) -> None:
    engine = LlamaLocalLLM(smol_config(max_tokens=200), engine_models)
    engine.threads, engine.idle_threads, engine.batch_threads = 1, 2, 2  # as on 2 cores, whatever this machine has

    async def scenario() -> list[int]:
        seen: list[int] = []
        try:
            await asyncio.wait_for(engine.load(ignore_progress), 120)
            stream = engine.stream(COUNTING)

            async def read_until_threads(wanted: int) -> None:
                """Reads pieces (each lets the worker decode one more token) until it runs on ``wanted``."""
                for _ in range(20):
                    await asyncio.wait_for(anext(stream), 60)
                    await asyncio.sleep(0.02)  # the worker wakes on its own thread
                    if engine.decode_threads == wanted:
                        break
                seen.append(engine.decode_threads)

            await read_until_threads(2)
            with speech_activity.synthesizing():
                await read_until_threads(1)
            await read_until_threads(2)
            await asyncio.wait_for(stream.aclose(), 40)
            return seen
        finally:
            await asyncio.wait_for(engine.aclose(), 60)

    assert run_bounded(scenario(), 300) == [2, 1, 2]


@pytest.mark.slow
def test_streams_a_reply(engine_models: ModelManager) -> None:
    engine = LlamaLocalLLM(smol_config(), engine_models)
    steps: list[str] = []

    async def scenario() -> list[str]:
        try:
            await asyncio.wait_for(engine.load(lambda step, _: steps.append(step)), 120)
            pieces: list[str] = []

            async def collect() -> None:
                async for piece in engine.stream(GREETING):
                    pieces.append(piece)

            await asyncio.wait_for(collect(), 120)
            return pieces
        finally:
            await asyncio.wait_for(engine.aclose(), 60)

    pieces = run_bounded(scenario(), 300)

    assert len(pieces) > 1
    assert "".join(pieces).strip()
    assert engine.name == "smollm2-135m (embedded)"
    assert any("Loading" in step for step in steps)


@pytest.mark.slow
def test_cancel_mid_stream_stops_promptly_and_the_engine_works_again(engine_models: ModelManager) -> None:
    engine = LlamaLocalLLM(smol_config(max_tokens=400), engine_models)

    async def scenario() -> tuple[int, int, float, int, str]:
        try:
            await asyncio.wait_for(engine.load(ignore_progress), 120)
            pieces: list[str] = []
            three_pieces = asyncio.Event()

            async def consume() -> None:
                async for piece in engine.stream(COUNTING):
                    pieces.append(piece)
                    if len(pieces) == 3:
                        three_pieces.set()

            consumer = asyncio.ensure_future(consume())
            await asyncio.wait_for(three_pieces.wait(), 120)
            consumer.cancel()
            started = time.monotonic()
            done, _ = await asyncio.wait({consumer}, timeout=40)
            stop_s = time.monotonic() - started
            assert consumer in done and consumer.cancelled()
            at_cancel = len(pieces)
            await asyncio.sleep(0.5)  # a runaway worker would keep appending
            after_pause = len(pieces)

            # closing the stream (break + aclose) also stops it
            stream = engine.stream(COUNTING)
            first = await asyncio.wait_for(anext(stream), 120)
            await asyncio.wait_for(stream.aclose(), 40)

            again: list[str] = []

            async def collect() -> None:
                async for piece in engine.stream(GREETING):
                    again.append(piece)

            await asyncio.wait_for(collect(), 120)
            return at_cancel, after_pause, stop_s, len(again), first
        finally:
            await asyncio.wait_for(engine.aclose(), 60)

    at_cancel, after_pause, stop_s, again, first = run_bounded(scenario(), 400)

    assert at_cancel == after_pause
    assert at_cancel < 400
    assert stop_s < 30  # generous: one token takes milliseconds
    assert first
    assert again > 0


def test_factory_builds_the_configured_engines(tmp_path: Path) -> None:
    models = ModelManager(tmp_path)

    assert isinstance(build_llm(LLMConfig(provider="embedded", model="fast"), models), LlamaLocalLLM)
    assert isinstance(build_llm(LLMConfig(provider="OpenAI", model="gpt-4o-mini"), models), OpenAIChatLLM)
    assert isinstance(build_tts(TTSConfig(provider="embedded"), models), PiperTTS)
    assert isinstance(build_tts(TTSConfig(provider="openai"), models), OpenAISpeechTTS)
    assert build_tts(TTSConfig(provider="off"), models) is None
    with pytest.raises(EngineError, match="embedded, openai"):
        build_llm(LLMConfig(provider="ollama"), models)
    with pytest.raises(EngineError, match="embedded, openai, off"):
        build_tts(TTSConfig(provider="espeak"), models)
