"""The speech-to-text interface and the settings its engines read.

Audio comes in as one utterance of 16 kHz mono int16 PCM (the app has already
cut it with its VAD). For partial transcripts while the person is still
speaking, the caller may transcribe the growing utterance again; engines run
one transcription at a time, in order.
"""

from __future__ import annotations

from typing import Final, Protocol

import numpy as np

from backend.engines.base import EngineError, Pcm16, ProgressCallback

STT_SAMPLE_RATE: Final = 16000
MAX_UTTERANCE_S: Final = 120.0
"""Longer audio is refused: the app ends an utterance long before this."""


class STTSettings(Protocol):
    """What the STT engines read from the configuration (e.g. a frozen ``STTConfig``)."""

    @property
    def model(self) -> str:
        """Embedded: ``tiny`` | ``base`` | a CTranslate2 folder; OpenAI: a model name."""
        ...

    @property
    def base_url(self) -> str: ...

    @property
    def api_key(self) -> str: ...

    @property
    def language(self) -> str:
        """An ISO code such as ``en``; empty lets a multilingual model detect it."""
        ...

    @property
    def threads(self) -> int:
        """Embedded only: CPU threads for the model; 0 chooses from the core count."""
        ...

    @property
    def timeout_s(self) -> float: ...


class STTEngine(Protocol):
    """Turns one utterance into text."""

    @property
    def name(self) -> str:
        """A short label for the status line, e.g. ``whisper-tiny.en (embedded)``."""
        ...

    async def load(self, progress: ProgressCallback) -> None:
        """Prepares the model (may take seconds); raises ``EngineError`` if it cannot."""
        ...

    async def transcribe(self, pcm16_mono_16k: Pcm16) -> str:
        """The text spoken in the audio ("" for none).

        Raises ``EngineError`` on bad audio or provider failures. When cancelled, the
        result is dropped (a local transcription already running finishes first).
        """
        ...

    async def aclose(self) -> None:
        """Releases the model or connections; idempotent."""
        ...


def checked_utterance(pcm: Pcm16) -> Pcm16:
    """Returns ``pcm`` as contiguous 1-D int16, or raises ``EngineError`` naming the problem."""
    array = np.asarray(pcm)
    if array.ndim != 1 or array.dtype != np.int16:
        raise EngineError(
            f"Speech recognition takes 16 kHz mono int16 audio, got {array.dtype} with shape {array.shape}."
        )
    if array.size > MAX_UTTERANCE_S * STT_SAMPLE_RATE:
        raise EngineError(
            f"The utterance is {array.size / STT_SAMPLE_RATE:.0f} s long; "
            f"speech recognition takes at most {MAX_UTTERANCE_S:.0f} s at a time."
        )
    return np.ascontiguousarray(array)
