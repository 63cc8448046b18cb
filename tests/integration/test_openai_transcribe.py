"""OpenAITranscribeSTT against the hand-written transcription server in tests/fakes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from backend.engines.base import EngineError, Pcm16
from backend.engines.stt.openai_transcribe import OpenAITranscribeSTT, wav_bytes
from tests.fakes.transcription_server import TranscriptionServer
from tests.integration.conftest import ignore_progress, run_bounded

KEY = "sk-transcribe-test-key-5555555555"


@dataclass(frozen=True)
class Settings:
    model: str = "whisper-1"
    base_url: str = ""
    api_key: str = KEY
    language: str = "en"
    threads: int = 0
    timeout_s: float = 10.0


@pytest.fixture
def stt_server() -> Iterator[TranscriptionServer]:
    with TranscriptionServer() as server:
        yield server


def utterance(seconds: float = 0.5) -> Pcm16:
    t = np.arange(int(16000 * seconds)) / 16000
    samples: Pcm16 = np.rint(np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16)
    return samples


def transcribe(settings: Settings, audio: Pcm16) -> str:
    engine = OpenAITranscribeSTT(settings)

    async def scenario() -> str:
        try:
            await asyncio.wait_for(engine.load(ignore_progress), 10)
            return await asyncio.wait_for(engine.transcribe(audio), 20)
        finally:
            await asyncio.wait_for(engine.aclose(), 10)

    return run_bounded(scenario(), 40)


def test_sends_a_wav_and_returns_the_text(stt_server: TranscriptionServer) -> None:
    audio = utterance()

    text = transcribe(Settings(base_url=stt_server.base_url), audio)

    assert text == "hello from the fake server"
    [request] = stt_server.requests
    assert (request.sample_rate, request.channels, request.sample_width) == (16000, 1, 2)
    assert np.array_equal(request.samples, audio)
    assert request.file_name.endswith(".wav")
    assert request.fields["model"] == "whisper-1"
    assert request.fields["language"] == "en"
    assert request.fields["response_format"] == "json"
    assert request.authorization == f"Bearer {KEY}"


def test_embedded_model_names_become_whisper_1_and_no_language_means_detect(
    stt_server: TranscriptionServer,
) -> None:
    transcribe(Settings(model="tiny", language="", base_url=stt_server.base_url), utterance())

    [request] = stt_server.requests
    assert request.fields["model"] == "whisper-1"
    assert "language" not in request.fields


def test_too_short_audio_is_not_sent(stt_server: TranscriptionServer) -> None:
    assert transcribe(Settings(base_url=stt_server.base_url), utterance(0.05)) == ""
    assert stt_server.requests == []


def test_a_rejected_key_is_a_clear_error_without_the_key(stt_server: TranscriptionServer) -> None:
    with pytest.raises(EngineError) as caught:
        transcribe(Settings(model="stt-unauthorized", base_url=stt_server.base_url), utterance())

    message = caught.value.user_message
    assert "speech recognition server" in message
    assert "rejected the API key (401)" in message
    assert "stt.api_key" in message
    assert KEY not in message


def test_a_server_error_is_reported_without_the_key(stt_server: TranscriptionServer) -> None:
    with pytest.raises(EngineError) as caught:
        transcribe(Settings(model="stt-broken", base_url=stt_server.base_url), utterance())

    message = caught.value.user_message
    assert "internal error (500)" in message
    assert "decoder crashed" in message
    assert KEY not in message


def test_an_answer_without_text_is_an_error(stt_server: TranscriptionServer) -> None:
    with pytest.raises(EngineError, match="without a transcript"):
        transcribe(Settings(model="stt-no-text", base_url=stt_server.base_url), utterance())


def test_an_unreachable_server_is_named(unused_port: int) -> None:
    with pytest.raises(
        EngineError, match=rf"Cannot reach the speech recognition server at http://127.0.0.1:{unused_port}"
    ):
        transcribe(Settings(base_url=f"http://127.0.0.1:{unused_port}/v1"), utterance())


def test_openai_itself_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    engine = OpenAITranscribeSTT(Settings(api_key=""))

    with pytest.raises(EngineError, match="needs an API key"):
        run_bounded(engine.load(ignore_progress), 10)


def test_bad_audio_is_refused_before_any_request(stt_server: TranscriptionServer) -> None:
    with pytest.raises(EngineError, match="16 kHz mono int16"):
        transcribe(Settings(base_url=stt_server.base_url), np.zeros(8000, dtype=np.float32))

    assert stt_server.requests == []


def test_wav_bytes_is_a_complete_wav_file() -> None:
    data = wav_bytes(np.array([1, -1, 32767, -32768], dtype=np.int16))

    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert len(data) == 44 + 8
    assert data[-8:] == np.array([1, -1, 32767, -32768], dtype="<i2").tobytes()
