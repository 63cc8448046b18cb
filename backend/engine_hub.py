"""The engines one backend process shares between its sessions, and their readiness.

Models load in the background after the server listens; sessions wait on
``wait_ready`` and every connection hears the loading progress as ``Status``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from backend.engines.base import EngineError, LLMEngine, TTSEngine
from backend.protocol import Status

log = logging.getLogger("parley.engines")

StatusListener = Callable[[Status], Awaitable[None]]


class EngineHub:
    """Owns the LLM and TTS engines; loads them once, closes them once."""

    def __init__(self, llm: LLMEngine, tts: TTSEngine | None) -> None:
        self.llm = llm
        self.tts = tts
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
        await self._publish(
            Status(
                state="ready",
                detail="Ready",
                progress=1.0,
                llm=self.llm.name,
                tts=self.tts.name if self.tts is not None else "",
            )
        )
        self._ready.set()

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
