"""A raw protocol client for the server tests of issue 6: every await bounded by ``T``."""

from __future__ import annotations

import asyncio
from typing import TypeVar

import numpy as np
from websockets.asyncio.client import ClientConnection

from backend import protocol as p

T = 20.0
M = TypeVar("M", bound=p.Message)
Item = p.Message | p.AudioFrame


async def recv_item(ws: ClientConnection, timeout: float = T) -> Item:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    return p.decode(raw) if isinstance(raw, str) else p.AudioFrame.from_wire(raw)


async def expect(ws: ClientConnection, kind: type[M], timeout: float = T) -> M:
    """Reads until a message of ``kind`` arrives (others are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            item = await recv_item(ws)
            if isinstance(item, kind):
                return item


async def hello_ready(
    ws: ClientConnection,
    token: str,
    *,
    capabilities: tuple[str, ...] = (),
    hello: p.Hello | None = None,
    skipped: list[Item] | None = None,
) -> tuple[p.Welcome, p.SessionInfo | None]:
    """Says hello and waits for the engines to be ready; returns the welcome and the session info if any.

    What else arrives meanwhile (the catch-up of a resumed turn) goes to ``skipped``.
    """
    await ws.send((hello or p.Hello(version=p.PROTOCOL_VERSION, token=token, capabilities=capabilities)).to_wire())
    welcome = await recv_item(ws)
    assert isinstance(welcome, p.Welcome), welcome
    session: p.SessionInfo | None = None
    async with asyncio.timeout(T):
        while True:
            item = await recv_item(ws)
            if isinstance(item, p.SessionInfo):
                session = item
            elif isinstance(item, p.Status) and item.state != "loading":
                assert item.state == "ready", item.detail
                return welcome, session
            elif skipped is not None and not isinstance(item, p.Status):
                skipped.append(item)


async def collect_turn(ws: ClientConnection, turn_id: int, timeout: float = T) -> list[Item]:
    """Everything up to and including the ``TurnDone`` of ``turn_id``."""
    seen: list[Item] = []
    async with asyncio.timeout(timeout):
        while True:
            item = await recv_item(ws)
            seen.append(item)
            if isinstance(item, p.TurnDone) and item.turn_id == turn_id:
                return seen


def text_of(items: list[Item]) -> str:
    return "".join(m.text for m in items if isinstance(m, p.TextDelta))


def errors_of(items: list[Item]) -> list[p.Error]:
    return [m for m in items if isinstance(m, p.Error)]


async def speak(ws: ClientConnection, turn_id: int, seconds: float = 0.5) -> None:
    """Sends a voice turn: ``seconds`` of a quiet tone as 20 ms frames, then the end of the utterance."""
    rate = p.VOICE_SAMPLE_RATE
    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * 200 * t) * 3000).astype("<i2").tobytes()
    await ws.send(p.UtteranceStart(turn_id=turn_id).to_wire())
    step = rate // 50 * 2
    for seq, at in enumerate(range(0, len(pcm), step)):
        await ws.send(p.AudioFrame(turn_id=turn_id, seq=seq, pcm=pcm[at : at + step]).to_wire())
    await ws.send(p.UtteranceEnd(turn_id=turn_id).to_wire())
