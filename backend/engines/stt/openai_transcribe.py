"""Speech recognition by an OpenAI-compatible ``POST {base_url}/audio/transcriptions`` endpoint.

The utterance is sent as a 16 kHz mono 16-bit WAV built in memory (no temporary
file); the JSON answer's ``text`` is the transcript. Works with OpenAI and with
local servers that speak the same API (faster-whisper-server, LocalAI, vLLM).
Failures become ``EngineError``s with the same secret-free messages as the other
OpenAI engines.
"""

from __future__ import annotations

import io
import logging
import wave
from typing import Final

import openai

from backend.config import resolved_api_key, resolved_base_url
from backend.engines.base import EngineError, Pcm16, ProgressCallback
from backend.engines.openai_errors import (
    PLACEHOLDER_API_KEY,
    endpoint_for_display,
    engine_error,
    host_for_display,
    is_provider_failure,
)
from backend.engines.stt.base import STT_SAMPLE_RATE, STTSettings, checked_utterance

log = logging.getLogger("parley.engines.stt")

DEFAULT_OPENAI_MODEL: Final = "whisper-1"
EMBEDDED_MODEL_KEYS: Final = ("", "tiny", "base")
"""Embedded model names mean nothing to a server: they become ``whisper-1``."""
MIN_AUDIO_S: Final = 0.1


def wav_bytes(pcm: Pcm16, sample_rate: int = STT_SAMPLE_RATE) -> bytes:
    """A complete mono 16-bit little-endian WAV file holding ``pcm``."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm.astype("<i2", copy=False).tobytes())
    return buffer.getvalue()


class OpenAITranscribeSTT:
    """An ``STTEngine`` over an OpenAI-compatible transcription endpoint."""

    def __init__(self, settings: STTSettings) -> None:
        self._settings = settings
        self._base_url = resolved_base_url(settings.base_url)
        self._api_key = resolved_api_key(settings.api_key)
        model = settings.model.strip()
        self._model = DEFAULT_OPENAI_MODEL if model in EMBEDDED_MODEL_KEYS else model
        self._language = settings.language.strip().lower()
        self._client: openai.AsyncOpenAI | None = None

    @property
    def name(self) -> str:
        return f"{self._model} ({host_for_display(self._base_url)})"

    async def load(self, progress: ProgressCallback) -> None:
        """Builds the client; no network call. Raises ``EngineError`` for unusable settings."""
        if self._base_url is None and not self._api_key:
            raise EngineError(
                "OpenAI speech recognition needs an API key: set stt.api_key or the OPENAI_API_KEY "
                "variable, or point stt.base_url at a local OpenAI-compatible server."
            )
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key or PLACEHOLDER_API_KEY,
                base_url=self._base_url,
                timeout=self._settings.timeout_s,
                max_retries=0,
            )
        progress(f"Speech recognition by {endpoint_for_display(self._base_url)}", None)

    async def transcribe(self, pcm16_mono_16k: Pcm16) -> str:
        """Uploads the utterance as WAV and returns the server's text ("" for silence).

        Raises ``EngineError`` for bad audio and on any provider failure. When
        cancelled, the HTTP request is abandoned at once.
        """
        audio = checked_utterance(pcm16_mono_16k)
        client = self._client
        if client is None:
            raise EngineError("Speech recognition is not loaded.")
        if audio.size < MIN_AUDIO_S * STT_SAMPLE_RATE:
            return ""
        try:
            result = await client.audio.transcriptions.create(
                file=("utterance.wav", wav_bytes(audio), "audio/wav"),
                model=self._model,
                response_format="json",
                language=self._language or openai.omit,
            )
        except Exception as exc:  # also the HTTP library's, for an answer that breaks off (issue 6)
            if not is_provider_failure(exc):
                raise
            raise self._error(exc) from None
        text = getattr(result, "text", None)
        if not isinstance(text, str):
            raise EngineError(
                f"The speech recognition server at {endpoint_for_display(self._base_url)} "
                "answered without a transcript text."
            )
        return " ".join(text.split())

    def _error(self, exc: BaseException) -> EngineError:
        error = engine_error(
            exc,
            service="speech recognition",
            base_url=self._base_url,
            model=self._model,
            api_key=self._api_key,
            key_setting="stt.api_key",
        )
        log.warning("%s", error.user_message)
        return error

    async def aclose(self) -> None:
        """Closes the HTTP connections; idempotent."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()
