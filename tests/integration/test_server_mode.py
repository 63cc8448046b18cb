"""The backend as a server (issue 6): TLS, a token off loopback, many apps at once, isolated
connections, and sessions that are resumed after their link dropped (nothing lost, nothing twice).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage

from assistant.net.backend_connection import BackendConnection, ConnectionFailed
from backend import protocol as p
from backend.engines.base import ChatMessage, ProgressCallback
from backend.limits import ConnectionLimits
from backend.resume import LOST_QUESTION
from backend.tls import server_context
from tests.fakes import raw_ws
from tests.fakes.certs import client_context, self_signed
from tests.fakes.engines import ScriptedLLM, ToneTTS
from tests.fakes.live_server import TOKEN, live_server
from tests.fakes.wire import T, collect_turn, expect, hello_ready, recv_item, text_of

RESUME = (p.CAPABILITY_RESUME,)
WORDS = ["word "] * 200
FULL = "".join(WORDS)


def run(scenario: Callable[[], Awaitable[None]], timeout: float = 60) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- TLS and the command line ----------------------------------------------------------------------


def test_tls_serves_wss_to_a_client_that_trusts_the_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)

    class Sink:
        def __init__(self) -> None:
            self.messages: list[p.Message] = []

        def on_message(self, message: p.Message) -> None:
            self.messages.append(message)

        def on_audio(self, frame: p.AudioFrame) -> None:
            pass

        def on_closed(self, reason: str) -> None:
            pass

    async def scenario() -> None:
        llm = ScriptedLLM(["Hello", " over", " TLS."])
        async with live_server(llm, ToneTTS(), tls=server_context(cert, key)) as live:
            assert live.url.startswith("wss://127.0.0.1:")
            async with connect(live.url, ssl=client_context(cert)) as ws:
                welcome, _ = await hello_ready(ws, TOKEN)
                assert p.CAPABILITY_RESUME in welcome.capabilities
                await ws.send(p.Ask(turn_id=1, text="Hi").to_wire())
                assert text_of(await collect_turn(ws, 1)) == "Hello over TLS."
            plain = live.url.replace("wss://", "ws://")
            with pytest.raises((InvalidMessage, ConnectionClosed, OSError)):
                async with connect(plain, open_timeout=5):
                    pass
            # the app's own connection: refused with a clear message, then trusting the certificate
            with pytest.raises(ConnectionFailed) as untrusted:
                await BackendConnection(live.url, TOKEN, Sink()).connect(10.0)
            assert "is not trusted" in str(untrusted.value) and "SSL_CERT_FILE" in str(untrusted.value)
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))
            sink = Sink()
            connection = BackendConnection(live.url, TOKEN, sink)
            welcome = await connection.connect(10.0)
            assert welcome.server == "parley-backend" and connection.session is not None
            await connection.close()

    run(scenario)


def backend_command(*args: str) -> list[str]:
    return [
        sys.executable, "-m", "backend", "serve", "--port", "0", "--llm-provider", "openai", "--llm-model", "fake",
        "--tts", "off", "--stt", "off", *args,
    ]


def backend_env(tmp_path: Path, token: str | None = TOKEN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PARLEY_TOKEN"}
    env.update(
        PARLEY_DATA_DIR=str(tmp_path / "data"), PARLEY_CONFIG=str(tmp_path / "none.toml"), OPENAI_API_KEY="unused",
        OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}/v1",
    )
    if token:
        env["PARLEY_TOKEN"] = token
    return env


def test_the_command_line_serves_wss_with_a_certificate_and_key(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)

    async def scenario() -> None:
        proc = await asyncio.create_subprocess_exec(
            *backend_command("--tls-cert", str(cert), "--tls-key", str(key), "--exit-with-parent"),
            env=backend_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        try:
            assert proc.stdout is not None
            ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
            assert ready["ready"] is True and ready["url"].startswith("wss://127.0.0.1:")
            async with connect(ready["url"], ssl=client_context(cert)) as ws:
                welcome, _ = await hello_ready(ws, TOKEN)
                assert welcome.server == "parley-backend"
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)

    run(scenario, 90)


@pytest.mark.parametrize(
    ("args", "token", "says"),
    [
        (("--host", "0.0.0.0"), None, "a token is required"),
        (("--tls-cert", "CERT"), TOKEN, "--tls-cert and --tls-key go together"),
        (("--tls-cert", "CERT", "--tls-key", "OTHER_KEY"), TOKEN, "cannot be used together"),
        (("--tls-cert", "MISSING", "--tls-key", "KEY"), TOKEN, "does not exist"),
    ],
    ids=["no token off loopback", "cert without key", "key of another cert", "missing cert"],
)
def test_the_command_line_refuses_to_start_unsafely_with_a_clear_message(
    tmp_path: Path, args: Sequence[str], token: str | None, says: str
) -> None:
    cert, key = self_signed(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = self_signed(other)
    paths = {"CERT": str(cert), "KEY": str(key), "OTHER_KEY": str(other_key), "MISSING": str(tmp_path / "nope.pem")}
    command = backend_command(*[paths.get(a, a) for a in args])
    result = subprocess.run(command, env=backend_env(tmp_path, token), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert says in result.stderr and result.stdout == ""
    assert "PRIVATE KEY" not in result.stderr


# ---- many apps at once; one that stops reading delays nobody -----------------------------------------


def test_many_apps_are_served_at_once_each_in_its_own_session() -> None:
    async def one(url: str, n: int) -> str:
        async with connect(url) as ws:
            await hello_ready(ws, TOKEN)
            await ws.send(p.Ask(turn_id=1, text=f"question {n}").to_wire())
            items = await collect_turn(ws, 1)
            done = items[-1]
            assert isinstance(done, p.TurnDone) and done.status == "completed"
            assert sum(isinstance(i, p.AudioFrame) for i in items) > 0
            return text_of(items)

    async def scenario() -> None:
        async with live_server(ScriptedLLM(["Hello", " there."], delay_s=0.01), ToneTTS()) as live:
            texts = await asyncio.gather(*(one(live.url, n) for n in range(12)))
            assert texts == ["Hello there."] * 12
            conversations, total = await live.store.list_conversations()
            assert total == 12 and {c.title for c in conversations} == {f"question {n}" for n in range(12)}

    run(scenario)


class FloodingLLM:
    """A shared engine: a flood of text for a question with "flood" in it, a short reply otherwise."""

    def __init__(self) -> None:
        self.floods = 0

    @property
    def name(self) -> str:
        return "flooding"

    async def load(self, progress: ProgressCallback) -> None:
        pass

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        if "flood" in messages[-1].content:
            self.floods += 1
            while True:  # until the server cuts the stuck client off and cancels the turn
                await asyncio.sleep(0)
                yield "x" * 4000
        else:
            for piece in ["Hello", " there.", " How", " are", " you?"]:
                await asyncio.sleep(0.005)
                yield piece

    async def aclose(self) -> None:
        pass


def test_a_client_that_stops_reading_never_delays_another_and_is_cut_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="parley")
    limits = ConnectionLimits(send_timeout_s=2.0)

    async def scenario() -> None:
        llm = FloodingLLM()
        async with live_server(llm, ToneTTS(seconds_per_word=0.6), limits=limits) as live:
            stuck = raw_ws.open_socket(live.url, receive_buffer=4096)  # a small window, never read
            assert b" 101 " in await asyncio.to_thread(raw_ws.upgrade, stuck)
            stuck.sendall(raw_ws.frame(p.Hello(version=p.PROTOCOL_VERSION, token=TOKEN).to_wire().encode()))
            stuck.sendall(raw_ws.frame(p.Ask(turn_id=1, text="flood me", speak=False).to_wire().encode()))
            while llm.floods == 0:
                await asyncio.sleep(0.01)
            async with connect(live.url) as ws:
                await hello_ready(ws, TOKEN)
                asked = time.monotonic()
                await ws.send(p.Ask(turn_id=1, text="Hi").to_wire())
                arrivals: list[tuple[float, int]] = []
                async with asyncio.timeout(T):
                    while not isinstance(item := await recv_item(ws), p.TurnDone):
                        if isinstance(item, p.AudioFrame):
                            arrivals.append((time.monotonic(), len(item.pcm) // 2))
                assert item.status == "completed" and item.text == "Hello there. How are you?"
            late = frame_lateness(arrivals, ToneTTS().sample_rate)
            print(f"\nwhile another client was stuck: {len(arrivals)} frames, first after "
                  f"{1000 * (arrivals[0][0] - asked):.0f} ms, latest paced frame {1000 * max(late):.1f} ms late")
            assert max(late) < 2.0  # a hang guard only: a stuck neighbour would hold it for seconds
            # the server cut the stuck client off: what it buffered ends in a reset or an end of stream
            await asyncio.to_thread(raw_ws.read_until_closed, stuck, T)
            stuck.close()

    run(scenario)
    assert any("took no data for 2 s: cutting it off" in r.getMessage() for r in caplog.records)


def frame_lateness(arrivals: list[tuple[float, int]], rate: int) -> list[float]:
    """Seconds each paced frame arrived after it was due (see assistant/bench/load_bench.py)."""
    from assistant.bench.load_bench import PACED_AFTER_S
    from backend.audio_frames import LEAD_SECONDS

    first, offset, late = arrivals[0][0], 0, [0.0]
    for arrived, samples in arrivals:
        at = offset / rate
        if at >= PACED_AFTER_S:
            late.append(arrived - (first + at - LEAD_SECONDS))
        offset += samples
    return late


# ---- resuming a session whose link dropped -------------------------------------------------------


async def start_long_turn(url: str, deltas: int) -> tuple[Any, p.SessionInfo, str]:
    """Opens a resumable session, asks turn 1 and reads ``deltas`` text deltas of it."""
    ws = await connect(url)
    _, session = await hello_ready(ws, TOKEN, capabilities=RESUME)
    assert session is not None and not session.resumed and session.session_id
    await ws.send(p.Ask(turn_id=1, text="Talk a lot", speak=False).to_wire())
    text = ""
    while text.count("word") < deltas:
        item = await recv_item(ws)
        if isinstance(item, p.TextDelta):
            text += item.text
    return ws, session, text


async def rest_of_turn(ws: Any, early: list[Any], turn_id: int) -> list[Any]:
    """The turn's messages: those that came with the greeting, then the rest up to its ``TurnDone``."""
    if any(isinstance(i, p.TurnDone) and i.turn_id == turn_id for i in early):
        return early
    return early + await collect_turn(ws, turn_id)


