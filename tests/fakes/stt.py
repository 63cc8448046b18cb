"""A hand-written speech recognizer for server tests (never used by the product)."""

from __future__ import annotations

from backend.engines.base import EngineError, Pcm16, ProgressCallback


class BrokenSTT:
    """Fails to load, like a recognizer whose model files are missing."""

    name = "broken-stt"

    async def load(self, progress: ProgressCallback) -> None:
        raise EngineError("The speech model is not installed.")

    async def transcribe(self, pcm16_mono_16k: Pcm16) -> str:
        raise EngineError("Speech recognition is not loaded.")

    async def aclose(self) -> None:
        pass
