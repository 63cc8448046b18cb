"""The real backend process (``python -m backend serve``) with a real small model and real piper.

Driven by a real websocket client (the raw protocol) and by the app's own client and
audio player, with the reply played into the virtual sound card and recorded back.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect

from assistant.audio.player import AudioPlayer
from assistant.headless_turn import HeadlessClient
from assistant.net.backend_connection import BackendConnection
from backend import protocol as p
from tests.monitor_recorder import read_pcm, recording_monitor

pytestmark = pytest.mark.slow

TOKEN = "integration-token"
T = 120.0


@asynccontextmanager
async def backend_process(
    data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """``python -m backend serve`` on port 0 with SmolLM2 (or that model name at a remote provider)."""
    env = dict(
        os.environ,
        PARLEY_TOKEN=TOKEN,
        PARLEY_DATA_DIR=str(data_dir),
        PARLEY_CONFIG=str(data_dir / "none.toml"),
        **(env or {}),
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
        "--exit-with-parent",
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        ready = json.loads(line)
        assert ready["ready"] is True and ready["url"].startswith("ws://127.0.0.1:")
        yield ready["url"], proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)


async def hello_ready(ws: ClientConnection) -> p.Status:
    await ws.send(p.Hello(version=p.PROTOCOL_VERSION, token=TOKEN, client="tests").to_wire())
    while True:
        raw = await asyncio.wait_for(ws.recv(), T)
        if isinstance(raw, str):
            msg = p.decode(raw)
            if isinstance(msg, p.Status) and msg.state != "loading":
                return msg


async def collect_turn(ws: ClientConnection) -> list[p.Message | p.AudioFrame]:
    seen: list[p.Message | p.AudioFrame] = []
    while True:
        raw = await asyncio.wait_for(ws.recv(), T)
        item = p.decode(raw) if isinstance(raw, str) else p.AudioFrame.from_wire(raw)
        seen.append(item)
        if isinstance(item, p.TurnDone):
            return seen


def run(scenario: Callable[[], Awaitable[None]], timeout: float = 240) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout))


def test_real_turn_streams_text_and_speech(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with backend_process(tmp_path) as (url, _), connect(url) as ws:
            status = await hello_ready(ws)
            assert status.state == "ready", status.detail
            assert "smollm2" in status.llm and "joe" in status.tts
            await ws.send(p.Ask(turn_id=1, text="What is the capital of France?").to_wire())
            seen = await collect_turn(ws)
            done = seen[-1]
            assert isinstance(done, p.TurnDone) and done.status == "completed", done
            text = "".join(m.text for m in seen if isinstance(m, p.TextDelta))
            assert text.strip() and done.text == text
            starts = [m for m in seen if isinstance(m, p.AudioStart)]
            assert len(starts) == 1 and starts[0].sample_rate == 22050
            pcm = np.frombuffer(b"".join(f.pcm for f in seen if isinstance(f, p.AudioFrame)), dtype="<i2")
            assert len(pcm) > 22050 * 0.3, "less than 0.3 s of speech"
            rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
            assert rms > 300, f"speech expected, got rms {rms:.0f}"
            t = done.timings
            assert t.ttft_s is not None and t.ttfa_s is not None and 0 < t.ttft_s <= t.ttfa_s <= t.total_s
            assert t.tokens > 0 and t.audio_s > 0.3

            # a second question sees the first in its context and still works; then cancel mid-reply
            await ws.send(p.Ask(turn_id=2, text="Write a long story about a dragon, in ten paragraphs.").to_wire())
            while True:
                raw = await asyncio.wait_for(ws.recv(), T)
                if isinstance(raw, str) and isinstance(p.decode(raw), p.TextDelta):
                    break
            await ws.send(p.Cancel(turn_id=2).to_wire())
            seen = await collect_turn(ws)
            done = seen[-1]
            assert isinstance(done, p.TurnDone) and done.turn_id == 2 and done.status == "cancelled"

    run(scenario)


def test_backend_exits_when_the_app_is_gone(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with backend_process(tmp_path, "--tts", "off") as (_, proc):
            assert proc.stdin is not None
            proc.stdin.close()
            code = await asyncio.wait_for(proc.wait(), 30)
            assert code == 0

    run(scenario)


def test_backend_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PARLEY_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "backend", "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "token is required" in result.stderr
    assert result.stdout == ""


@pytest.mark.audio
def test_spoken_reply_reaches_the_sound_card_without_underruns(pulseaudio: str, tmp_path: Path) -> None:
    """The app's client and player play a real reply into the null sink; its monitor hears speech."""

    async def scenario() -> None:
        player = AudioPlayer()
        client = HeadlessClient(player)
        async with backend_process(tmp_path) as (url, _):
            connection = BackendConnection(url, TOKEN, client)
            client.connection = connection
            try:
                await asyncio.wait_for(connection.connect(), 30)
                await client.wait_ready(T)
                with recording_monitor(tmp_path / "monitor.raw", 22050) as path:
                    record = await client.ask("Say two short sentences about the sea.", timeout_s=T)
                    await asyncio.sleep(0.3)  # the tail reaches the monitor
            finally:
                await connection.close()
                player.close()
        assert record.status == "completed", record.error
        assert record.ttft_s is not None and record.ttfa_s is not None and record.ttft_s <= record.ttfa_s
        assert record.samples_played > 22050 * 0.3
        assert record.underruns == 0
        heard = read_pcm(path).astype(np.float64)
        window = 2205  # 100 ms
        loud_windows = sum(
            1 for i in range(0, len(heard) - window, window) if np.sqrt(np.mean(heard[i : i + window] ** 2)) > 300
        )
        assert loud_windows >= 3, "speech-level energy expected on the monitor"

    run(scenario)
