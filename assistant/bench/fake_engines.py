"""Fast stand-in engines for the soak and load benchmarks only (issue 6).

They let a benchmark measure the server, the protocol and the clients, not the
models: a reply of a few words streamed at once, and a short tone for its speech.
Never used by the product (nothing outside ``assistant.bench`` imports them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

import numpy as np

from backend.engines.base import ChatMessage, Pcm16, ProgressCallback

DEFAULT_REPLY = "Sure. Here is a short answer, spoken and written at once."


class FastLLM:
    """Streams ``reply`` word by word, ``piece_delay_s`` apart (0: as fast as the loop goes)."""

    def __init__(self, reply: str = DEFAULT_REPLY, piece_delay_s: float = 0.0) -> None:
        self._pieces = [word + " " for word in reply.split()]
        self._delay = piece_delay_s

    @property
    def name(self) -> str:
        return "bench-fast-llm"

    async def load(self, progress: ProgressCallback) -> None:
        progress("Ready", 1.0)

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        for piece in self._pieces:
            await asyncio.sleep(self._delay)  # also with 0: other connections get their turn
            yield piece

    async def aclose(self) -> None:
        pass


class FastTTS:
    """Speaks every segment as a tone of ``segment_s`` seconds."""

    def __init__(self, segment_s: float = 0.1, sample_rate: int = 16000) -> None:
        self._rate = sample_rate
        samples = max(1, int(segment_s * sample_rate))
        t = np.arange(samples) / sample_rate
        self._tone: Pcm16 = (np.sin(2 * np.pi * 440 * t) * 6000).astype(np.int16)

    @property
    def name(self) -> str:
        return "bench-tone-tts"

    @property
    def sample_rate(self) -> int:
        return self._rate

    async def load(self, progress: ProgressCallback) -> None:
        progress("Ready", 1.0)

    async def synthesize(self, text: str) -> AsyncGenerator[Pcm16, None]:
        await asyncio.sleep(0)
        yield self._tone

    async def aclose(self) -> None:
        pass
