"""The embedded language model: llama.cpp (llama-cpp-python) on a GGUF file.

All llama.cpp calls (load, generate, free) run on one worker thread owned by the
engine, so they never overlap. Tokens travel to the event loop through a queue
bounded by credits: the worker waits when the consumer falls behind, and a stop
flag ends generation at the next token when the consumer goes away.

Threads follow ``core_share.speech_activity``: while no speech is being synthesized
(the first clause of a reply, and whenever synthesis waits for playback) every core
decodes; while it is, decoding leaves a core to it.

The KV cache is kept between calls: llama.cpp reuses the longest common prefix of
the previous and the new prompt, so an append-only conversation only pays for
the new tokens.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncGenerator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

from backend.config import LLMConfig
from backend.engines.base import ChatMessage, EngineError, ProgressCallback
from backend.engines.core_share import speech_activity
from backend.models.manager import ModelManager

log = logging.getLogger("parley.engines.llm")

TOKEN_QUEUE_SIZE: Final = 32
"""How many text pieces the worker may produce ahead of the consumer."""
STOP_WAIT_S: Final = 30.0
"""How long a stopped stream waits for the worker (a running prompt prefill cannot be interrupted)."""
_CREDIT_POLL_S: Final = 0.05


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def auto_threads(configured: int, cores: int | None = None) -> int:
    """Decode threads: the configured count, or 1 on machines with <= 2 cores, else cores - 1.

    On 2 cores, two decode threads collapse to a few tokens/s as soon as speech
    synthesis keeps another thread busy; one thread holds steady.
    """
    if configured > 0:
        return configured
    cores = cores or usable_cores()
    return 1 if cores <= 2 else cores - 1


def auto_batch_threads(configured: int, cores: int | None = None) -> int:
    """Prompt (prefill) threads: the configured count, else every core.

    Prefill runs at the start of a turn, before any speech is synthesized; on 2
    cores two threads double its speed (38 -> 75 tokens/s measured for the 1.5B model).
    """
    return configured if configured > 0 else (cores or usable_cores())


class _End:
    """Marks the end of a generation in the token queue."""


class _Generation:
    """One reply in flight: the token queue, its credits, and the stop flag."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[str | _End | BaseException] = asyncio.Queue()
        self.credits = threading.Semaphore(TOKEN_QUEUE_SIZE)
        self.stop = threading.Event()

    def put(self, text: str) -> bool:
        """Worker side: waits for a free slot; False once the stream was stopped."""
        while not self.credits.acquire(timeout=_CREDIT_POLL_S):
            if self.stop.is_set():
                return False
        if self.stop.is_set():
            return False
        return self._send(text)

    def finish(self, outcome: _End | BaseException) -> None:
        """Worker side: the last item, sent without waiting for a credit."""
        self._send(outcome)

    def _send(self, item: str | _End | BaseException) -> bool:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone: nobody is listening any more
            self.stop.set()
            return False
        return True


