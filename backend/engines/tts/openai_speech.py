"""Speech from an OpenAI-compatible ``POST {base_url}/audio/speech`` endpoint.

Asks for ``response_format="pcm"`` (16-bit little-endian mono; 24 kHz on OpenAI)
and streams the body: each network chunk becomes an int16 array as it arrives,
with an odd trailing byte carried over to the next chunk.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Final

import numpy as np
import openai

from backend.config import TTSConfig, resolved_api_key, resolved_base_url
from backend.engines.base import EngineError, Pcm16, ProgressCallback
from backend.engines.openai_errors import (
    PLACEHOLDER_API_KEY,
    endpoint_for_display,
    engine_error,
    host_for_display,
    is_provider_failure,
)

log = logging.getLogger("parley.engines.tts")

OPENAI_PCM_SAMPLE_RATE: Final = 24000
DEFAULT_OPENAI_VOICE: Final = "alloy"
EMBEDDED_DEFAULT_VOICE: Final = "joe"


class PcmAssembler:
    """Turns a byte stream of int16 little-endian samples into arrays, across odd chunk boundaries."""

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, data: bytes) -> Pcm16 | None:
        """The whole samples available so far, or None when there are none yet."""
        if self._carry:
            data = self._carry + data
        whole = len(data) & ~1
        self._carry = data[whole:]
        if not whole:
            return None
        return np.frombuffer(data[:whole], dtype="<i2").astype(np.int16)

    @property
    def leftover(self) -> int:
        """Bytes waiting for their other half (1 at the end means the server sent an odd length)."""
        return len(self._carry)


class OpenAISpeechTTS:
    """A ``TTSEngine`` over an OpenAI-compatible speech endpoint."""

    def __init__(self, config: TTSConfig, *, sample_rate: int = OPENAI_PCM_SAMPLE_RATE) -> None:
        self._config = config
        self._base_url = resolved_base_url(config.base_url)
        self._api_key = resolved_api_key(config.api_key)
        self._sample_rate = sample_rate
        voice = config.voice.strip()
        # "joe" is the embedded default; an OpenAI server does not know it.
        self._voice = DEFAULT_OPENAI_VOICE if voice in ("", EMBEDDED_DEFAULT_VOICE) else voice
        self._client: openai.AsyncOpenAI | None = None

    @property
    def name(self) -> str:
        return f"{self._config.model} {self._voice} ({host_for_display(self._base_url)})"

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    async def load(self, progress: ProgressCallback) -> None:
        """Builds the client; no network call. Raises ``EngineError`` for unusable settings."""
        if self._base_url is None and not self._api_key:
            raise EngineError(
                "OpenAI speech needs an API key: set tts.api_key or the OPENAI_API_KEY variable, "
                "or point tts.base_url at a local OpenAI-compatible server."
            )
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key or PLACEHOLDER_API_KEY,
                base_url=self._base_url,
                timeout=self._config.timeout_s,
                max_retries=0,
            )
        progress(f"Speech from {endpoint_for_display(self._base_url)}", None)

    async def synthesize(self, text: str) -> AsyncGenerator[Pcm16, None]:
        """Yields int16 chunks as the server streams them; nothing for blank text.

        Cancelling or closing the stream closes the HTTP response at once. Raises
        ``EngineError`` on provider failures.
        """
        if not text.strip():
            return
        client = self._client
        if client is None:
            raise EngineError("The speech engine is not loaded.")
        pcm = PcmAssembler()
        started = False
        extra = {"speed": self._config.speed} if self._config.speed != 1.0 else {}
        try:
            async with client.audio.speech.with_streaming_response.create(
                model=self._config.model,
                voice=self._voice,
                input=text,
                response_format="pcm",
                **extra,  # type: ignore[arg-type]
            ) as response:
                async for data in response.iter_bytes():
                    started = True
                    samples = pcm.feed(data)
                    if samples is not None:
                        yield samples
        except Exception as exc:  # also the HTTP library's, for a body that breaks off or stalls (issue 6)
            if not is_provider_failure(exc):
                raise
            raise self._error(exc, mid_reply=started) from None
        if pcm.leftover:
            log.warning("the speech server sent an odd number of bytes; dropped the last one")

    def _error(self, exc: BaseException, *, mid_reply: bool = False) -> EngineError:
        error = engine_error(
            exc,
            service="speech",
            base_url=self._base_url,
            model=self._config.model,
            api_key=self._api_key,
            key_setting="tts.api_key",
            mid_reply=mid_reply,
        )
        log.warning("%s", error.user_message)
        return error

    async def aclose(self) -> None:
        """Closes the HTTP connections; idempotent."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()
