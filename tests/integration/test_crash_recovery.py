"""Nothing is lost when the backend dies mid-reply: a real backend process is killed (SIGKILL)
while it writes a long reply, a new one starts on the same data directory, and the partial
reply is there, marked incomplete."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from websockets.asyncio.client import ClientConnection, connect

from backend import protocol as p
from backend.history import CHECKPOINT_S
from backend.store import title_from

pytestmark = pytest.mark.slow

TOKEN = "crash-token"
T = 120.0
M = TypeVar("M", bound=p.Message)


@asynccontextmanager
async def backend_process(data_dir: Path) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    env = dict(
        os.environ, PARLEY_TOKEN=TOKEN, PARLEY_DATA_DIR=str(data_dir), PARLEY_CONFIG=str(data_dir / "none.toml")
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "backend",
        "serve",
        "--port",
        "0",
        "--llm-model",
        "smollm2",
        "--tts",
        "off",
        "--exit-with-parent",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        assert ready["ready"] is True
        yield ready["url"], proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 30)


async def expect(ws: ClientConnection, kind: type[M]) -> M:
    while True:
        raw = await asyncio.wait_for(ws.recv(), T)
        if isinstance(raw, str) and isinstance(message := p.decode(raw), kind):
            return message


async def hello_ready(ws: ClientConnection) -> None:
    await ws.send(p.Hello(version=p.PROTOCOL_VERSION, token=TOKEN, client="tests").to_wire())
    while (status := await expect(ws, p.Status)).state == "loading":
        pass
    assert status.state == "ready", status.detail


def test_a_reply_cut_by_a_killed_backend_is_kept_and_marked(tmp_path: Path) -> None:
    question = "Write a very long story about a dragon who learns to bake bread, in ten paragraphs."

    async def scenario() -> None:
        received: list[str] = []
        async with backend_process(tmp_path) as (url, proc), connect(url) as ws:
            await hello_ready(ws)
            await ws.send(p.Ask(turn_id=1, text=question, speak=False).to_wire())
            first_delta_at: float | None = None
            while first_delta_at is None or time.monotonic() - first_delta_at < 3 * CHECKPOINT_S:
                raw = await asyncio.wait_for(ws.recv(), T)
                message = p.decode(raw) if isinstance(raw, str) else None
                if isinstance(message, p.TextDelta):
                    received.append(message.text)
                    first_delta_at = first_delta_at or time.monotonic()
                assert not isinstance(message, p.TurnDone), "the reply ended before the kill; ask for a longer one"
            proc.kill()  # SIGKILL: no chance to finish the reply or close the database
            assert await asyncio.wait_for(proc.wait(), 30) == -9
        produced = "".join(received)
        assert produced.strip()

        async with backend_process(tmp_path) as (url, _proc), connect(url) as ws:
            await hello_ready(ws)
            await ws.send(p.ListConversations().to_wire())
            listing = await expect(ws, p.ConversationList)
            assert [c.title for c in listing.conversations] == [title_from(question)]
            await ws.send(p.OpenConversation(conversation_id=listing.conversations[0].conversation_id).to_wire())
            await expect(ws, p.ConversationOpened)
            batch = await expect(ws, p.ConversationMessages)
            assert batch.last
            user, reply = batch.messages
            assert (user.role, user.text, user.status) == ("user", question, "completed")
            assert reply.role == "assistant" and reply.status == "incomplete"
            assert reply.text.strip() and produced.startswith(reply.text)
            # the conversation goes on from what was kept
            await ws.send(p.Ask(turn_id=1, text="Say hello.", speak=False).to_wire())
            done = await expect(ws, p.TurnDone)
            assert done.status == "completed"

    asyncio.run(asyncio.wait_for(scenario(), 300))
