"""BackendConnection against the hand-written protocol server (real websockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from assistant.net.backend_connection import (
    BackendConnection,
    ConnectionFailed,
    MessageTooLong,
    NotConnected,
)
from backend.protocol import (
    Ask,
    AudioEnd,
    AudioFrame,
    AudioStart,
    Cancel,
    Error,
    Message,
    ResetConversation,
    Status,
    TextDelta,
    TurnDone,
    TurnStarted,
    Welcome,
)
from tests.fakes.protocol_server import TOKEN, FakeProtocolServer, Script

T = TypeVar("T")


class Recorder:
    """A ConnectionSink that keeps everything and can wait for a condition."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.frames: list[AudioFrame] = []
        self.closed: list[str] = []
        self._changed = asyncio.Event()

    def on_message(self, message: Message) -> None:
        self.messages.append(message)
        self._changed.set()

    def on_audio(self, frame: AudioFrame) -> None:
        self.frames.append(frame)
        self._changed.set()

    def on_closed(self, reason: str) -> None:
        self.closed.append(reason)
        self._changed.set()

    def of(self, kind: type[T]) -> list[T]:
        return [m for m in self.messages if isinstance(m, kind)]

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        async def wait() -> None:
            while not condition():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)


def run(body: Callable[[], Awaitable[None]], timeout: float = 20.0) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(body(), timeout)

    asyncio.run(bounded())


