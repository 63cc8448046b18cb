"""BackendClient in embedded mode: it starts the backend child itself, and restarts it.

The child here is tests/fakes/fake_backend.py serving the scripted protocol, so no
models are needed; the test with the real backend is marked slow.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from assistant.backend_client import BackendClient
from assistant.ui.main_window import MainWindow
from backend.config import AudioConfig, Config

FAKE_BACKEND = [sys.executable, str(Path(__file__).resolve().parents[1] / "fakes" / "fake_backend.py")]
TEXT_ONLY = Config(audio=AudioConfig(speak_replies=False))


@pytest.fixture
def embedded(qtbot: Any, run_async: Callable[..., Any]) -> Iterator[Callable[..., tuple[MainWindow, BackendClient]]]:
    clients: list[BackendClient] = []

    def make(
        config: Config = TEXT_ONLY, *, command: list[str] | None = None, args: tuple[str, ...] = ()
    ) -> tuple[MainWindow, BackendClient]:
        client = BackendClient(config, backend_args=args, backend_command=command)
        window = MainWindow(client)
        qtbot.addWidget(window)
        window.show()
        client.start()
        clients.append(client)
        return window, client

    yield make
    for client in clients:
        run_async(client.shutdown(), timeout=20.0)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def ask(qtbot: Any, window: MainWindow, client: BackendClient, text: str, timeout_ms: int) -> tuple[Any, ...]:
    with qtbot.waitSignal(client.turn_done, timeout=timeout_ms) as done:
        window.input.setPlainText(text)
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    return tuple(done.args)


def test_the_app_starts_its_backend_and_restarts_it_when_it_dies(qtbot: Any, embedded: Any) -> None:
    window, client = embedded(command=[*FAKE_BACKEND, "--mode", "protocol"])
    qtbot.waitUntil(lambda: window.status.state == "ready", timeout=10000)
    assert ask(qtbot, window, client, "Hello", 10000)[1] == "completed"
    supervisor = client._supervisor
    assert supervisor is not None
    first_pid = supervisor.pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: window.banner.message("backend-notice") is not None, timeout=10000)
    assert "stopped unexpectedly" in (window.banner.message("backend-notice") or "")
    qtbot.waitUntil(lambda: client.connection_state == "connected" and window.status.state == "ready", timeout=15000)
    assert supervisor.pid not in (None, first_pid)
    assert ask(qtbot, window, client, "Still there?", 10000)[2] == "A reply from the fake backend process."
    assert "Hello" in window.chat.toPlainText()  # the conversation shown so far is kept


def test_shutdown_stops_the_backend_process(qtbot: Any, embedded: Any, run_async: Callable[..., Any]) -> None:
    window, client = embedded(command=[*FAKE_BACKEND, "--mode", "protocol"])
    qtbot.waitUntil(lambda: window.status.state == "ready", timeout=10000)
    supervisor = client._supervisor
    assert supervisor is not None
    pid = supervisor.pid
    assert pid is not None and alive(pid)
    with qtbot.waitSignal(window.closed, timeout=1000):
        window.close()
    run_async(client.shutdown(), timeout=20.0)
    assert not alive(pid)
    assert client.connection_state == "stopped"


def test_a_backend_that_cannot_start_is_explained(qtbot: Any, embedded: Any) -> None:
    window, client = embedded(command=[*FAKE_BACKEND, "--mode", "exit-early"])
    qtbot.waitUntil(lambda: window.status.state == "error", timeout=10000)
    message = window.banner.message("connection") or ""
    assert "The backend exited (exit code 3)" in message
    assert "the model file is missing" in message


@pytest.mark.slow
def test_a_question_to_the_real_backend(qtbot: Any, embedded: Any) -> None:
    config = Config(audio=AudioConfig(speak_replies=True))
    window, client = embedded(config, args=("--llm-model", "smollm2"))
    qtbot.waitUntil(lambda: window.status.state == "ready", timeout=300_000)
    turn_id, status, text, timings = ask(qtbot, window, client, "What is the capital of France?", 120_000)
    assert status == "completed"
    assert text.strip() and text.strip()[:20] in window.chat.toPlainText()
    assert timings.ttft_s is not None