class LlamaLocalLLM:
    """An ``LLMEngine`` over llama-cpp-python with a model from the ``ModelManager``."""

    def __init__(self, config: LLMConfig, models: ModelManager) -> None:
        self._config = config
        self._models = models
        self._label = models.llm_label(config.model)
        self.threads = auto_threads(config.threads)
        self.batch_threads = auto_batch_threads(config.threads)
        self.idle_threads = self.threads if config.threads > 0 else self.batch_threads
        """Decode threads while no speech is being synthesized (every core, unless configured)."""
        self._threads_set = (self.threads, self.batch_threads)  # what llama.cpp runs with now
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-llm")
        self._llama: Any = None  # llama_cpp.Llama, touched only on the worker thread
        self._loaded = False
        self._closed = False
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return f"{self._label} (embedded)"

    async def load(self, progress: ProgressCallback) -> None:
        """Prepares the model file, loads it and primes the cache with the system prompt.

        Cancelling stops a model assembly at once; a load already running on the
        worker finishes there and is freed by ``aclose``.
        """
        if self._closed:
            raise EngineError("The language model was shut down.")
        path = await self._models.ensure_llm(self._config.model, progress)
        progress(f"Loading {self._label}", None)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._load_on_worker, path)
        self._loaded = True
        log.info(
            "loaded %s from %s (%d decode threads, %d while speech is idle; %d prompt threads)",
            self._label,
            path,
            self.threads,
            self.idle_threads,
            self.batch_threads,
        )

    def _load_on_worker(self, path: Path) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise EngineError(
                f"llama-cpp-python is not installed ({exc}): install it with `pip install llama-cpp-python`."
            ) from None
        self._free_on_worker()  # a second load (after a cancelled one) replaces the model
        try:
            self._llama = Llama(
                model_path=str(path),
                n_ctx=self._config.context_tokens,
                n_threads=self.threads,
                n_threads_batch=self.batch_threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise EngineError(f"llama.cpp could not load {path}: {exc}") from None
        self._threads_set = (self.threads, self.batch_threads)
        self._prime_cache()

    def _prime_cache(self) -> None:
        """Evaluates the system prompt once so the first turn only pays for its own words."""
        if not self._config.system_prompt:
            return
        try:
            self._llama.create_chat_completion(
                messages=[
                    {"role": "system", "content": self._config.system_prompt},
                    {"role": "user", "content": "Hello."},
                ],
                max_tokens=1,
                temperature=0.0,
            )
        except Exception as exc:  # best effort: the first turn is just slower
            log.warning("could not prime the cache with the system prompt: %r", exc)

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        """Yields pieces of the reply; one generation at a time (later callers wait).

        When the consumer closes the stream or is cancelled, the worker stops at the
        next token, and this generator waits (up to ``STOP_WAIT_S``) for it to end.
        Raises ``EngineError`` when the model is not loaded or generation fails.
        """
        if not self._loaded or self._closed:
            raise EngineError("The language model is not loaded.")
        payload = [{"role": m.role, "content": m.content} for m in messages]
        async with self._lock:
            loop = asyncio.get_running_loop()
            generation = _Generation(loop)
            job = loop.run_in_executor(self._executor, self._generate_on_worker, generation, payload)
            try:
                while True:
                    item = await generation.queue.get()
                    if isinstance(item, _End):
                        break
                    if isinstance(item, BaseException):
                        raise item
                    generation.credits.release()
                    yield item
            finally:
                generation.stop.set()
                done, _ = await asyncio.wait({job}, timeout=STOP_WAIT_S)
                if not done:
                    log.warning("llama.cpp did not stop within %.0f s", STOP_WAIT_S)

    def _generate_on_worker(self, generation: _Generation, payload: list[dict[str, str]]) -> None:
        try:
            if generation.stop.is_set():
                generation.finish(_End())
                return
            self._fit_threads()
            chunks: Iterator[Any] = self._llama.create_chat_completion(
                messages=payload,
                stream=True,
                max_tokens=self._config.max_tokens,
                temperature=self._config.temperature,
            )
            try:
                for chunk in chunks:
                    if generation.stop.is_set():
                        break
                    choices = chunk.get("choices") or [{}]
                    text = choices[0].get("delta", {}).get("content")
                    if text and not generation.put(text):
                        break
                    self._fit_threads()  # for the next token
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            generation.finish(_End())
        except Exception as exc:  # llama.cpp reports failures as plain exceptions
            generation.finish(_engine_error(exc, self._config.context_tokens))

    @property
    def decode_threads(self) -> int:
        """The decode threads llama.cpp runs with now."""
        return self._threads_set[0]

    def _fit_threads(self) -> None:
        """Worker side: every core while speech is idle, one fewer while it is being synthesized."""
        wanted = (self.threads, self.threads) if speech_activity.busy else (self.idle_threads, self.batch_threads)
        if wanted != self._threads_set:
            # llama-cpp-python has no public setter; its context wraps llama_set_n_threads,
            # which takes effect at the next decode.
            self._llama._ctx.set_n_threads(*wanted)
            self._threads_set = wanted

    async def aclose(self) -> None:
        """Frees the model on the worker thread (after any running generation); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._loaded = False
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._executor, self._free_on_worker)
        done, _ = await asyncio.wait({job}, timeout=STOP_WAIT_S)
        if not done:
            log.warning("llama.cpp did not release the model within %.0f s", STOP_WAIT_S)
        self._executor.shutdown(wait=False)

    def _free_on_worker(self) -> None:
        llama, self._llama = self._llama, None
        if llama is not None:
            llama.close()


def _engine_error(exc: Exception, context_tokens: int) -> EngineError:
    if isinstance(exc, EngineError):
        return exc
    text = str(exc)
    if "context window" in text or "exceed" in text:
        return EngineError(
            f"The conversation no longer fits the model's context ({context_tokens} tokens): "
            "start a new conversation or raise llm.context_tokens."
        )
    log.error("llama.cpp failed: %r", exc)
    return EngineError(f"The embedded language model failed: {text or type(exc).__name__}")
