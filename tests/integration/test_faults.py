"""Faults, each with a test (issue 6): providers that fail in every way, a link that drops, a backend
killed mid-reply, a sound device that fails while it plays, damaged files.

Every time the person gets a clear message, what was written is kept (also in the store), and
the next turn works.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from websockets.asyncio.client import connect

from assistant.backend_client import BackendClient
from assistant.ui.main_window import MainWindow
from backend import protocol as p
from backend.config import AudioConfig, BackendConfig, Config, LLMConfig, STTConfig, TTSConfig
from backend.engines.llm.openai_chat import OpenAIChatLLM
from backend.engines.stt.openai_transcribe import OpenAITranscribeSTT
from backend.engines.tts.openai_speech import OpenAISpeechTTS
from backend.store import DB_NAME
from tests.fakes.engines import ScriptedLLM, ToneTTS
from tests.fakes.faulty_openai import PARTIAL_PIECES, PIECES, REPLY, TRANSCRIPT, FaultyOpenAI
from tests.fakes.live_server import TOKEN, ServerThread, live_server
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.wire import collect_turn, errors_of, expect, hello_ready, speak, text_of

KEY = "sk-fault-test-key-0123456789abcdef"
PROVIDER_TIMEOUT_S = 1.0

# ---- providers: refused, 401, 429, 500, a stream that stops, a provider that hangs -------------------

MESSAGES = {
    "refused": "Cannot reach the {service} server at",
    "401": "rejected the API key (401)",
    "429": "is rate limiting requests (429): try again in 7 s",
    "500": "failed with an internal error (500)",
    "cut": "broke off",
    "eof": "ended its answer in the middle of the reply",
    "hang": "did not answer in time",
    "stall": "stopped answering in the middle of the reply",
}
SERVICE = {"llm": "language model", "tts": "speech", "stt": "speech recognition"}
CASES = [
    *[("llm", kind) for kind in ("refused", "401", "429", "500", "cut", "eof", "hang", "stall")],
    *[("tts", kind) for kind in ("refused", "401", "429", "500", "cut", "hang", "stall")],
    *[("stt", kind) for kind in ("refused", "401", "429", "500", "cut", "hang")],
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Engines:
    llm: Any
    tts: Any
    stt: Any


def engines_for(role: str, base_url: str) -> Engines:
    """The role under test talks to ``base_url``; the others are the hand-written fakes."""
    llm: Any = ScriptedLLM(PIECES)
    tts: Any = ToneTTS()
    stt: Any = None
    if role == "llm":
        llm = OpenAIChatLLM(
            LLMConfig(provider="openai", model="fake", base_url=base_url, api_key=KEY, timeout_s=PROVIDER_TIMEOUT_S)
        )
    elif role == "tts":
        tts = OpenAISpeechTTS(
            TTSConfig(provider="openai", model="fake", base_url=base_url, api_key=KEY, timeout_s=PROVIDER_TIMEOUT_S)
        )
    else:
        stt = OpenAITranscribeSTT(
            STTConfig(provider="openai", model="fake", base_url=base_url, api_key=KEY, timeout_s=PROVIDER_TIMEOUT_S)
        )
    return Engines(llm, tts, stt)


async def one_turn(ws: Any, role: str, turn_id: int) -> list[Any]:
    if role == "stt":
        await speak(ws, turn_id)
    else:
        await ws.send(p.Ask(turn_id=turn_id, text="Count to ten.").to_wire())
    return await collect_turn(ws, turn_id)


@pytest.mark.parametrize(("role", "kind"), CASES, ids=[f"{role}-{kind}" for role, kind in CASES])
def test_a_failing_provider_is_explained_the_partial_reply_kept_and_the_next_turn_works(role: str, kind: str) -> None:
    port = free_port()
    engines = engines_for(role, f"http://127.0.0.1:{port}/v1")

    async def scenario() -> None:
        provider: FaultyOpenAI | None = None
        if kind != "refused":
            provider = FaultyOpenAI(port).__enter__()
            provider.fail(kind)
        try:
            async with live_server(engines.llm, engines.tts, engines.stt) as live, connect(live.url) as ws:
                await hello_ready(ws, TOKEN)
                first = await one_turn(ws, role, 1)
                if provider is None:  # the provider comes up after the refused turn
                    provider = FaultyOpenAI(port).__enter__()
                second = await one_turn(ws, role, 2)
                await ws.send(p.ListConversations().to_wire())
                listing = await expect(ws, p.ConversationList)
                await ws.send(p.OpenConversation(conversation_id=listing.conversations[0].conversation_id).to_wire())
                stored = await expect(ws, p.ConversationMessages)
        finally:
            if provider is not None:
                provider.__exit__(None, None, None)
        check_fault_turn(role, kind, first)
        check_good_turn(role, second)
        check_stored(role, kind, list(stored.messages))

    asyncio.run(asyncio.wait_for(scenario(), 60))


def check_fault_turn(role: str, kind: str, items: list[Any]) -> None:
    expected = MESSAGES[kind].format(service=SERVICE[role])
    errors = errors_of(items)
    assert len(errors) == 1 and errors[0].code == p.ERR_PROVIDER, errors
    message = errors[0].message
    assert expected in message and "127.0.0.1" in message, message
    assert KEY not in message and KEY not in json.dumps([str(i) for i in items])
    done = items[-1]
    assert isinstance(done, p.TurnDone)
    if role == "llm":
        partial = "".join(PIECES[:PARTIAL_PIECES]) if kind in ("cut", "eof", "stall") else ""
        assert text_of(items) == partial and done.text == partial
        assert done.status == "error" and done.error == message
    elif role == "tts":
        assert message.startswith("Speech failed: ")
        assert done.status == "completed" and done.text == REPLY + " "  # the text goes on without speech
    else:
        assert message.startswith("Speech recognition failed: ")
        assert done.status == "error" and done.text == ""


def check_good_turn(role: str, items: list[Any]) -> None:
    done = items[-1]
    assert isinstance(done, p.TurnDone) and done.status == "completed", done
    assert done.text == REPLY + " " and not errors_of(items)
    assert any(isinstance(i, p.AudioFrame) for i in items)
    if role == "stt":
        finals = [i for i in items if isinstance(i, p.Transcript) and i.final]
        assert [t.text for t in finals] == [TRANSCRIPT]


def check_stored(role: str, kind: str, messages: list[p.StoredMessage]) -> None:
    rows = [(m.role, m.status, m.text) for m in messages]
    question = TRANSCRIPT if role == "stt" else "Count to ten."
    good = [("user", "completed", question), ("assistant", "completed", REPLY + " ")]
    if role == "llm":
        partial = "".join(PIECES[:PARTIAL_PIECES]) if kind in ("cut", "eof", "stall") else ""
        assert rows == [("user", "completed", "Count to ten."), ("assistant", "error", partial), *good]
    elif role == "tts":
        assert rows == good + good
    else:
        assert rows == good  # the failed utterance never became a question


# ---- the app: a link that drops, a backend killed mid-reply, a sound device that fails --------------

LONG_REPLY = ["word "] * 150


@pytest.fixture
def app(qtbot: Any, run_async: Callable[..., Any]) -> Iterator[Callable[..., tuple[MainWindow, BackendClient]]]:
    clients: list[BackendClient] = []

    def make(config: Config, *, command: list[str] | None = None) -> tuple[MainWindow, BackendClient]:
        client = BackendClient(config, backend_command=command)
        window = MainWindow(client)
        qtbot.addWidget(window)
        window.show()
        client.start()
        clients.append(client)
        return window, client

    yield make
    for client in clients:
        run_async(client.shutdown(), timeout=20.0)


def send(qtbot: Any, window: MainWindow, text: str) -> None:
    window.input.setPlainText(text)
    qtbot.keyClick(window.input, Qt.Key.Key_Return)


def remote(url: str, *, speak: bool = False) -> Config:
    return Config(backend=BackendConfig(url=url, token=TOKEN), audio=AudioConfig(speak_replies=speak))


async def stored_messages(running: ServerThread) -> list[p.StoredMessage]:
    assert running.live is not None
    store = running.live.store
    await store.flush()
    conversations, _ = await store.list_conversations()
    return await store.messages(conversations[0].conversation_id)


def test_the_app_resumes_a_reply_when_the_link_drops(qtbot: Any, app: Any, run_async: Callable[..., Any]) -> None:
    llm = ScriptedLLM(LONG_REPLY, delay_s=0.01)
    with ServerThread(llm, ToneTTS(seconds_per_word=0.01)) as running, TcpProxy(running.url) as proxy:
        window, client = app(remote(proxy.url))
        qtbot.waitUntil(lambda: window.status.state == "ready", timeout=10000)
        deltas: list[str] = []
        client.text_delta.connect(lambda _turn, text: deltas.append(text))
        send(qtbot, window, "Talk for a while")
        qtbot.waitUntil(lambda: len(deltas) >= 20, timeout=10000)
        with qtbot.waitSignal(client.turn_done, timeout=20000) as done:
            proxy.cut()
        assert proxy.cuts == 1
        turn_id, status, text, _timings = done.args
        assert status == "completed" and text == "".join(LONG_REPLY)
        assert "".join(deltas) == text  # nothing lost, nothing twice
        assert window.chat.reply_text() == text.strip() or text.strip() in window.chat.toPlainText()
        assert "the reply goes on" in (window.banner.message("backend-notice") or "")
        assert window.banner.message("connection") is None
        assert client.connection_state == "connected"
        rows = [(m.role, m.status, m.text) for m in running.call(stored_messages(running))]
        assert rows == [("user", "completed", "Talk for a while"), ("assistant", "completed", text)]
        with qtbot.waitSignal(client.turn_done, timeout=20000) as again:
            send(qtbot, window, "And again")
        assert again.args[1] == "completed" and again.args[0] > turn_id
        run_async(client.shutdown(), timeout=20.0)  # before the server, which would wait for its goodbye


def test_the_app_recovers_when_its_backend_is_killed_mid_reply(
    qtbot: Any, app: Any, run_async: Callable[..., Any], tmp_path: Path
) -> None:
    reply = " ".join(f"word{i}" for i in range(200))
    command = [
        sys.executable, "-m", "assistant.bench.fake_server",
        "--data-dir", str(tmp_path), "--reply", reply, "--piece-delay", "0.01",
    ]
    window, client = app(Config(audio=AudioConfig(speak_replies=False)), command=command)
    notices: list[str] = []
    client.backend_notice.connect(notices.append)
    qtbot.waitUntil(lambda: window.status.state == "ready", timeout=20000)
    send(qtbot, window, "Talk for a while")
    qtbot.waitUntil(lambda: len(window.chat.reply_text()) > 120, timeout=10000)
    qtbot.wait(600)  # past a checkpoint of the stored reply
    supervisor = client._supervisor
    assert supervisor is not None and supervisor.pid is not None
    with qtbot.waitSignal(client.turn_done, timeout=15000) as done:
        os.kill(supervisor.pid, signal.SIGKILL)
    assert done.args[1] == "error"
    shown = done.args[2]
    assert "lost during the reply" in (window.banner.message("connection") or "")
    assert any("stopped unexpectedly" in notice for notice in notices), notices
    qtbot.waitUntil(lambda: client.connection_state == "connected" and window.status.state == "ready", timeout=20000)

    async def stored() -> list[p.StoredMessage]:
        assert supervisor.url is not None
        async with connect(supervisor.url) as ws:
            await hello_ready(ws, supervisor.token)
            await ws.send(p.ListConversations().to_wire())
            listing = await expect(ws, p.ConversationList)
            await ws.send(p.OpenConversation(conversation_id=listing.conversations[0].conversation_id).to_wire())
            return list((await expect(ws, p.ConversationMessages)).messages)

    messages = run_async(stored(), timeout=20.0)
    assert [(m.role, m.status) for m in messages] == [("user", "completed"), ("assistant", "incomplete")]
    kept = messages[1].text.strip()  # as far as it was checkpointed when the process died
    assert kept and shown.startswith(kept) and reply.startswith(kept)
    qtbot.waitUntil(lambda: kept in window.chat.toPlainText(), timeout=5000)  # the reopened conversation shows it
    with qtbot.waitSignal(client.turn_done, timeout=20000) as again:
        send(qtbot, window, "Are you back?")
    assert again.args[1] == "completed" and again.args[2].strip() == reply


@dataclass
class PrivatePulse:
    process: subprocess.Popen[bytes]
    server: str


@pytest.fixture
def private_pulseaudio(pulseaudio: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePulse]:
    """A PulseAudio server of this test alone (the shared one is left alone), with one null sink."""
    runtime = tmp_path_factory.mktemp("pa")
    runtime.chmod(0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), PULSE_RUNTIME_PATH=str(runtime / "pulse"))
    env["PULSE_SERVER"] = f"unix:{runtime / 'pulse' / 'native'}"
    proc = subprocess.Popen(
        ["pulseaudio", "--daemonize=no", "-n", "--exit-idle-time=-1", "--load=module-native-protocol-unix",
         "--load=module-null-sink sink_name=failing", f"--log-target=file:{runtime / 'log'}"],
        env=env,
    )
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, "the private PulseAudio did not start"
            time.sleep(0.1)
        yield PrivatePulse(proc, env["PULSE_SERVER"])
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.mark.audio
def test_the_sound_device_failing_during_playback_goes_text_only(
    qtbot: Any,
    app: Any,
    run_async: Callable[..., Any],
    private_pulseaudio: PrivatePulse,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PULSE_SERVER", private_pulseaudio.server)  # the player's stream goes there
    llm = ScriptedLLM(["Here is a long spoken reply. "] * 4, delay_s=0.01)
    with ServerThread(llm, ToneTTS(seconds_per_word=0.15)) as running:
        window, client = app(remote(running.url, speak=True))
        assert client.audio_enabled, window.banner.messages()
        qtbot.waitUntil(lambda: window.status.state == "ready", timeout=10000)
        with qtbot.waitSignal(client.turn_done, timeout=30000) as done:
            send(qtbot, window, "Speak to me")
            qtbot.waitUntil(lambda: client.is_playing, timeout=10000)
            private_pulseaudio.process.kill()  # the sound server, and with it the device, is gone
            qtbot.waitUntil(lambda: window.banner.message("audio") is not None, timeout=10000)
        notice = window.banner.message("audio") or ""
        assert "stopped working during playback" in notice and "text only" in notice
        assert not client.audio_enabled and not client.is_playing
        expected = "".join(llm.pieces)
        assert done.args[1] == "completed" and done.args[2] == expected
        rows = [(m.role, m.status, m.text) for m in running.call(stored_messages(running))]
        assert rows == [("user", "completed", "Speak to me"), ("assistant", "completed", expected)]
        with qtbot.waitSignal(client.turn_done, timeout=20000) as again:
            send(qtbot, window, "And in text?")
        assert again.args[1] == "completed"
        run_async(client.shutdown(), timeout=20.0)


# ---- damaged files --------------------------------------------------------------------------------


def test_a_damaged_database_and_settings_file_are_kept_aside_and_the_backend_starts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    damaged_db = b"SQLite format 3\x00" + b"\x13\x37 not a database " * 400
    (data / DB_NAME).write_bytes(damaged_db)
    settings = tmp_path / "config.toml"
    damaged_settings = "[llm\nprovider = 'embedded'\n\x00 garbage ="
    settings.write_text(damaged_settings)
    env = dict(
        os.environ, PARLEY_TOKEN=TOKEN, PARLEY_DATA_DIR=str(data), PARLEY_CONFIG=str(settings),
        OPENAI_API_KEY="unused", OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}/v1",
    )
    command = [
        sys.executable, "-m", "backend", "serve", "--port", "0", "--llm-provider", "openai",
        "--llm-model", "fake", "--tts", "off", "--stt", "off", "--exit-with-parent",
    ]

    async def scenario() -> tuple[list[p.Notice], p.ConversationList]:
        proc = await asyncio.create_subprocess_exec(
            *command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        try:
            assert proc.stdout is not None
            ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
            async with connect(ready["url"]) as ws:
                await ws.send(p.Hello(version=p.PROTOCOL_VERSION, token=TOKEN).to_wire())
                notices = [await expect(ws, p.Notice), await expect(ws, p.Notice)]
                await ws.send(p.ListConversations().to_wire())
                return notices, await expect(ws, p.ConversationList)
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)

    notices, listing = asyncio.run(asyncio.wait_for(scenario(), 90))
    by_code = {n.code: n.message for n in notices}
    assert "damaged" in by_code["store"] and "moved to" in by_code["store"]
    assert str(settings) in by_code["config"] and "not valid TOML" in by_code["config"]
    aside = [f for f in data.iterdir() if f.name.startswith(f"{DB_NAME}.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == damaged_db
    assert settings.read_text() == damaged_settings  # never overwritten without consent
    assert listing.conversations == () and listing.total == 0  # a fresh, working store