def resume_hello(session: p.SessionInfo, turn_id: int | None, received: str) -> p.ResumeHello:
    return p.ResumeHello(
        version=p.PROTOCOL_VERSION, token=TOKEN, capabilities=RESUME, session_id=session.session_id,
        turn_id=turn_id, received_chars=len(received),
    )


def test_a_reply_still_running_is_resumed_without_losing_or_repeating_text() -> None:
    async def scenario() -> None:
        async with live_server(ScriptedLLM(WORDS, delay_s=0.005)) as live:
            ws, session, received = await start_long_turn(live.url, 20)
            ws.transport.abort()  # the link drops: no close frame
            await asyncio.sleep(0.2)  # the turn runs on meanwhile
            async with connect(live.url) as again:
                early: list[Any] = []
                welcome, info = await hello_ready(again, TOKEN, hello=resume_hello(session, 1, received), skipped=early)
                assert info is not None and info.resumed and info.session_id == session.session_id
                items = await rest_of_turn(again, early, 1)
                done = items[-1]
                assert isinstance(done, p.TurnDone) and done.status == "completed" and done.text == FULL
                assert received + text_of(items) == FULL
                await again.send(p.Ask(turn_id=2, text="And now?", speak=False).to_wire())
                assert (await collect_turn(again, 2))[-1].status == "completed"  # type: ignore[union-attr]
            conversations, total = await live.store.list_conversations()
            assert total == 1  # the same conversation went on
            messages = await live.store.messages(conversations[0].conversation_id)
            assert [(m.role, m.status) for m in messages] == [("user", "completed"), ("assistant", "completed")] * 2

    run(scenario)


