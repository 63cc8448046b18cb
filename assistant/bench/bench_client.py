"""What the soak and load benchmarks share (issue 6): the server process and a recording client.

``FakeServerProcess`` runs ``python -m assistant.bench.fake_server`` (the real server on
fast stand-in engines) and asks it for its process figures. ``BenchClient`` is the app's
own ``BackendConnection`` with a sink that records every turn: when its audio frames
arrived, its text, and the errors.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from assistant.net.backend_connection import BackendConnection
from backend.protocol import AudioFrame, AudioStart, Error, Message, Status, TextDelta, TurnDone

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class FakeServerProcess:
    """``async with FakeServerProcess(args) as server``: ``server.url``, ``server.token``, ``await server.stats()``."""

    def __init__(self, args: Sequence[str] = ()) -> None:
        self.token = secrets.token_urlsafe(24)
        self._args = list(args)
        self._proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def __aenter__(self) -> FakeServerProcess:
        env = dict(os.environ, PARLEY_TOKEN=self.token)
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "assistant.bench.fake_server",
            *self._args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), START_TIMEOUT_S)
        if not line:
            raise RuntimeError("the benchmark server did not start")
        self.url = str(json.loads(line)["url"])
        return self

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    async def stats(self) -> dict[str, Any]:
        """The server process's resident memory (kB), file descriptors, threads and live tasks."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"stats\n")
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), STOP_TIMEOUT_S)
        figures: dict[str, Any] = json.loads(line)
        return figures

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)


@dataclass
class TurnRecord:
    """One turn as a client saw it; times are ``time.monotonic()``."""

    asked_at: float
    status: str = ""
    text: str = ""
    sample_rate: int = 0
    frames: list[tuple[float, int]] = field(default_factory=list)  # (arrival, samples)
    errors: list[str] = field(default_factory=list)


class BenchClient:
    """One connection that asks questions one after the other and records how each turn arrived."""

    def __init__(self, url: str, token: str) -> None:
        self._connection = BackendConnection(url, token, self, client_name="parley-bench")
        self._ready = asyncio.Event()
        self._done: asyncio.Future[None] | None = None
        self._turn: TurnRecord | None = None
        self.errors: list[str] = []
        self.closed_reason = ""

    async def connect(self, timeout_s: float) -> None:
        """Connects and waits until the backend's engines are ready."""
        await self._connection.connect(timeout_s)
        await asyncio.wait_for(self._ready.wait(), timeout_s)

    async def ask(self, text: str, timeout_s: float) -> TurnRecord:
        """Asks ``text`` and waits for the turn to end (or ``timeout_s``, recorded as status "timeout")."""
        record = TurnRecord(asked_at=time.monotonic())
        self._turn = record
        self._done = asyncio.get_running_loop().create_future()
        try:
            self._connection.ask(text, speak=True)
            await asyncio.wait_for(asyncio.shield(self._done), timeout_s)
        except TimeoutError:
            record.status = "timeout"
        except Exception as exc:  # a refused ask: counted as an error of the turn
            record.status = "refused"
            record.errors.append(str(exc))
        finally:
            self._turn = None
        return record

    async def close(self) -> None:
        await self._connection.close()

    # ---- ConnectionSink ----------------------------------------------------------------

    def on_message(self, message: Message) -> None:
        turn = self._turn
        match message:
            case Status():
                if message.state == "ready":
                    self._ready.set()
                elif message.state == "error":
                    self.errors.append(message.detail)
            case TextDelta() if turn is not None:
                turn.text += message.text
            case AudioStart() if turn is not None:
                turn.sample_rate = message.sample_rate
            case Error():
                (turn.errors if turn is not None else self.errors).append(f"{message.code}: {message.message}")
            case TurnDone() if turn is not None:
                turn.status = message.status
                if self._done is not None and not self._done.done():
                    self._done.set_result(None)
            case _:
                pass

    def on_audio(self, frame: AudioFrame) -> None:
        turn = self._turn
        if turn is not None:
            turn.frames.append((time.monotonic(), len(frame.pcm) // 2))

    def on_closed(self, reason: str) -> None:
        self.closed_reason = reason
        self.errors.append(f"connection closed: {reason}")
        if self._done is not None and not self._done.done():
            self._done.set_result(None)
