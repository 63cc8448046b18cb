"""The main window against the hand-written protocol server (remote mode, real websockets)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from assistant.backend_client import BackendClient
from assistant.ui.main_window import MainWindow
from backend.config import AudioConfig, BackendConfig, Config
from backend.protocol import Ask, Cancel, Status
from tests.fakes.protocol_server import TOKEN, FakeServerThread, Script

MakeApp = Callable[..., tuple[MainWindow, BackendClient]]
StartFake = Callable[..., FakeServerThread]


@pytest.fixture
def start_fake() -> Iterator[Callable[..., FakeServerThread]]:
    """Starts fake backends (in threads); stops them after the clients are shut down."""
    started: list[FakeServerThread] = []

    def start(script: Script | None = None) -> FakeServerThread:
        fake = FakeServerThread(script)
        fake.__enter__()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.__exit__(None, None, None)


@pytest.fixture
def make_app(
    qtbot: Any, run_async: Callable[..., Any], start_fake: Callable[..., FakeServerThread]
) -> Iterator[MakeApp]:
    """Builds a window whose client talks to ``url``; shuts every client down afterwards."""
    clients: list[BackendClient] = []

    def make(url: str, *, speak: bool = False, device: str = "") -> tuple[MainWindow, BackendClient]:
        config = Config(
            backend=BackendConfig(url=url, token=TOKEN),
            audio=AudioConfig(output_device=device, speak_replies=speak),
        )
        client = BackendClient(config)
        window = MainWindow(client)
        qtbot.addWidget(window)
        window.show()
        client.start()
        clients.append(client)
        return window, client

    yield make
    for client in clients:
        run_async(client.shutdown(), timeout=15.0)


def wait_ready(qtbot: Any, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: window.status.state == "ready", timeout=5000)


def send(qtbot: Any, window: MainWindow, text: str) -> None:
    window.input.setPlainText(text)
    qtbot.keyClick(window.input, Qt.Key.Key_Return)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_reply_streams_into_the_view(qtbot: Any, start_fake: StartFake, make_app: MakeApp) -> None:
    fake = start_fake(Script(delta_interval_s=0.01))
    window, client = make_app(fake.url)
    wait_ready(qtbot, window)
    with qtbot.waitSignal(client.turn_done, timeout=10000) as done:
        send(qtbot, window, "Who are you?")
        assert "Who are you?" in window.chat.toPlainText()  # the bubble shows at once
        assert window.input.toPlainText() == ""
        assert window.status.state == "thinking"
        assert window.send_button.text() == "Stop"
    turn_id, status, text, _timings = done.args
    assert status == "completed"
    assert text == fake.server.script.reply
    shown = window.chat.toPlainText()
    assert "This is Parley, speaking from a scripted reply." in shown  # markdown rendered
    assert "**" not in shown
    assert window.status.state == "ready"
    assert window.send_button.text() == "Send"
    assert [a.text for a in fake.server.of(Ask)] == ["Who are you?"]


def test_stop_ends_the_text_at_once_and_marks_the_reply(qtbot: Any, start_fake: StartFake, make_app: MakeApp) -> None:
    fake = start_fake(Script(reply="word " * 400, delta_interval_s=0.02))
    window, client = make_app(fake.url)
    wait_ready(qtbot, window)
    send(qtbot, window, "Talk for a long time")
    qtbot.waitUntil(lambda: len(window.chat.reply_text()) > 40, timeout=5000)
    assert window.send_button.text() == "Stop"
    qtbot.mouseClick(window.send_button, Qt.MouseButton.LeftButton)
    shown_at_stop = window.chat.toPlainText()
    assert "[stopped]" in shown_at_stop
    assert window.status.state == "ready"
    assert window.send_button.text() == "Send"
    qtbot.waitUntil(lambda: bool(fake.server.of(Cancel)), timeout=5000)
    qtbot.wait(300)  # anything still in flight would arrive now
    assert window.chat.toPlainText() == shown_at_stop
    assert shown_at_stop.count("word") < 400


def test_escape_stops_the_reply(qtbot: Any, start_fake: StartFake, make_app: MakeApp) -> None:
    fake = start_fake(Script(reply="word " * 400, delta_interval_s=0.02))
    window, client = make_app(fake.url)
    wait_ready(qtbot, window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    send(qtbot, window, "Talk")
    qtbot.waitUntil(lambda: len(window.chat.reply_text()) > 20, timeout=5000)
    qtbot.keyClick(window.input, Qt.Key.Key_Escape)
    assert client.current_turn is None
    assert "[stopped]" in window.chat.toPlainText()
    qtbot.waitUntil(lambda: bool(fake.server.of(Cancel)), timeout=5000)


def test_enter_sends_and_shift_enter_adds_a_line(qtbot: Any, start_fake: StartFake, make_app: MakeApp) -> None:
    fake = start_fake()
    window, client = make_app(fake.url)
    wait_ready(qtbot, window)
    qtbot.keyClicks(window.input, "line one")
    qtbot.keyClick(window.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(window.input, "line two")
    assert window.input.toPlainText() == "line one\nline two"
    assert client.current_turn is None
    with qtbot.waitSignal(client.turn_done, timeout=10000):
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    assert window.input.toPlainText() == ""
    assert [a.text for a in fake.server.of(Ask)] == ["line one\nline two"]


def test_an_unreachable_backend_shows_a_banner_and_keeps_the_question(qtbot: Any, make_app: MakeApp) -> None:
    url = f"ws://127.0.0.1:{closed_port()}"
    window, client = make_app(url)
    qtbot.waitUntil(lambda: window.banner.message("connection") is not None, timeout=5000)
    message = window.banner.message("connection") or ""
    assert "Cannot reach the backend" in message and url in message
    assert window.banner.isVisible()
    assert window.status.state == "starting"
    send(qtbot, window, "Is anyone there?")
    assert "not connected" in (window.banner.message("send") or "")
    assert window.input.toPlainText() == "Is anyone there?"  # nothing is lost
    assert "Is anyone there?" not in window.chat.toPlainText()


def test_loading_models_shows_progress(qtbot: Any, start_fake: StartFake, make_app: MakeApp) -> None:
    loading = Status(state="loading", detail="Loading the language model", progress=0.4)
    fake = start_fake(Script(statuses=(loading,)))
    window, _client = make_app(fake.url)
    qtbot.waitUntil(lambda: window.status.state == "loading", timeout=5000)
    assert window.status.progress_visible
    assert window.status.progress_percent == 40
    assert window.status.text == "Loading the language model"


def test_loading_without_known_progress_shows_a_busy_bar(qtbot: Any, start_fake: StartFake, make_app: MakeApp) -> None:
    fake = start_fake(Script(statuses=(Status(state="loading", detail="Loading the voice"),)))
    window, _client = make_app(fake.url)
    qtbot.waitUntil(lambda: window.status.state == "loading", timeout=5000)
    assert window.status.progress_visible
    assert window.status.progress_percent is None
    assert window.status.text == "Loading the voice"


def test_a_provider_error_is_shown_and_the_partial_reply_kept(
    qtbot: Any, start_fake: StartFake, make_app: MakeApp
) -> None:
    fake = start_fake(Script(fail_after_chars=12))
    window, client = make_app(fake.url)
    wait_ready(qtbot, window)
    with qtbot.waitSignal(client.turn_done, timeout=10000) as done:
        send(qtbot, window, "Fail please")
    assert done.args[1] == "error"
    assert window.banner.message("provider") == "The fake provider failed."
    shown = window.chat.toPlainText()
    assert "Hello! This" in shown and "[error]" in shown
    assert window.status.state == "ready"


def test_losing_the_backend_mid_reply_ends_the_reply_with_a_message(
    qtbot: Any, start_fake: StartFake, make_app: MakeApp
) -> None:
    fake = start_fake(Script(reply="word " * 400, delta_interval_s=0.02))
    window, client = make_app(fake.url)
    wait_ready(qtbot, window)
    send(qtbot, window, "Keep talking")
    qtbot.waitUntil(lambda: len(window.chat.reply_text()) > 20, timeout=5000)
    with qtbot.waitSignal(client.turn_done, timeout=10000) as done:
        fake.stop()
    assert done.args[1] == "error"
    assert "[error]" in window.chat.toPlainText()
    assert "lost during the reply" in (window.banner.message("connection") or "")
    qtbot.waitUntil(lambda: window.status.text == "Reconnecting…", timeout=5000)
    assert window.send_button.text() == "Send"


def test_no_output_device_means_a_notice_and_text_only(qtbot: Any, start_fake: StartFake, make_app: MakeApp) -> None:
    fake = start_fake()
    window, client = make_app(fake.url, speak=True, device="no-such-device-for-parley-tests")
    qtbot.waitUntil(lambda: window.banner.message("audio") is not None, timeout=5000)
    assert "text only" in (window.banner.message("audio") or "")
    assert not client.audio_enabled
    wait_ready(qtbot, window)
    with qtbot.waitSignal(client.turn_done, timeout=10000):
        send(qtbot, window, "Say something")
    assert [a.speak for a in fake.server.of(Ask)] == [False]


@pytest.mark.audio
def test_stop_silences_the_speaker_at_once(
    qtbot: Any, start_fake: StartFake, make_app: MakeApp, pulseaudio: str
) -> None:
    fake = start_fake(Script(reply="word " * 200, delta_interval_s=0.02, audio_s=8.0))
    window, client = make_app(fake.url, speak=True)
    assert client.audio_enabled, window.banner.messages()
    wait_ready(qtbot, window)
    send(qtbot, window, "Speak")
    qtbot.waitUntil(lambda: window.status.state == "speaking", timeout=8000)
    player = client.player
    assert player is not None and player.queued_seconds > 0
    qtbot.mouseClick(window.send_button, Qt.MouseButton.LeftButton)
    assert player.drained and player.queued_seconds == 0
    qtbot.waitUntil(lambda: not client.is_playing, timeout=2000)
    assert window.status.state == "ready"


def test_screenshot_mid_reply(qtbot: Any, start_fake: StartFake, make_app: MakeApp, tmp_path: Path) -> None:
    reply = (
        "Sure! Here is how a **streaming** reply looks.\n\n"
        "1. The text appears as it is written.\n2. Speech starts after the first clause.\n\n"
        "Use `Esc` to stop it at any time. " + "More words keep arriving while you read. " * 30
    )
    fake = start_fake(Script(reply=reply, delta_interval_s=0.01))
    window, _client = make_app(fake.url)
    window.resize(760, 560)
    wait_ready(qtbot, window)
    send(qtbot, window, "How does streaming look in Parley?")
    qtbot.waitUntil(lambda: "Esc" in window.chat.reply_text(), timeout=10000)
    path = Path(os.environ.get("PARLEY_SCREENSHOT", str(tmp_path / "parley-window.png")))
    image = window.grab()
    assert image.save(str(path))
    assert path.stat().st_size > 10_000
