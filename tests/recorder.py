"""A hand-written TurnOutput that records what a turn sends, for pipeline tests."""

from __future__ import annotations

import asyncio

from backend.protocol import AudioFrame, Message


class RecordingOutput:
    """Keeps every message and audio frame in arrival order; can wait for a message type."""

    def __init__(self) -> None:
        self.events: list[Message | AudioFrame] = []
        self._changed = asyncio.Event()

    async def send(self, message: Message) -> None:
        self.events.append(message)
        self._changed.set()

    async def send_audio(self, frame: AudioFrame) -> None:
        self.events.append(frame)
        self._changed.set()

    def messages(self) -> list[Message]:
        return [e for e in self.events if isinstance(e, Message)]

    def frames(self) -> list[AudioFrame]:
        return [e for e in self.events if isinstance(e, AudioFrame)]

    def of(self, kind: type[Message]) -> list[Message]:
        return [m for m in self.messages() if isinstance(m, kind)]

    async def wait_for(self, kind: type[Message] | type[AudioFrame], count: int = 1, timeout: float = 10.0) -> None:
        async def until() -> None:
            while sum(isinstance(e, kind) for e in self.events) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), timeout)