def test_a_reply_that_ended_while_the_link_was_down_arrives_once_in_full() -> None:
    async def scenario() -> None:
        async with live_server(ScriptedLLM(WORDS[:40], delay_s=0.002)) as live:
            ws, session, received = await start_long_turn(live.url, 5)
            ws.transport.abort()
            for _ in range(200):  # until the turn is over and stored
                await live.store.flush()
                conversations, _ = await live.store.list_conversations()
                messages = await live.store.messages(conversations[0].conversation_id)
                if messages[-1].status == "completed":
                    break
                await asyncio.sleep(0.02)
            full = "".join(WORDS[:40])
            assert messages[-1].text == full
            async with connect(live.url) as again:
                early: list[Any] = []
                _, info = await hello_ready(again, TOKEN, hello=resume_hello(session, 1, received), skipped=early)
                assert info is not None and info.resumed
                items = await rest_of_turn(again, early, 1)
                deltas = [i for i in items if isinstance(i, p.TextDelta)]
                assert [d.text for d in deltas] == [full[len(received) :]]
                assert isinstance(items[-1], p.TurnDone) and items[-1].text == full

    run(scenario)


def test_resuming_an_unknown_or_expired_session_starts_afresh_and_says_so() -> None:
    limits = ConnectionLimits(resume_grace_s=0.3)

    async def scenario() -> None:
        async with live_server(ScriptedLLM(WORDS, delay_s=0.005), limits=limits) as live:
            ws, session, received = await start_long_turn(live.url, 5)
            ws.transport.abort()
            await asyncio.sleep(1.0)  # beyond the grace period: the session was closed, its turn cancelled
            async with connect(live.url) as again:
                _, info = await hello_ready(again, TOKEN, hello=resume_hello(session, 1, received))
                assert info is not None and not info.resumed and info.session_id != session.session_id
                assert info.detail == "The earlier session has ended."
                await again.send(p.Ask(turn_id=2, text="Hello?", speak=False).to_wire())
                assert (await collect_turn(again, 2))[-1].status == "completed"  # type: ignore[union-attr]
            conversations, _ = await live.store.list_conversations()
            first = min(conversations, key=lambda c: c.conversation_id)
            reply = (await live.store.messages(first.conversation_id))[1]
            assert reply.status == "cancelled" and reply.text.startswith(received)

    run(scenario)


