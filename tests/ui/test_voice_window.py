"""Speaking to the window: push-to-talk (button and shortcut), hands-free, and no microphone.

The real embedded backend (SmolLM2, piper, Whisper tiny.en) answers; the spoken
questions are played into a private virtual sound card whose monitor is the app's
microphone, and the replies play into it too (``virtual_room``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from assistant.backend_client import BackendClient
from assistant.bench.virtual_room import VirtualRoom, virtual_room
from assistant.bench.wer import word_error_rate
from assistant.ui.main_window import MainWindow
from backend.config import AudioConfig, BackendConfig, Config
from backend.protocol import Status
from tests.fakes.protocol_server import TOKEN, FakeServerThread, Script
from tests.spoken import spoken_wav

READY_MS = 120_000
TURN_MS = 120_000
QUESTION = "How far away is the moon from the earth?"
SECOND = "Please play some quiet music in the living room."


def play(qtbot: Any, room: VirtualRoom, path: Path) -> None:
    """Plays a WAV into the room while Qt keeps running (the app hears it through its microphone)."""
    process = subprocess.Popen(["paplay", "-d", room.sink, str(path)])
    try:
        qtbot.waitUntil(lambda: process.poll() is not None, timeout=30_000)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(5)
    assert process.returncode == 0


@pytest.fixture
def room(pulseaudio: str) -> Iterator[VirtualRoom]:
    with virtual_room() as created:
        yield created


@pytest.fixture
def spoken_app(
    qtbot: Any, run_async: Callable[..., Any], room: VirtualRoom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[MainWindow, BackendClient]]:
    """The window with the real embedded backend (short replies), speaking into the room."""
    settings = tmp_path / "config.toml"
    settings.write_text("[llm]\nmax_tokens = 30\n")
    monkeypatch.setenv("PARLEY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PARLEY_CONFIG", str(settings))
    client = BackendClient(Config(audio=AudioConfig(speak_replies=True)), backend_args=["--llm-model", "smollm2"])
    window = MainWindow(client)
    qtbot.addWidget(window)
    window.show()
    client.start()
    try:
        qtbot.waitUntil(lambda: window.status.state == "ready" and window.mic_button.isEnabled(), timeout=READY_MS)
        yield window, client
    finally:
        window.voice.close()
        run_async(client.shutdown(), timeout=30.0)


@pytest.mark.slow
@pytest.mark.audio
def test_push_to_talk_with_the_button_then_the_shortcut(
    qtbot: Any, spoken_app: tuple[MainWindow, BackendClient], room: VirtualRoom, tmp_path: Path
) -> None:
    window, client = spoken_app
    states: list[str] = []
    window.voice.state_changed.connect(states.append)
    with qtbot.waitSignal(client.turn_done, timeout=TURN_MS) as done:
        qtbot.mousePress(window.mic_button, Qt.MouseButton.LeftButton)
        assert window.voice.state == "recording" and window.mic_button.recording
        assert window.status.state == "listening"
        play(qtbot, room, spoken_wav(tmp_path / "q1.wav", QUESTION, tail_s=0.3))
        qtbot.mouseRelease(window.mic_button, Qt.MouseButton.LeftButton)
        assert window.voice.state == "off"
    assert done.args[1] == "completed", done.args
    shown = window.chat.toPlainText()
    asked = next(line for line in shown.splitlines() if "moon" in line.lower())
    assert word_error_rate([QUESTION], [asked]) < 0.15, asked
    assert done.args[2].strip(), "a reply was written"
    qtbot.waitUntil(lambda: client.player is not None and client.player.drained, timeout=60_000)
    assert client.player is not None and client.player.samples_played > 22050 * 0.3, "the reply was spoken"

    with qtbot.waitSignal(client.turn_done, timeout=TURN_MS) as done:
        qtbot.keyPress(window.input, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
        assert window.voice.state == "recording"
        play(qtbot, room, spoken_wav(tmp_path / "q2.wav", SECOND, tail_s=0.3))
        qtbot.keyRelease(window.input, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    assert done.args[1] == "completed", done.args
    assert "music" in window.chat.toPlainText().lower()
    assert window.input.toPlainText() == "", "the shortcut did not type into the input"
    assert states.count("recording") == 2


@pytest.mark.slow
@pytest.mark.audio
def test_hands_free_shows_the_level_and_partial_words_then_answers(
    qtbot: Any, spoken_app: tuple[MainWindow, BackendClient], room: VirtualRoom, tmp_path: Path
) -> None:
    window, client = spoken_app
    levels: list[float] = []
    partials: list[str] = []
    window.voice.level_changed.connect(levels.append)
    client.transcript.connect(lambda _turn, text, final: partials.append(text) if not final else None)
    qtbot.mouseClick(window.hands_free, Qt.MouseButton.LeftButton)
    assert window.hands_free.isChecked() and window.voice.state == "listening"
    question = "Remind me to call my mother tomorrow morning, and then water all the plants in the garden."
    with qtbot.waitSignal(client.turn_done, timeout=TURN_MS) as done:
        play(qtbot, room, spoken_wav(tmp_path / "hands-free.wav", question, tail_s=0.3))
        assert window.voice_partial.isVisible() or window.voice.state != "hearing"
    assert done.args[1] == "completed", done.args
    assert max(levels) > -40, "the level meter moved while the person spoke"
    assert len(partials) >= 2 and any(p.lower().startswith("remind me") for p in partials), partials
    assert not window.voice_partial.isVisible(), "the final transcript replaced the partial one"
    assert "mother" in window.chat.toPlainText().lower()
    qtbot.waitUntil(lambda: client.player is not None and client.player.drained, timeout=60_000)
    assert window.voice.state == "listening", "its own reply did not start another question"
    qtbot.mouseClick(window.hands_free, Qt.MouseButton.LeftButton)
    assert window.voice.state == "off" and not window.voice.voice.microphone_open


@pytest.mark.audio
def test_without_a_microphone_the_banner_explains_and_typing_still_works(
    qtbot: Any, run_async: Callable[..., Any], pulseaudio: str
) -> None:
    ready = Status(state="ready", detail="Ready", llm="fake-llm", tts="fake-tts", stt="fake-stt")
    with FakeServerThread(Script(statuses=(ready,))) as fake:
        config = Config(
            backend=BackendConfig(url=fake.url, token=TOKEN),
            audio=AudioConfig(speak_replies=False, input_device="no such microphone"),
        )
        client = BackendClient(config)
        window = MainWindow(client)
        qtbot.addWidget(window)
        window.show()
        client.start()
        try:
            qtbot.waitUntil(lambda: window.hands_free.isEnabled(), timeout=10_000)
            qtbot.mouseClick(window.hands_free, Qt.MouseButton.LeftButton)
            message = window.banner.message("voice") or ""
            assert "no such microphone" in message and "type" in message
            assert not window.hands_free.isChecked() and window.voice.state == "off"
            qtbot.mousePress(window.mic_button, Qt.MouseButton.LeftButton)
            qtbot.mouseRelease(window.mic_button, Qt.MouseButton.LeftButton)
            assert window.voice.state == "off"
            with qtbot.waitSignal(client.turn_done, timeout=10_000) as done:
                window.input.setPlainText("Can you still read me?")
                qtbot.keyClick(window.input, Qt.Key.Key_Return)
            assert done.args[1] == "completed"
        finally:
            run_async(client.shutdown(), timeout=15.0)
