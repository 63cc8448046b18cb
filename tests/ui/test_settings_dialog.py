"""The settings dialog: problems shown next to their field, keys kept out of the file, a damaged
file replaced only when asked, and settings applied to the running backend without a restart."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from assistant.backend_client import BackendClient
from assistant.secrets_store import SecretStore
from assistant.ui.main_window import MainWindow
from assistant.ui.settings_dialog import SettingsContext, SettingsDialog
from backend import config as config_module
from backend.config import AudioConfig, BackendConfig, Config
from tests.fakes.keyring_backend import MemoryKeyring
from tests.fakes.models_server import ModelsServer
from tests.fakes.stored_backend import TOKEN, StoredBackendThread

LiveApp = tuple[MainWindow, BackendClient, StoredBackendThread]


@pytest.fixture
def context(tmp_path: Path) -> SettingsContext:
    return SettingsContext(tmp_path / "config.toml", SecretStore(tmp_path / "keys.json", use_system_keyring=False))


def open_dialog(qtbot: Any, context: SettingsContext, config: Config | None = None) -> SettingsDialog:
    dialog = SettingsDialog(config or Config(), context)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def apply(qtbot: Any, dialog: SettingsDialog) -> None:
    dialog.apply()
    qtbot.waitUntil(lambda: not dialog.checking, timeout=20000)


def choose(fields: Any, choice: str) -> None:
    fields.provider.setCurrentIndex(fields.provider.findData(choice))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_model_files_are_checked_next_to_the_field(qtbot: Any, context: SettingsContext, tmp_path: Path) -> None:
    dialog = open_dialog(qtbot, context)
    dialog.llm.model.setCurrentText(str(tmp_path / "missing.gguf"))
    apply(qtbot, dialog)
    assert "There is no file" in dialog.problems()["llm.model"]
    assert dialog._errors["llm.model"].isVisible()
    assert not context.path.exists()

    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model at all")
    dialog.llm.model.setCurrentText(str(junk))
    apply(qtbot, dialog)
    assert "not a GGUF model file" in dialog.problems()["llm.model"]

    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + bytes(64))
    dialog.llm.model.setCurrentText(str(model))
    dialog.speed.setValue(1.25)
    dialog.end_silence.setValue(900)
    dialog.system_prompt.setPlainText("Answer like a pirate.")
    with qtbot.waitSignal(dialog.applied, timeout=5000) as applied:
        apply(qtbot, dialog)
    assert dialog.problems() == {}
    saved = config_module.load(context.path)
    assert saved.notice == ""
    assert (saved.llm.model, saved.tts.speed, saved.audio.end_silence_ms) == (str(model), 1.25, 900)
    assert saved.llm.system_prompt == "Answer like a pirate."
    assert applied.args[0].llm.model == str(model)


def test_number_ranges_and_an_empty_prompt_are_refused(qtbot: Any, context: SettingsContext) -> None:
    dialog = open_dialog(qtbot, context)
    dialog.system_prompt.setPlainText("   ")
    apply(qtbot, dialog)
    assert "cannot be empty" in dialog.problems()["llm.system_prompt"]
    assert dialog.tabs.currentIndex() == 3  # the tab with the problem is shown
    assert not context.path.exists()


def test_an_unreachable_server_is_caught(qtbot: Any, context: SettingsContext) -> None:
    dialog = open_dialog(qtbot, context)
    choose(dialog.llm, "custom")
    assert dialog.llm.base_url.isVisibleTo(dialog) and dialog.llm.api_key.isVisibleTo(dialog)
    dialog.llm.base_url.setText(f"http://127.0.0.1:{closed_port()}/v1")
    dialog.llm.model.setCurrentText("test-model")
    apply(qtbot, dialog)
    assert "Cannot reach" in dialog.problems()["llm.base_url"]
    assert not context.path.exists()
    dialog.llm.base_url.setText("ftp://example")
    apply(qtbot, dialog)
    assert "must start with http" in dialog.problems()["llm.base_url"]


def test_a_wrong_key_is_caught_and_a_good_one_kept_out_of_the_file(qtbot: Any, context: SettingsContext) -> None:
    dialog = open_dialog(qtbot, context)
    assert dialog.keyring_warning.isVisible() and "keys.json" in dialog.keyring_warning.text()
    with ModelsServer(key="good-key") as server:
        choose(dialog.llm, "custom")
        dialog.llm.base_url.setText(server.url)
        dialog.llm.model.setCurrentText("test-model")
        dialog.llm.api_key.setText("wrong-key")
        apply(qtbot, dialog)
        assert dialog.problems() == {"llm.api_key": "The server refused this API key."}
        assert not context.path.exists()
        dialog.llm.api_key.setText("good-key")
        with qtbot.waitSignal(dialog.applied, timeout=5000) as applied:
            apply(qtbot, dialog)
        assert server.requests == ["/v1/models", "/v1/models"]
    assert applied.args[0].llm.api_key == "good-key"  # the app gets the key ...
    text = context.path.read_text(encoding="utf-8")
    assert "good-key" not in text and 'base_url = "http://127.0.0.1' in text  # ... the settings file does not
    assert context.secrets.get("llm") == "good-key"
    assert os.stat(context.secrets.fallback_path).st_mode & 0o777 == 0o600


def test_keys_go_to_the_system_keyring_when_there_is_one(qtbot: Any, tmp_path: Path) -> None:
    keyring = MemoryKeyring()
    context = SettingsContext(tmp_path / "config.toml", SecretStore(tmp_path / "keys.json", backend=keyring))
    dialog = open_dialog(qtbot, context)
    assert not dialog.keyring_warning.isVisible()
    with ModelsServer(key="k-123") as server:
        choose(dialog.stt, "custom")
        dialog.stt.base_url.setText(server.url)
        dialog.stt.model.setCurrentText("whisper-1")
        dialog.stt.api_key.setText("k-123")
        with qtbot.waitSignal(dialog.applied, timeout=20000):
            apply(qtbot, dialog)
    assert keyring.passwords == {("parley", "stt-api-key"): "k-123"}
    assert not (tmp_path / "keys.json").exists()
    assert "k-123" not in context.path.read_text(encoding="utf-8")


def test_a_damaged_settings_file_is_replaced_only_when_asked(qtbot: Any, context: SettingsContext) -> None:
    damaged = "[llm\nprovider = 'embedded'\n"
    context.path.write_text(damaged, encoding="utf-8")
    loaded = config_module.load(context.path)
    assert loaded.notice
    context = SettingsContext(context.path, context.secrets, loaded.notice)
    dialog = open_dialog(qtbot, context, loaded)
    assert dialog.damaged.isVisible() and "not valid TOML" in dialog.damaged.text()
    assert dialog.replace_damaged.isVisible() and not dialog.replace_damaged.isChecked()
    apply(qtbot, dialog)
    assert "Nothing was saved" in dialog.status.text()
    assert context.path.read_text(encoding="utf-8") == damaged
    dialog.replace_damaged.setChecked(True)
    with qtbot.waitSignal(dialog.applied, timeout=5000):
        apply(qtbot, dialog)
    assert config_module.load(context.path).notice == ""
    backups = list(context.path.parent.glob("config.toml.bad-*"))
    assert len(backups) == 1 and backups[0].read_text(encoding="utf-8") == damaged
    assert not dialog.damaged.isVisible() and "kept as" in dialog.status.text()


@pytest.fixture
def live_app(qtbot: Any, run_async: Callable[..., Any], tmp_path: Path) -> Iterator[LiveApp]:
    backend = StoredBackendThread(tmp_path)
    backend.__enter__()
    client = BackendClient(
        Config(backend=BackendConfig(url=backend.url, token=TOKEN), audio=AudioConfig(speak_replies=False))
    )
    settings = SettingsContext(tmp_path / "config.toml", SecretStore(tmp_path / "keys.json", use_system_keyring=False))
    window = MainWindow(client, settings=settings)
    qtbot.addWidget(window)
    window.show()
    client.start()
    try:
        qtbot.waitUntil(lambda: window.status.state == "ready", timeout=10000)
        yield window, client, backend
    finally:
        run_async(client.shutdown(), timeout=15.0)
        backend.stop()


def test_applied_settings_reach_the_running_backend(qtbot: Any, live_app: LiveApp) -> None:
    window, client, backend = live_app
    qtbot.keyClick(window, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)
    dialog = window._settings_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.llm.model.setCurrentText("fast")
    dialog.system_prompt.setPlainText("Answer in one word.")
    dialog.end_silence.setValue(750)
    with qtbot.waitSignal(client.config_changed, timeout=5000) as changed:
        dialog.apply(close=True)
    assert changed.args[0].audio.end_silence_ms == 750
    assert not dialog.isVisible()
    qtbot.waitUntil(lambda: len(backend.built) == 1 and window.status.state == "ready", timeout=10000)
    with qtbot.waitSignal(client.turn_done, timeout=10000) as done:
        window.input.setPlainText("Hello?")
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    assert done.args[2] == "Now answering with fast."
    assert backend.built[0].seen[-1][0].content == "Answer in one word."
    assert "new settings are in use" in (window.banner.message("settings") or "")
    assert config_module.load(window._settings.path).llm.model == "fast"  # type: ignore[union-attr]


@pytest.mark.audio
def test_the_device_test_buttons_play_and_hear(qtbot: Any, context: SettingsContext, pulseaudio: str) -> None:
    """The output test plays into the virtual sound card; the input test hears it on its monitor."""
    dialog = open_dialog(qtbot, context)
    assert dialog.output_device.count() > 1 and dialog.input_device.count() > 1  # the devices are listed
    qtbot.mouseClick(dialog.test_input, Qt.MouseButton.LeftButton)
    assert dialog.test_input.text() == "Listening…", dialog.problems()
    qtbot.mouseClick(dialog.test_output, Qt.MouseButton.LeftButton)
    assert "audio.output_device" not in dialog.problems()
    qtbot.waitUntil(lambda: dialog.input_meter.fraction > 0.2, timeout=5000)  # the tone, heard back
    dialog.reject()
    assert dialog.test_input.text() == "Test"  # closing stops the microphone
