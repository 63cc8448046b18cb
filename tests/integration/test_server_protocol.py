"""The real websocket server on 127.0.0.1:0 with fake engines, driven by a real websocket client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from backend import protocol as p
from backend.engine_hub import EngineHub
from backend.server import ParleyServer
from tests.fakes.engines import ScriptedLLM, ToneTTS

TOKEN = "test-token-123"
T = 10.0


@asynccontextmanager
async def running_server(llm: ScriptedLLM | None = None) -> AsyncIterator[str]:
    hub = EngineHub(llm or ScriptedLLM(["Hello", " there.", " How", " are", " you?"], delay_s=0.005), ToneTTS())
    server = ParleyServer(hub, TOKEN, "Be brief.", 4096)
    url = await server.start("127.0.0.1", 0)
    hub.start_loading()
    try:
        yield url
    finally:
        await asyncio.wait_for(server.aclose(), T)
        await asyncio.wait_for(hub.aclose(), T)


async def recv_message(ws: ClientConnection) -> p.Message:
    while True:
        raw = await asyncio.wait_for(ws.recv(), T)
        if isinstance(raw, str):
            return p.decode(raw)


async def recv_until(ws: ClientConnection, kind: type[p.Message]) -> list[p.Message | p.AudioFrame]:
    seen: list[p.Message | p.AudioFrame] = []
    while True:
        raw = await asyncio.wait_for(ws.recv(), T)
        item: p.Message | p.AudioFrame = p.decode(raw) if isinstance(raw, str) else p.AudioFrame.from_wire(raw)
        seen.append(item)
        if isinstance(item, kind):
            return seen


async def hello(ws: ClientConnection, token: str = TOKEN, version: str = p.PROTOCOL_VERSION) -> p.Message:
    await ws.send(p.Hello(version=version, token=token, client="tests").to_wire())
    return await recv_message(ws)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_full_turn_over_the_wire() -> None:
    async def scenario() -> None:
        async with running_server() as url, connect(url) as ws:
            assert isinstance(await hello(ws), p.Welcome)
            ready = False
            while not ready:
                status = await recv_message(ws)
                assert isinstance(status, p.Status)
                ready = status.state == "ready"
            await ws.send(p.Ask(turn_id=1, text="Hi!").to_wire())
            seen = await recv_until(ws, p.TurnDone)
            kinds = [type(s).__name__ for s in seen]
            assert kinds[0] == "TurnStarted" and kinds[-1] == "TurnDone"
            assert "AudioStart" in kinds and "AudioEnd" in kinds and "AudioFrame" in kinds
            assert kinds.index("AudioStart") < kinds.index("AudioFrame") < kinds.index("AudioEnd")
            text = "".join(s.text for s in seen if isinstance(s, p.TextDelta))
            assert text == "Hello there. How are you?"
            done = seen[-1]
            assert isinstance(done, p.TurnDone) and done.status == "completed" and done.text == text
            assert done.timings.ttft_s is not None and done.timings.ttfa_s is not None

    run(scenario)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{", p.ERR_MALFORMED),
        ('{"type": "nope"}', p.ERR_UNKNOWN_TYPE),
        ('{"type": "ask", "turn_id": "x", "text": "hi"}', p.ERR_MALFORMED),
        ('{"type": "welcome", "version": "1.0", "server": "me"}', p.ERR_STATE),
        (p.Ask(turn_id=9, text="   ").to_wire(), p.ERR_MALFORMED),
        (json.dumps({"type": "ask", "turn_id": 1, "text": "x" * 100_000}), p.ERR_TOO_LARGE),
        (b"\x00\x01binary", p.ERR_MALFORMED),
    ],
    ids=["bad json", "unknown", "wrong type", "server message", "empty question", "too large", "binary"],
)
def test_bad_input_gets_error_and_connection_keeps_working(raw: Any, code: str) -> None:
    async def scenario() -> None:
        async with running_server() as url, connect(url) as ws:
            assert isinstance(await hello(ws), p.Welcome)
            await ws.send(raw)
            while True:
                reply = await recv_message(ws)
                if isinstance(reply, p.Error):
                    break
            assert reply.code == code
            await ws.send(p.Ask(turn_id=2, text="Still there?").to_wire())
            seen = await recv_until(ws, p.TurnDone)
            assert isinstance(seen[-1], p.TurnDone) and seen[-1].status == "completed"

    run(scenario)


@pytest.mark.parametrize(
    ("token", "version", "code"),
    [("wrong", p.PROTOCOL_VERSION, p.ERR_AUTH), ("", p.PROTOCOL_VERSION, p.ERR_AUTH), (TOKEN, "2.0", p.ERR_VERSION)],
    ids=["wrong token", "empty token", "future version"],
)
def test_refused_hello(token: str, version: str, code: str) -> None:
    async def scenario() -> None:
        async with running_server() as url, connect(url) as ws:
            reply = await hello(ws, token=token, version=version)
            assert isinstance(reply, p.Error) and reply.code == code
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), T)

    run(scenario)


def test_first_message_must_be_hello() -> None:
    async def scenario() -> None:
        async with running_server() as url, connect(url) as ws:
            await ws.send(p.Ask(turn_id=1, text="hi").to_wire())
            reply = await recv_message(ws)
            assert isinstance(reply, p.Error) and reply.code == p.ERR_STATE
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), T)

    run(scenario)


def test_browser_origin_is_refused() -> None:
    async def scenario() -> None:
        async with running_server() as url:
            with pytest.raises(InvalidStatus) as info:
                async with connect(url, origin="https://evil.example"):  # type: ignore[arg-type]
                    pass
            assert info.value.response.status_code == 403

    run(scenario)


def test_frames_beyond_the_hard_limit_close_the_connection() -> None:
    async def scenario() -> None:
        async with running_server() as url, connect(url, max_size=None) as ws:
            assert isinstance(await hello(ws), p.Welcome)
            await ws.send(b"x" * (5 * p.MAX_BINARY_FRAME_BYTES))
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), T)

    run(scenario)


def test_cancel_over_the_wire() -> None:
    async def scenario() -> None:
        llm = ScriptedLLM(["word "] * 400, delay_s=0.01)
        async with running_server(llm) as url, connect(url) as ws:
            assert isinstance(await hello(ws), p.Welcome)
            await ws.send(p.Ask(turn_id=1, text="Talk a lot").to_wire())
            await recv_until(ws, p.TextDelta)
            await ws.send(p.Cancel(turn_id=1).to_wire())
            seen = await recv_until(ws, p.TurnDone)
            done = seen[-1]
            assert isinstance(done, p.TurnDone) and done.status == "cancelled"
            assert 0 < len(done.text) < 400 * 5

    run(scenario)


def test_two_sessions_are_isolated() -> None:
    async def scenario() -> None:
        async with running_server() as url, connect(url) as a, connect(url) as b:
            assert isinstance(await hello(a), p.Welcome)
            assert isinstance(await hello(b), p.Welcome)
            await a.send("garbage")
            await b.send(p.Ask(turn_id=1, text="Hi").to_wire())
            seen_b = await recv_until(b, p.TurnDone)
            assert not any(isinstance(s, p.Error) for s in seen_b)
            seen_a = await recv_until(a, p.Error)
            assert isinstance(seen_a[-1], p.Error)

    run(scenario)
