"""A TCP proxy on 127.0.0.1 whose links can be cut at will: a network that drops (issue 6).

Runs on its own event loop in a daemon thread. ``cut()`` aborts every open link on
both sides at once (no close frames, like a dead Wi-Fi); new connections still work.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType
from urllib.parse import urlsplit

STOP_TIMEOUT_S = 10.0


class TcpProxy:
    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._scheme = parts.scheme
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="tcp-proxy", daemon=True)
        self.port = 0
        self.cuts = 0

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Drops every open link now (from any thread)."""
        assert self._loop is not None
        done = threading.Event()

        def abort_all() -> None:
            for writer in list(self._links):
                writer.transport.abort()
            self._links.clear()
            self.cuts += 1
            done.set()

        self._loop.call_soon_threadsafe(abort_all)
        done.wait(STOP_TIMEOUT_S)

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._links |= {writer, up_writer}
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()
        self._links.discard(writer)

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        self._ready.wait(STOP_TIMEOUT_S)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        loop = self._loop
        if loop is None:
            return

        async def stop() -> None:
            for writer in list(self._links):
                writer.transport.abort()
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(stop(), loop)
        self._thread.join(STOP_TIMEOUT_S)