def test_a_question_that_never_arrived_is_reported_lost() -> None:
    async def scenario() -> None:
        async with live_server(ScriptedLLM(["Short."])) as live:
            async with connect(live.url) as ws:
                _, session = await hello_ready(ws, TOKEN, capabilities=RESUME)
                await ws.send(p.Ask(turn_id=1, text="One", speak=False).to_wire())
                await collect_turn(ws, 1)
                assert session is not None
                ws.transport.abort()
            async with connect(live.url) as again:
                early: list[Any] = []
                _, info = await hello_ready(again, TOKEN, hello=resume_hello(session, 2, ""), skipped=early)
                assert info is not None and info.resumed
                items = await rest_of_turn(again, early, 2)
                assert [type(i) for i in items] == [p.Error, p.TurnDone]
                assert items[0].message == LOST_QUESTION and items[1].status == "error"

    run(scenario)


def test_a_resume_takes_the_session_from_a_connection_that_did_not_notice_its_link_died() -> None:
    async def scenario() -> None:
        async with live_server(ScriptedLLM(WORDS, delay_s=0.005)) as live:
            ws, session, received = await start_long_turn(live.url, 10)
            # the old connection is still open on the server; its client never reads again
            async with connect(live.url) as again:
                early: list[Any] = []
                _, info = await hello_ready(again, TOKEN, hello=resume_hello(session, 1, received), skipped=early)
                assert info is not None and info.resumed
                items = await rest_of_turn(again, early, 1)
                assert isinstance(items[-1], p.TurnDone) and items[-1].text == FULL
                assert received + text_of(items) == FULL
            with pytest.raises(ConnectionClosed):  # the server dropped the old connection
                async with asyncio.timeout(T):
                    while True:
                        await ws.recv()

    run(scenario)


def test_a_client_that_says_goodbye_leaves_no_session_behind() -> None:
    async def scenario() -> None:
        async with live_server(ScriptedLLM(WORDS, delay_s=0.005)) as live:
            ws, session, received = await start_long_turn(live.url, 5)
            await ws.close()
            async with connect(live.url) as again:
                _, info = await hello_ready(again, TOKEN, hello=resume_hello(session, 1, received))
                assert info is not None and not info.resumed

    run(scenario)


def test_resume_keeps_other_sessions_apart() -> None:
    async def scenario() -> None:
        async with live_server(ScriptedLLM(WORDS, delay_s=0.005)) as live:
            ws, session, received = await start_long_turn(live.url, 5)
            async with connect(live.url) as other:
                _, other_session = await hello_ready(other, TOKEN, capabilities=RESUME)
                assert other_session is not None and other_session.session_id != session.session_id
            ws.transport.abort()
            wrong = p.ResumeHello(version=p.PROTOCOL_VERSION, token="wrong", session_id=session.session_id)
            async with connect(live.url) as intruder:  # the session id alone opens nothing
                await intruder.send(wrong.to_wire())
                refused = await expect(intruder, p.Error)
                assert refused.code == p.ERR_AUTH

    run(scenario)
