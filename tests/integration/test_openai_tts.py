"""OpenAISpeechTTS against the hand-written speech server in tests/fakes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from backend.config import TTSConfig
from backend.engines.base import EngineError, Pcm16
from backend.engines.tts.openai_speech import OPENAI_PCM_SAMPLE_RATE, OpenAISpeechTTS, PcmAssembler
from tests.fakes.speech_server import SpeechServer
from tests.integration.conftest import ignore_progress, run_bounded

KEY = "sk-speech-test-key-7777777777"


@pytest.fixture
def speech_server() -> Iterator[SpeechServer]:
    with SpeechServer() as server:
        yield server


def speech_config(base_url: str, model: str = "tts-1", **overrides: object) -> TTSConfig:
    settings: dict[str, object] = {
        "provider": "openai", "model": model, "base_url": base_url, "api_key": KEY, "timeout_s": 10.0
    }
    settings.update(overrides)
    return TTSConfig(**settings)  # type: ignore[arg-type]


def synthesize_all(config: TTSConfig, text: str = "Hello there.") -> list[Pcm16]:
    engine = OpenAISpeechTTS(config)

    async def scenario() -> list[Pcm16]:
        try:
            await asyncio.wait_for(engine.load(ignore_progress), 10)

            async def collect() -> list[Pcm16]:
                return [chunk async for chunk in engine.synthesize(text)]

            return await asyncio.wait_for(collect(), 30)
        finally:
            await asyncio.wait_for(engine.aclose(), 10)

    return run_bounded(scenario(), 60)


def test_pcm_assembler_joins_samples_split_across_chunks() -> None:
    pcm = PcmAssembler()
    samples = np.array([1, -2, 300, -32768, 32767], dtype=np.int16)
    raw = samples.astype("<i2").tobytes()

    pieces = [pcm.feed(raw[:1]), pcm.feed(raw[1:4]), pcm.feed(raw[4:9]), pcm.feed(raw[9:])]

    arrays = [p for p in pieces if p is not None]
    assert pieces[0] is None
    assert all(a.dtype == np.int16 for a in arrays)
    assert np.array_equal(np.concatenate(arrays), samples)
    assert pcm.leftover == 0


def test_streams_the_servers_pcm_as_int16_chunks(speech_server: SpeechServer) -> None:
    chunks = synthesize_all(speech_config(speech_server.base_url))

    assert len(chunks) > 1
    assert all(isinstance(c, np.ndarray) and c.dtype == np.int16 and c.ndim == 1 for c in chunks)
    assert np.array_equal(np.concatenate(chunks), speech_server.samples)
    request = speech_server.requests[0]
    assert request["response_format"] == "pcm"
    assert request["input"] == "Hello there."
    assert request["voice"] == "alloy"  # the embedded default "joe" means nothing to OpenAI
    assert "speed" not in request
    assert speech_server.authorizations[0] == f"Bearer {KEY}"
    assert OpenAISpeechTTS(speech_config(speech_server.base_url)).sample_rate == OPENAI_PCM_SAMPLE_RATE


def test_voice_and_speed_are_passed_on(speech_server: SpeechServer) -> None:
    synthesize_all(speech_config(speech_server.base_url, voice="nova", speed=1.25))

    assert speech_server.requests[0]["voice"] == "nova"
    assert speech_server.requests[0]["speed"] == 1.25


def test_an_odd_body_length_loses_only_the_stray_byte(speech_server: SpeechServer) -> None:
    chunks = synthesize_all(speech_config(speech_server.base_url, model="tts-odd"))

    assert np.array_equal(np.concatenate(chunks), speech_server.samples)


def test_blank_text_makes_no_request(speech_server: SpeechServer) -> None:
    assert synthesize_all(speech_config(speech_server.base_url), text="  \n ") == []
    assert speech_server.requests == []


def test_wrong_key_is_a_clear_error_without_the_key(speech_server: SpeechServer) -> None:
    with pytest.raises(EngineError) as caught:
        synthesize_all(speech_config(speech_server.base_url, model="tts-unauthorized"))

    message = caught.value.user_message
    assert "401" in message and "tts.api_key" in message
    assert KEY not in message and "7777" not in message


def test_rate_limit_carries_retry_after(speech_server: SpeechServer) -> None:
    with pytest.raises(EngineError) as caught:
        synthesize_all(speech_config(speech_server.base_url, model="tts-rate-limited"))

    assert caught.value.retry_after_s == 7.0
    assert "429" in caught.value.user_message and "7 s" in caught.value.user_message


def test_server_error_is_reported_and_scrubbed(speech_server: SpeechServer) -> None:
    with pytest.raises(EngineError) as caught:
        synthesize_all(speech_config(speech_server.base_url, model="tts-broken"))

    message = caught.value.user_message
    assert "500" in message and "synthesis crashed" in message
    assert KEY not in message and "7777" not in message


def test_unreachable_server(unused_port: int) -> None:
    base_url = f"http://127.0.0.1:{unused_port}/v1"

    with pytest.raises(EngineError) as caught:
        synthesize_all(speech_config(base_url))

    assert caught.value.user_message.startswith(f"Cannot reach the speech server at {base_url}")


def test_cancel_closes_the_response(speech_server: SpeechServer) -> None:
    engine = OpenAISpeechTTS(speech_config(speech_server.base_url, model="tts-slow"))

    async def scenario() -> tuple[bool, int]:
        try:
            await asyncio.wait_for(engine.load(ignore_progress), 10)
            chunks: list[Pcm16] = []
            two_chunks = asyncio.Event()

            async def consume() -> None:
                async for chunk in engine.synthesize("A long story."):
                    chunks.append(chunk)
                    if len(chunks) == 2:
                        two_chunks.set()

            task = asyncio.ensure_future(consume())
            await asyncio.wait_for(two_chunks.wait(), 10)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=5)
            return task in done and task.cancelled(), sum(len(c) for c in chunks)
        finally:
            await asyncio.wait_for(engine.aclose(), 10)

    cancelled, samples = run_bounded(scenario(), 30)

    assert cancelled
    assert samples < 10 * OPENAI_PCM_SAMPLE_RATE
    assert speech_server.aborted.wait(timeout=8)  # the server saw the connection go away mid-stream
