"""The engines one backend process shares between its sessions, and their readiness.

Models load in the background after the server listens; sessions wait on
``wait_ready`` and every connection hears the loading progress as ``Status``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from backend.engines.base import EngineError, LLMEngine, ProgressCallback, TTSEngine
from backend.engines.stt.base import STTEngine
from backend.protocol import Status

log = logging.getLogger("parley.engines")

StatusListener = Callable[[Status], Awaitable[None]]


class EngineHub:
    """Owns the LLM and TTS engines; loads them once, closes them once."""

    def __init__(self, llm: LLMEngine, tts: TTSEngine | None, stt: STTEngine | None = None) -> None:
        self.llm = llm
        self.tts = tts
        self.stt = stt  # speech recognition (issue 3); None: voice input is off
        self.stt_problem = ""  # why ``stt`` could not load (voice is then unavailable, text still works)
        self._status = Status(state="loading", detail="Starting the engines", progress=0.0)
        self._ready = asyncio.Event()
        self._listeners: set[StatusListener] = set()
        self._load_task: asyncio.Task[None] | None = None

    @property
    def status(self) -> Status:
        return self._status

    def start_loading(self) -> None:
        if self._load_task is None:
            self._load_task = asyncio.create_task(self._load(), name="engine-load")

    def subscribe(self, listener: StatusListener) -> None:
        self._listeners.add(listener)

    def unsubscribe(self, listener: StatusListener) -> None:
        self._listeners.discard(listener)

    async def wait_ready(self) -> None:
        """Returns once the engines are loaded; raises ``EngineError`` if loading failed."""
        await self._ready.wait()
        if self._status.state != "ready":
            raise EngineError(self._status.detail)

    async def _publish(self, status: Status) -> None:
        self._status = status
        for listener in list(self._listeners):
            try:
                await listener(status)
            except Exception:  # a closed connection must not stop the others from hearing
                log.debug("status listener failed", exc_info=True)

    async def _load(self) -> None:
        """Loads the LLM, then TTS; on cancel, stops loading and leaves the hub not ready."""
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()

        def progress(step: str, fraction: float | None) -> None:
            # Engines report from worker threads; hop onto the loop and publish in order.
            def publish() -> None:
                task = loop.create_task(
                    self._publish(Status(state="loading", detail=step, progress=fraction))
                )
                pending.add(task)
                task.add_done_callback(pending.discard)

            loop.call_soon_threadsafe(publish)

        try:
            await self.llm.load(progress)
            if self.tts is not None:
                await self.tts.load(progress)
            await self.load_stt(progress)
        except EngineError as exc:
            log.error("engines failed to load: %s", exc.user_message)
            await self._settle(pending)
            await self._publish(Status(state="error", detail=exc.user_message))
            self._ready.set()
            return
        except Exception as exc:
            log.exception("engines failed to load")
            await self._settle(pending)
            await self._publish(Status(state="error", detail=f"The engines failed to load: {exc}"))
            self._ready.set()
            return
        await self._settle(pending)
        await self._publish(self.ready_status())
        self._ready.set()

    # ---- speech recognition (issue 3) ------------------------------------------------------

    async def load_stt(self, progress: ProgressCallback) -> None:
        """Loads speech recognition; a failure only turns voice input off (``stt_problem`` says why)."""
        self.stt_problem = ""
        stt = self.stt
        if stt is None:
            return
        try:
            await stt.load(progress)
        except EngineError as exc:
            log.error("speech recognition is unavailable: %s", exc.user_message)
            self.stt_problem = exc.user_message
            self.stt = None
            await stt.aclose()

    def ready_status(self) -> Status:
        """``Status(ready)`` naming the engines; its detail says when voice input is unavailable."""
        detail = "Ready"
        if self.stt_problem:
            detail = f"Ready; speech recognition is unavailable: {self.stt_problem}"
        return Status(
            state="ready",
            detail=detail,
            progress=1.0,
            llm=self.llm.name,
            tts=self.tts.name if self.tts is not None else "",
            stt=self.stt.name if self.stt is not None else "",
        )

    @staticmethod
    async def _settle(pending: set[asyncio.Task[None]]) -> None:
        await asyncio.sleep(0)  # let call_soon_threadsafe callbacks run
        if pending:
            await asyncio.wait(list(pending), timeout=1.0)

    async def aclose(self) -> None:
        """Stops loading (awaited) and closes the engines."""
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
            await asyncio.wait([self._load_task], timeout=10.0)
        await self.llm.aclose()
        if self.tts is not None:
            await self.tts.aclose()
        if self.stt is not None:
            await self.stt.aclose()

    # ---- live settings (issue 4) ---------------------------------------------------------

    async def swap(self, replacements: Mapping[str, Any]) -> None:
        """Puts new engines in place between turns (keys "llm", "tts", "stt"), closing the old ones.

        Waits for a load still running first. Turns wait in ``wait_ready`` while the new
        engines load, and every connection hears the progress; a failed load leaves the
        hub in the error state until a later swap. If cancelled, the hub reports the
        error state (never leaves turns waiting) and the cancellation propagates.
        """
        if self._load_task is not None and not self._load_task.done():
            await asyncio.wait([self._load_task])
        self._ready.clear()
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()

        def progress(step: str, fraction: float | None) -> None:
            def publish() -> None:
                task = loop.create_task(self._publish(Status(state="loading", detail=step, progress=fraction)))
                pending.add(task)
                task.add_done_callback(pending.discard)

            loop.call_soon_threadsafe(publish)

        final = Status(state="error", detail="Changing the engines was interrupted; apply the settings again.")
        try:
            await self._publish(Status(state="loading", detail="Applying the new settings", progress=None))
            for name, engine in replacements.items():
                old = getattr(self, name, None)
                setattr(self, name, engine)
                if old is not None and old is not engine:
                    await old.aclose()
            for name, engine in replacements.items():
                if engine is not None and name != "stt":
                    await engine.load(progress)
            if "stt" in replacements:
                await self.load_stt(progress)  # a failure only turns voice input off
            final = self.ready_status()
        except EngineError as exc:
            log.error("the new engines failed to load: %s", exc.user_message)
            final = Status(state="error", detail=exc.user_message)
        except Exception as exc:
            log.exception("the new engines failed to load")
            final = Status(state="error", detail=f"The engines failed to load: {exc}")
        finally:
            await self._settle(pending)
            await self._publish(final)
            self._ready.set()
