"""A hand-written backend that speaks the real protocol and scripts its replies.

It checks the Hello, sends Welcome and a loading-then-ready Status, and answers
every Ask with TurnStarted, the reply text in small deltas, and (when asked to
speak) a sine tone as paced audio frames interleaved with the text, then AudioEnd
and TurnDone. Cancel / Interrupt stop the turn with TurnDone(cancelled/interrupted).
Everything the client sends is kept in ``received``.

``FakeProtocolServer`` runs on the current event loop; ``FakeServerThread`` runs
one on its own loop in a background thread (for Qt tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from backend.protocol import (
    ERR_AUTH,
    ERR_PROVIDER,
    PROTOCOL_VERSION,
    Ask,
    AudioEnd,
    AudioFrame,
    AudioStart,
    Cancel,
    Error,
    Hello,
    Interrupt,
    Message,
    Status,
    TextDelta,
    Timings,
    TurnDone,
    TurnStarted,
    TurnStatus,
    Welcome,
    decode_or_error,
)

TOKEN = "test-token"


@dataclass
class Script:
    """How the fake answers."""

    reply: str = "Hello! This is **Parley**, speaking from a scripted reply. It streams in small pieces."
    chunk_chars: int = 4
    delta_interval_s: float = 0.01
    tone_hz: float = 440.0
    audio_s: float = 1.0
    sample_rate: int = 22050
    frame_ms: int = 40
    fail_after_chars: int | None = None  # send a provider Error and TurnDone(error) after this much text
    noise_before_reply: bool = False  # a malformed frame and a stale-turn delta before the reply
    statuses: tuple[Status, ...] = (
        Status(state="loading", detail="Loading the language model", progress=0.5),
        Status(state="ready", detail="", llm="fake-llm", tts="fake-tts"),
    )


@dataclass
class _Turn:
    ask: Ask
    text: list[str] = field(default_factory=list)


class FakeProtocolServer:
    """Serves the scripted protocol on 127.0.0.1 (a free port) on the running loop."""

    def __init__(self, script: Script | None = None, token: str = TOKEN) -> None:
        self.script = script or Script()
        self.token = token
        self.received: list[Message] = []
        self.connections = 0
        self._server: Server | None = None
        self.url = ""

    async def start(self) -> str:
        self._server = await serve(self._handle, "127.0.0.1", 0, compression=None, close_timeout=1.0)
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), 5.0)

    async def __aenter__(self) -> FakeProtocolServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def of(self, kind: type[Message]) -> list[Any]:
        return [m for m in list(self.received) if isinstance(m, kind)]

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        try:
            hello = decode_or_error(await asyncio.wait_for(ws.recv(), 5.0))
            self.received.append(hello)
            if not isinstance(hello, Hello) or hello.token != self.token:
                await ws.send(Error(code=ERR_AUTH, message="wrong token").to_wire())
                await ws.close(4001, "auth")
                return
            await ws.send(Welcome(version=PROTOCOL_VERSION, server="fake-backend").to_wire())
            for status in self.script.statuses:
                await ws.send(status.to_wire())
            await self._serve(ws)
        except (ConnectionClosed, TimeoutError):
            pass

    async def _serve(self, ws: ServerConnection) -> None:
        running: asyncio.Task[None] | None = None
        turn: _Turn | None = None
        try:
            async for raw in ws:
                message = decode_or_error(raw)
                self.received.append(message)
                if isinstance(message, Ask):
                    if running is not None and turn is not None and not running.done():
                        await _stop(running)
                        done = TurnDone(turn_id=turn.ask.turn_id, status="cancelled", text="".join(turn.text))
                        await ws.send(done.to_wire())
                    turn = _Turn(message)
                    running = asyncio.create_task(self._turn(ws, turn))
                elif isinstance(message, Cancel | Interrupt) and _is_running(turn, running, message.turn_id):
                    assert turn is not None and running is not None
                    status: TurnStatus = "interrupted" if isinstance(message, Interrupt) else "cancelled"
                    await _stop(running)
                    done = TurnDone(turn_id=turn.ask.turn_id, status=status, text="".join(turn.text))
                    await ws.send(done.to_wire())
        finally:
            if running is not None:
                await _stop(running)

    async def _turn(self, ws: ServerConnection, turn: _Turn) -> None:
        """Streams one scripted reply; cancelling it stops the stream where it is."""
        s = self.script
        turn_id = turn.ask.turn_id
        await ws.send(TurnStarted(turn_id=turn_id, text=turn.ask.text).to_wire())
        if s.noise_before_reply:
            await ws.send("{not json")
            await ws.send(TextDelta(turn_id=turn_id + 1000, text="STALE").to_wire())
            await ws.send(AudioFrame(turn_id=turn_id + 1000, seq=0, pcm=b"\0\0" * 10).to_wire())
        frames = _tone_frames(s) if turn.ask.speak else []
        chunks = [s.reply[i : i + s.chunk_chars] for i in range(0, len(s.reply), s.chunk_chars)]
        if frames:
            await ws.send(AudioStart(turn_id=turn_id, sample_rate=s.sample_rate).to_wire())
        sent_frames = 0
        for i, chunk in enumerate(chunks):
            if s.fail_after_chars is not None and len("".join(turn.text)) >= s.fail_after_chars:
                await ws.send(Error(code=ERR_PROVIDER, message="The fake provider failed.", turn_id=turn_id).to_wire())
                await ws.send(TurnDone(turn_id=turn_id, status="error", text="".join(turn.text)).to_wire())
                return
            turn.text.append(chunk)
            await ws.send(TextDelta(turn_id=turn_id, text=chunk).to_wire())
            due = len(frames) * (i + 1) // len(chunks)
            for seq in range(sent_frames, due):
                await ws.send(AudioFrame(turn_id=turn_id, seq=seq, pcm=frames[seq]).to_wire())
            sent_frames = due
            await asyncio.sleep(s.delta_interval_s)
        if frames:
            await ws.send(AudioEnd(turn_id=turn_id, frames=len(frames)).to_wire())
        timings = Timings(ttft_s=0.01, ttfa_s=0.02 if frames else None, total_s=0.1, tokens=len(chunks))
        await ws.send(TurnDone(turn_id=turn_id, status="completed", text=s.reply, timings=timings).to_wire())


def _is_running(turn: _Turn | None, task: asyncio.Task[None] | None, turn_id: int) -> bool:
    return turn is not None and turn.ask.turn_id == turn_id and task is not None and not task.done()


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
        await asyncio.wait_for(task, 5.0)


def _tone_frames(s: Script) -> list[bytes]:
    total = int(s.audio_s * s.sample_rate)
    t = np.arange(total) / s.sample_rate
    pcm = (0.3 * 32767 * np.sin(2 * math.pi * s.tone_hz * t)).astype(np.int16)
    step = s.sample_rate * s.frame_ms // 1000
    return [pcm[i : i + step].tobytes() for i in range(0, total, step)]


class FakeServerThread:
    """Runs a ``FakeProtocolServer`` on its own event loop in a daemon thread."""

    def __init__(self, script: Script | None = None, token: str = TOKEN) -> None:
        self.server = FakeProtocolServer(script, token)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-backend", daemon=True)

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> FakeServerThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(10.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stops the server (closing its connections) and the thread; safe to call twice."""
        if self._loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(10.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
            self._loop.close()
