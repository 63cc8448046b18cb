"""A language model that can start a reply before it is asked for.

A spoken question is known a few hundred milliseconds before it is confirmed: the
person went quiet, but the end-of-speech silence is still running. ``prefetch``
starts the reply then, into a bounded buffer that nobody sees; if the question is
confirmed, the turn's ``stream`` with the same messages continues that very stream
(buffered pieces first), so the first words are already written. Any other stream,
``drop``, or a prefetch left unclaimed for ``PREFETCH_TTL_S``, stops it.

It wraps whatever engine ``engine()`` returns at the time (the engines can be swapped
between turns) and is owned by one session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Final

from backend.engines.base import ChatMessage, EngineError, LLMEngine, ProgressCallback

log = logging.getLogger("parley.prefetch")

PREFETCH_PIECES: Final = 64
"""Pieces written ahead at most; the engine then waits (and stops at its own limit)."""
PREFETCH_TTL_S: Final = 15.0
STOP_TIMEOUT_S: Final = 10.0


class _End:
    pass


_Item = str | _End | EngineError


class _Prefetch:
    """One reply being written ahead: its messages, its buffer and the task filling it."""

    def __init__(self, messages: list[ChatMessage], engine: LLMEngine) -> None:
        self.messages = messages
        self.queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=PREFETCH_PIECES)
        self.expired = False
        self.task = asyncio.create_task(self._fill(engine), name="llm-prefetch")
        self._expiry = asyncio.get_running_loop().call_later(PREFETCH_TTL_S, self._expire)

    def claim(self) -> None:
        self._expiry.cancel()

    def _expire(self) -> None:
        log.info("a prefetched reply was not claimed within %.0f s; stopping it", PREFETCH_TTL_S)
        self.expired = True
        self.task.cancel()

    async def _fill(self, engine: LLMEngine) -> None:
        """Copies the engine's stream into the buffer; on cancel or error, stops the engine's stream."""
        stream = engine.stream(self.messages)
        started = time.monotonic()
        first = True
        try:
            async for piece in stream:
                if first:
                    first = False
                    log.debug("prefetch: first piece after %.3f s", time.monotonic() - started)
                await self.queue.put(piece)
            await self.queue.put(_End())
        except EngineError as exc:
            await self.queue.put(exc)
        except Exception as exc:  # the consumer must hear of any failure, not wait for ever
            log.exception("the prefetched reply failed")
            await self.queue.put(EngineError(f"The language model failed: {exc}"))
        finally:
            await stream.aclose()

    async def stop(self) -> None:
        self._expiry.cancel()
        self.task.cancel()
        done, _ = await asyncio.wait([self.task], timeout=STOP_TIMEOUT_S)
        if not done:
            log.error("a prefetched reply did not stop within %.0f s", STOP_TIMEOUT_S)


class PrefetchingLLM:
    """An ``LLMEngine`` over ``engine()`` with one prefetch slot; see the module docstring."""

    def __init__(self, engine: Callable[[], LLMEngine]) -> None:
        self._engine = engine
        self._prefetch: _Prefetch | None = None

    @property
    def name(self) -> str:
        return self._engine().name

    @property
    def prefetching(self) -> bool:
        return self._prefetch is not None

    async def load(self, progress: ProgressCallback) -> None:
        await self._engine().load(progress)

    async def aclose(self) -> None:
        """Stops a prefetch; the engine itself belongs to the hub."""
        await self.drop()

    async def prefetch(self, messages: Sequence[ChatMessage]) -> None:
        """Starts writing the reply to ``messages`` now (a previous prefetch is stopped first)."""
        await self.drop()
        self._prefetch = _Prefetch(list(messages), self._engine())

    async def drop(self) -> None:
        """Stops the prefetch, if any, and awaits it."""
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            await prefetch.stop()

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        """The reply to ``messages``: the prefetched one when the messages are the same, else a new one.

        Raises ``EngineError`` like the engine. When closed or cancelled, the engine stops.
        """
        wanted = list(messages)
        prefetch = self._prefetch
        if prefetch is None or prefetch.expired or prefetch.messages != wanted:
            if prefetch is not None:
                log.info("the prefetched reply does not fit the question; writing a new one")
            await self.drop()
            inner = self._engine().stream(wanted)
            try:
                async for piece in inner:
                    yield piece
            finally:
                await inner.aclose()
            return
        self._prefetch = None
        prefetch.claim()
        log.info("continuing a prefetched reply (%d pieces already written)", prefetch.queue.qsize())
        try:
            while not isinstance(item := await prefetch.queue.get(), _End):
                if isinstance(item, EngineError):
                    raise item
                yield item
        finally:
            with contextlib.suppress(Exception):
                await prefetch.stop()
