"""Hand-written fake engines for pipeline and server tests (never used by the product)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

import numpy as np

from backend.engines.base import ChatMessage, EngineError, Pcm16, ProgressCallback


class ScriptedLLM:
    """Streams a fixed reply piece by piece, ``delay_s`` apart; can fail after ``fail_after`` pieces."""

    def __init__(
        self,
        pieces: Sequence[str],
        delay_s: float = 0.0,
        fail_after: int | None = None,
        load_error: str | None = None,
    ) -> None:
        self.pieces = list(pieces)
        self.delay_s = delay_s
        self.fail_after = fail_after
        self.load_error = load_error
        self.seen: list[list[ChatMessage]] = []
        self.closed_streams = 0

    @property
    def name(self) -> str:
        return "scripted"

    async def load(self, progress: ProgressCallback) -> None:
        progress("Loading the scripted model", 0.5)
        if self.load_error:
            raise EngineError(self.load_error)

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        self.seen.append(list(messages))
        try:
            for i, piece in enumerate(self.pieces):
                if self.fail_after is not None and i >= self.fail_after:
                    raise EngineError("The language model stopped answering.")
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                yield piece
        finally:
            self.closed_streams += 1

    async def aclose(self) -> None:
        pass


class ToneTTS:
    """Synthesizes each segment as a tone of ``seconds_per_word`` per word."""

    def __init__(self, sample_rate: int = 16000, seconds_per_word: float = 0.05, fail: bool = False) -> None:
        self._rate = sample_rate
        self.seconds_per_word = seconds_per_word
        self.fail = fail
        self.segments: list[str] = []

    @property
    def name(self) -> str:
        return "tone"

    @property
    def sample_rate(self) -> int:
        return self._rate

    async def load(self, progress: ProgressCallback) -> None:
        progress("Loading the tone voice", 1.0)

    async def synthesize(self, text: str) -> AsyncGenerator[Pcm16, None]:
        if self.fail:
            raise EngineError("The speech server refused the request.")
        self.segments.append(text)
        samples = int(self._rate * self.seconds_per_word * max(1, len(text.split())))
        t = np.arange(samples) / self._rate
        await asyncio.sleep(0)
        yield (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)

    async def aclose(self) -> None:
        pass
