"""The embedded voice: piper-tts on onnxruntime.

The onnxruntime session is built here (not by piper) so its thread count is set
on purpose: one intra-op thread, one inter-op thread, sequential execution and
no spinning, so speech synthesis leaves the other cores to the language model.

Synthesis runs on one worker thread owned by the engine, one sentence per step:
piper yields a chunk per sentence, and the next sentence is only started when the
consumer asks for it, so a cancelled turn never leaves audio being produced.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import numpy as np

from backend.config import TTSConfig
from backend.engines.base import EngineError, Pcm16, ProgressCallback
from backend.engines.core_share import speech_activity
from backend.models.manager import ModelManager

log = logging.getLogger("parley.engines.tts")

MIN_SPEED: Final = 0.25
MAX_SPEED: Final = 4.0
_WARM_UP_TEXT: Final = "Hello."


def _next_chunk(chunks: Iterator[Any]) -> Any:
    """Worker side: synthesizes the next sentence, or returns None at the end."""
    with speech_activity.synthesizing():
        return next(chunks, None)


class PiperTTS:
    """A ``TTSEngine`` speaking with a piper voice (``joe`` by default)."""

    def __init__(self, config: TTSConfig, models: ModelManager) -> None:
        self._config = config
        self._models = models
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-tts")
        self._voice: Any = None  # piper.PiperVoice
        self._syn_config: Any = None  # piper.SynthesisConfig
        self._sample_rate = 0
        self._closed = False
        self.threads = max(1, config.threads)

    @property
    def name(self) -> str:
        voice = self._config.voice
        label = Path(voice).stem if ("/" in voice or voice.endswith(".onnx")) else voice
        return f"piper {label}"

    @property
    def sample_rate(self) -> int:
        """The voice's rate (22050 for joe); 0 until loaded."""
        return self._sample_rate

    async def load(self, progress: ProgressCallback) -> None:
        """Loads the voice on the worker thread and synthesizes a word to warm it up.

        Raises ``EngineError`` when the voice is missing or cannot be loaded. If
        cancelled, the load finishes on the worker and ``aclose`` frees it.
        """
        if self._closed:
            raise EngineError("The voice was shut down.")
        onnx, config = self._models.voice_paths(self._config.voice)
        progress(f"Loading the voice {self.name}", None)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._load_on_worker, onnx, config)
        log.info("loaded %s (%d Hz, %d thread(s))", self.name, self._sample_rate, self.threads)

    def _load_on_worker(self, onnx_path: Path, config_path: Path) -> None:
        try:
            import onnxruntime
            from piper import PiperVoice, SynthesisConfig
            from piper.config import PiperConfig
        except ImportError as exc:
            raise EngineError(f"piper-tts is not installed ({exc}): install it with `pip install piper-tts`.") from None
        try:
            voice_config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EngineError(f"The voice config {config_path} cannot be read: {exc}") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = onnxruntime.InferenceSession(
                str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineError(f"The voice model {onnx_path} cannot be loaded: {exc}") from None
        voice = PiperVoice(session=session, config=voice_config)
        self._syn_config = SynthesisConfig(length_scale=voice_config.length_scale / _speed(self._config.speed))
        for _ in voice.synthesize(_WARM_UP_TEXT, syn_config=self._syn_config):
            pass
        self._voice = voice
        self._sample_rate = voice_config.sample_rate

    async def synthesize(self, text: str) -> AsyncGenerator[Pcm16, None]:
        """Yields one int16 chunk per sentence of ``text``; nothing for blank text.

        Each sentence is synthesized on the worker only when the consumer asks for
        it. When the consumer is cancelled or closes the stream, at most the sentence
        in progress finishes on the worker and is dropped.
        """
        if not text.strip():
            return
        voice = self._voice
        if voice is None or self._closed:
            raise EngineError("The voice is not loaded.")
        loop = asyncio.get_running_loop()
        chunks: Iterator[Any] = iter(voice.synthesize(text, syn_config=self._syn_config))
        try:
            while True:
                try:
                    chunk = await loop.run_in_executor(self._executor, _next_chunk, chunks)
                except Exception as exc:  # espeak or onnxruntime failed on this text
                    log.error("piper failed on %r: %r", text[:80], exc)
                    raise EngineError(f"The voice could not speak this text: {exc}") from None
                if chunk is None:
                    return
                audio: Pcm16 = np.ascontiguousarray(chunk.audio_int16_array, dtype=np.int16)
                if audio.size:
                    yield audio
        finally:
            # Queued behind any sentence still running on the worker, so never concurrent with it.
            if not self._closed:
                self._executor.submit(_close_quietly, chunks)

    async def aclose(self) -> None:
        """Releases the voice after any sentence in progress; idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._executor, self._free_on_worker)
        done, _ = await asyncio.wait({job}, timeout=10.0)
        if not done:
            log.warning("piper did not finish its sentence within 10 s of shutdown")
        self._executor.shutdown(wait=False)

    def _free_on_worker(self) -> None:
        self._voice = None


def _speed(configured: float) -> float:
    if not math.isfinite(configured) or configured <= 0:
        log.warning("tts.speed %r is not a positive number; using 1.0", configured)
        return 1.0
    return min(max(configured, MIN_SPEED), MAX_SPEED)


def _close_quietly(chunks: Iterator[Any]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        try:
            close()
        except Exception as exc:  # closing a half-run generator must not fail the worker
            log.debug("closing a piper stream failed: %r", exc)
