"""The real ``ParleyServer`` with given engines, on 127.0.0.1 port 0, for the issue 6 tests.

``live_server(...)`` runs it on the test's own event loop; ``ServerThread`` runs it on
a loop in a background thread (for tests whose loop is Qt's, or synchronous ones).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from backend.engine_hub import EngineHub
from backend.engines.base import LLMEngine, TTSEngine
from backend.engines.stt.base import STTEngine
from backend.limits import ConnectionLimits
from backend.server import ParleyServer
from backend.store import ConversationStore

TOKEN = "live-server-token-0123456789"
STOP_TIMEOUT_S = 15.0
T = TypeVar("T")


@dataclass
class LiveServer:
    url: str
    server: ParleyServer
    hub: EngineHub
    store: ConversationStore


@asynccontextmanager
async def live_server(
    llm: LLMEngine,
    tts: TTSEngine | None = None,
    stt: STTEngine | None = None,
    *,
    limits: ConnectionLimits | None = None,
    db_path: Path | None = None,
    tls: ssl.SSLContext | None = None,
    token: str = TOKEN,
) -> AsyncIterator[LiveServer]:
    hub = EngineHub(llm, tts, stt)
    store = await ConversationStore.open(db_path)
    server = ParleyServer(hub, token, "Be brief.", 4096, store=store, limits=limits)
    try:
        url = await server.start("127.0.0.1", 0, tls=tls)
        hub.start_loading()
        yield LiveServer(url, server, hub, store)
    finally:
        await asyncio.wait_for(server.aclose(), STOP_TIMEOUT_S)
        await asyncio.wait_for(store.aclose(), STOP_TIMEOUT_S)
        await asyncio.wait_for(hub.aclose(), STOP_TIMEOUT_S)


class ServerThread:
    """``with ServerThread(llm, tts) as running: running.url``; ``running.call(coro)`` runs on its loop."""

    def __init__(self, llm: LLMEngine, tts: TTSEngine | None = None, **options: Any) -> None:
        self._engines = (llm, tts)
        self._options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self.live: LiveServer | None = None
        self._thread = threading.Thread(target=self._main, name="parley-live-server", daemon=True)

    @property
    def url(self) -> str:
        assert self.live is not None
        return self.live.url

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test by __enter__
            self._failure = exc
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        llm, tts = self._engines
        async with live_server(llm, tts, **self._options) as live:
            self.live = live
            self._started.set()
            await self._stop.wait()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._started.wait(STOP_TIMEOUT_S) or self.live is None:
            raise RuntimeError(f"the server did not start: {self._failure!r}")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._loop is not None and self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STOP_TIMEOUT_S + 5.0)