async def poll(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_turn_streams_text_and_audio_then_ends() -> None:
    async def body() -> None:
        async with FakeProtocolServer(Script(audio_s=0.5)) as server:
            sink = Recorder()
            connection = BackendConnection(server.url, TOKEN, sink)
            welcome = await connection.connect(timeout_s=5)
            assert welcome.server == "fake-backend"
            assert isinstance(sink.messages[0], Welcome)
            await sink.until(lambda: any(s.state == "ready" for s in sink.of(Status)))
            turn = connection.ask("hi there")
            assert connection.current_turn == turn
            await sink.until(lambda: bool(sink.of(TurnDone)))
            assert connection.current_turn is None
            assert "".join(d.text for d in sink.of(TextDelta)) == server.script.reply
            assert [type(m) for m in sink.messages if isinstance(m, TurnStarted | AudioStart | AudioEnd)] == [
                TurnStarted,
                AudioStart,
                AudioEnd,
            ]
            assert sum(len(f.pcm) for f in sink.frames) == 2 * int(0.5 * 22050)
            assert all(f.turn_id == turn for f in sink.frames)
            assert sink.of(TurnDone)[0].status == "completed"
            asked = server.of(Ask)
            assert asked == [Ask(turn_id=turn, text="hi there", speak=True, pipeline="streaming")]
            await connection.close()
        assert sink.closed == []  # close() asked for: no on_closed

    run(body)


def test_wrong_token_is_a_clear_auth_failure() -> None:
    async def body() -> None:
        async with FakeProtocolServer() as server:
            connection = BackendConnection(server.url, "not-the-token", Recorder())
            with pytest.raises(ConnectionFailed) as caught:
                await connection.connect(timeout_s=5)
            assert caught.value.code == "auth"
            assert "token" in str(caught.value)
            with pytest.raises(NotConnected):
                connection.ask("hello")

    run(body)


def test_unreachable_backend_is_a_clear_failure() -> None:
    async def body() -> None:
        url = f"ws://127.0.0.1:{closed_port()}"
        with pytest.raises(ConnectionFailed) as caught:
            await BackendConnection(url, TOKEN, Recorder()).connect(timeout_s=5)
        assert caught.value.code == "unreachable"
        assert url in str(caught.value)

    run(body)


def test_cancel_drops_the_rest_of_the_turn_and_tells_the_server() -> None:
    async def body() -> None:
        script = Script(reply="word " * 200, delta_interval_s=0.02, audio_s=4.0)
        async with FakeProtocolServer(script) as server:
            sink = Recorder()
            connection = BackendConnection(server.url, TOKEN, sink)
            await connection.connect(timeout_s=5)
            turn = connection.ask("long one")
            await sink.until(lambda: len(sink.of(TextDelta)) >= 3)
            connection.cancel()
            assert connection.current_turn is None
            deltas, frames = len(sink.of(TextDelta)), len(sink.frames)
            await poll(lambda: bool(server.of(Cancel)))
            await asyncio.sleep(0.2)  # the server's TurnDone(cancelled) and any in-flight frames arrive
            assert len(sink.of(TextDelta)) == deltas
            assert len(sink.frames) == frames
            assert sink.of(TurnDone) == []  # the turn was left: its end is not delivered either
            assert server.of(Cancel) == [Cancel(turn_id=turn)]
            await connection.close()

    run(body)


def test_urgent_control_goes_ahead_of_queued_requests() -> None:
    async def body() -> None:
        script = Script(reply="word " * 100, delta_interval_s=0.02)
        async with FakeProtocolServer(script) as server:
            sink = Recorder()
            connection = BackendConnection(server.url, TOKEN, sink)
            await connection.connect(timeout_s=5)
            turn = connection.ask("first")
            await sink.until(lambda: bool(sink.of(TextDelta)))
            connection.reset_conversation()  # queued
            connection.cancel()  # urgent: must overtake the queued reset
            await poll(lambda: bool(server.of(ResetConversation)))
            sent = [m for m in server.received if isinstance(m, Cancel | ResetConversation)]
            assert sent == [Cancel(turn_id=turn), ResetConversation()]
            await connection.close()

    run(body)


def test_an_ask_cancelled_before_it_was_sent_is_never_sent() -> None:
    async def body() -> None:
        async with FakeProtocolServer() as server:
            sink = Recorder()
            connection = BackendConnection(server.url, TOKEN, sink)
            await connection.connect(timeout_s=5)
            connection.ask("never mind")
            connection.cancel()  # same tick: the writer has not run yet
            second = connection.ask("this one")
            await sink.until(lambda: bool(sink.of(TurnDone)))
            assert [a.text for a in server.of(Ask)] == ["this one"]
            assert server.of(Cancel) == []
            assert sink.of(TurnDone)[0].turn_id == second
            await connection.close()

    run(body)


def test_malformed_and_stale_frames_are_skipped() -> None:
    async def body() -> None:
        async with FakeProtocolServer(Script(noise_before_reply=True, audio_s=0.2)) as server:
            sink = Recorder()
            connection = BackendConnection(server.url, TOKEN, sink)
            await connection.connect(timeout_s=5)
            turn = connection.ask("hello")
            await sink.until(lambda: bool(sink.of(TurnDone)))
            assert all(d.turn_id == turn for d in sink.of(TextDelta))
            assert "STALE" not in "".join(d.text for d in sink.of(TextDelta))
            assert all(f.turn_id == turn for f in sink.frames)
            assert sink.of(Error) == []  # a malformed frame is logged, not delivered
            assert connection.is_open
            await connection.close()

    run(body)


def test_provider_error_reaches_the_sink_with_the_turn_end() -> None:
    async def body() -> None:
        async with FakeProtocolServer(Script(fail_after_chars=8)) as server:
            sink = Recorder()
            connection = BackendConnection(server.url, TOKEN, sink)
            await connection.connect(timeout_s=5)
            turn = connection.ask("hello")
            await sink.until(lambda: bool(sink.of(TurnDone)))
            errors = sink.of(Error)
            assert [(e.code, e.turn_id) for e in errors] == [("provider", turn)]
            assert sink.of(TurnDone)[0].status == "error"
            await connection.close()

    run(body)


def test_server_going_away_is_reported_once() -> None:
    async def body() -> None:
        server = FakeProtocolServer()
        await server.start()
        sink = Recorder()
        connection = BackendConnection(server.url, TOKEN, sink)
        await connection.connect(timeout_s=5)
        await server.stop()
        await sink.until(lambda: bool(sink.closed))
        assert not connection.is_open
        with pytest.raises(NotConnected):
            connection.ask("anyone?")
        await connection.close()
        assert len(sink.closed) == 1

    run(body)


def test_too_long_message_is_refused_before_sending() -> None:
    async def body() -> None:
        async with FakeProtocolServer() as server:
            sink = Recorder()
            connection = BackendConnection(server.url, TOKEN, sink)
            await connection.connect(timeout_s=5)
            with pytest.raises(MessageTooLong) as caught:
                connection.ask("x" * 70_000)
            assert "limit" in str(caught.value)
            assert connection.current_turn is None
            connection.ask("short")
            await sink.until(lambda: bool(sink.of(TurnDone)))
            assert [a.text for a in server.of(Ask)] == ["short"]
            await connection.close()

    run(body)
