"""Forwards the engines' ``Status`` to one connection without ever making the hub wait (issue 6).

``EngineHub`` awaits its listeners one after the other; a client that reads nothing
would hold every other client's status back. ``publish`` only queues (at most
``QUEUE_SIZE`` statuses; the oldest is dropped) and a task of the connection sends.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

from backend.protocol import Status
from backend.turn import TurnOutput

QUEUE_SIZE: Final = 32
STOP_TIMEOUT_S: Final = 5.0


class StatusRelay:
    def __init__(self, out: TurnOutput) -> None:
        self._out = out
        self._queue: deque[Status] = deque(maxlen=QUEUE_SIZE)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def publish(self, status: Status) -> None:
        """The hub's listener: queues and returns at once."""
        self._queue.append(status)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="parley-status-relay")

    async def _run(self) -> None:
        """Sends queued statuses in order; on cancel, stops (what is queued is dropped)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._out.send(self._queue.popleft())

    async def aclose(self) -> None:
        """Stops the sending task and waits for it (bounded)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=STOP_TIMEOUT_S)
