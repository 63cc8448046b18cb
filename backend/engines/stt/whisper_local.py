"""The embedded speech recognizer: faster-whisper (CTranslate2, int8) on the CPU.

The model is loaded from a local folder only (``local_files_only``; nothing is
downloaded) on one worker thread owned by the engine, and every transcription
runs there too, one at a time. faster-whisper's ``transcribe`` is lazy: the
segments generator is consumed inside the worker so the decoding never runs on
the event loop. Decoding is greedy (beam 1, one temperature) for speed, without
faster-whisper's own VAD (the app has already cut the utterance). When the
language is known and the utterance fits Whisper's 30 s window, the encoder only
sees the utterance (``short_window``): about ten times faster for a question.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import numpy as np

from backend.engines.base import EngineError, Pcm16, ProgressCallback
from backend.engines.stt.base import STT_SAMPLE_RATE, STTSettings, checked_utterance
from backend.engines.stt.short_window import ShortWindowDecoder
from backend.models.whisper_models import WhisperLocation, WhisperModels

log = logging.getLogger("parley.engines.stt")

DEFAULT_MAX_THREADS: Final = 2
"""Measured on 2 cores: a 3 s clip takes 0.37 s on tiny.en with 2 threads, 0.50 s with 1."""
MIN_AUDIO_S: Final = 0.1
"""Shorter audio holds no word; Whisper would only hallucinate on it."""
CLOSE_WAIT_S: Final = 30.0
SHORT_WINDOW_MAX_SAMPLES: Final = 30 * STT_SAMPLE_RATE


def default_threads(configured: int) -> int:
    """``configured`` if positive, else ``min(2, cores)``."""
    if configured > 0:
        return configured
    return max(1, min(DEFAULT_MAX_THREADS, os.cpu_count() or 1))


class WhisperLocalSTT:
    """An ``STTEngine`` running a packaged Whisper model (``tiny`` by default) with faster-whisper."""

    def __init__(self, settings: STTSettings, models: WhisperModels) -> None:
        self._settings = settings
        self._models = models
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-stt")
        self._model: Any = None  # faster_whisper.WhisperModel
        self._location: WhisperLocation | None = None
        self._language: str | None = None
        self._closed = False
        self.threads = default_threads(settings.threads)
        self.short_window = True
        """Encode the utterance, not a 30 s window (see ``short_window``): much faster for questions."""
        self._decoder: ShortWindowDecoder | None = None

    @property
    def name(self) -> str:
        label = self._location.label if self._location else self._models.label(self._settings.model)
        return f"{label} (embedded)"

    @property
    def language(self) -> str | None:
        """The language decoding is forced to; None means detected per utterance."""
        return self._language

    async def load(self, progress: ProgressCallback) -> None:
        """Locates (or assembles) the model folder, then loads it on the worker.

        Raises ``EngineError`` when the model is missing or cannot be loaded. If
        cancelled during the load, the load finishes on the worker and ``aclose``
        frees it.
        """
        if self._closed:
            raise EngineError("Speech recognition was shut down.")
        location = await self._models.ensure(self._settings.model, progress)
        self._location = location
        self._language = _language_for(location, self._settings.language)
        progress(f"Loading the speech recognizer {location.label}", None)
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        await loop.run_in_executor(self._executor, self._load_on_worker, location.path)
        log.info(
            "loaded %s from %s in %.2f s (%d thread(s), language %s)",
            location.label,
            location.path,
            time.monotonic() - started,
            self.threads,
            self._language or "auto",
        )

    def _load_on_worker(self, folder: Path) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise EngineError(
                f"faster-whisper is not installed ({exc}): install it with `pip install faster-whisper`."
            ) from None
        try:
            self._model = WhisperModel(
                str(folder),
                device="cpu",
                compute_type="int8",
                cpu_threads=self.threads,
                num_workers=1,
                local_files_only=True,
            )
        except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError with its own text
            raise EngineError(f"The speech model in {folder} cannot be loaded: {exc}") from None

    async def transcribe(self, pcm16_mono_16k: Pcm16) -> str:
        """The words in the utterance, "" when there are none.

        Raises ``EngineError`` for audio that is not 1-D int16 or longer than the
        limit, or when the model fails. When cancelled before its turn on the
        worker it never runs; once running it finishes there and is dropped.
        """
        audio = checked_utterance(pcm16_mono_16k)
        if self._model is None or self._closed:
            raise EngineError("Speech recognition is not loaded.")
        if audio.size < MIN_AUDIO_S * STT_SAMPLE_RATE:
            return ""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transcribe_on_worker, audio)

    def _transcribe_on_worker(self, audio: Pcm16) -> str:
        model = self._model
        if model is None:
            raise EngineError("Speech recognition was shut down.")
        samples = audio.astype(np.float32) / 32768.0
        started = time.monotonic()
        try:
            if self._language is not None and self.short_window and audio.size <= SHORT_WINDOW_MAX_SAMPLES:
                if self._decoder is None:
                    self._decoder = ShortWindowDecoder(model, self._language)
                return self._finish(self._decoder.transcribe(samples), audio, started)
            segments, _info = model.transcribe(
                samples,
                language=self._language,
                beam_size=1,
                best_of=1,
                temperature=0.0,
                vad_filter=False,
                condition_on_previous_text=False,
                without_timestamps=True,
            )
            text = " ".join(segment.text.strip() for segment in segments)
        except Exception as exc:  # CTranslate2/tokenizer failures on odd input
            log.error("whisper failed on %.1f s of audio: %r", audio.size / STT_SAMPLE_RATE, exc)
            raise EngineError(f"Speech recognition failed: {exc}") from None
        return self._finish(text, audio, started)

    @staticmethod
    def _finish(text: str, audio: Pcm16, started: float) -> str:
        text = " ".join(text.split())
        log.debug(
            "transcribed %.1f s in %.2f s: %r", audio.size / STT_SAMPLE_RATE, time.monotonic() - started, text[:80]
        )
        return text

    async def aclose(self) -> None:
        """Frees the model after any transcription in progress; idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._executor, self._free_on_worker)
        done, _ = await asyncio.wait({job}, timeout=CLOSE_WAIT_S)
        if not done:
            log.warning("whisper did not finish within %.0f s of shutdown", CLOSE_WAIT_S)
        self._executor.shutdown(wait=False)

    def _free_on_worker(self) -> None:
        self._model = None
        self._decoder = None


def _language_for(location: WhisperLocation, configured: str) -> str | None:
    language = configured.strip().lower()
    if location.english_only:
        if language not in ("", "en"):
            log.warning("%s understands only English; ignoring stt.language=%r", location.label, configured)
        return "en"
    return language or None
