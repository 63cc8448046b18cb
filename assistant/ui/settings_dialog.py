"""The settings dialog: engines, API keys, voice, audio devices, voice input and the system prompt.

Apply checks everything first: instant checks (files, numbers) at once, server
checks (URL reachable, key accepted) on a worker thread. Problems appear next to
their field and nothing is saved. Good settings are saved (keys in the keyring,
never in the settings file) and announced with ``applied(Config)``; the app uses
them without a restart. A damaged settings file is only replaced when the person
ticks the box that says so.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QKeySequenceEdit,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from assistant.audio.device import AudioUnavailable
from assistant.audio.device_test import MicrophoneProbe, device_names, play_test_tone
from assistant.secrets_store import SecretStore
from assistant.settings_model import (
    CHOICE_LABELS,
    CHOICES,
    EMBEDDED_MODELS,
    OPENAI_MODELS,
    OPENAI_VOICES,
    Choice,
    EngineName,
    choice_of,
    provider_of,
    without_api_keys,
)
from assistant.settings_validation import Problems, local_problems, remote_problems
from assistant.ui.level_meter import LevelMeter
from backend import config as config_module
from backend.config import DEFAULT_SYSTEM_PROMPT, AudioConfig, Config, ConfigWriteRefused

log = logging.getLogger("parley.app.settings")

PROBE_S: Final = 4.0
_ERROR_STYLE: Final = "color: #d93025;"
_TITLES: Final[dict[EngineName, str]] = {
    "llm": "Language model",
    "tts": "Speech output",
    "stt": "Speech recognition",
}


@dataclass(frozen=True)
class SettingsContext:
    """Where settings are kept: the settings file, the API keys, and the file's load notice."""

    path: Path
    secrets: SecretStore
    notice: str = ""


class _Relay(QObject):
    """Carries a worker thread's result to the GUI thread (a queued signal)."""

    done = Signal(int, object)


class _EngineFields:
    """The provider, model, URL and key fields of one engine, with an error label under each."""

    def __init__(self, name: EngineName, form: QFormLayout, parent: QWidget, errors: dict[str, QLabel]) -> None:
        self.name = name
        self.form = form
        self.provider = QComboBox(parent)
        for choice in CHOICES[name]:
            self.provider.addItem(CHOICE_LABELS[choice], choice)
        self.provider.setAccessibleName(f"{_TITLES[name]} provider")
        self.model = QComboBox(parent)
        self.model.setEditable(True)
        self.model.setAccessibleName(f"{_TITLES[name]} model")
        self.browse = QPushButton("Browse…", parent)
        self.browse.setAccessibleName(f"Choose a {_TITLES[name].lower()} file")
        self.base_url = QLineEdit(parent)
        self.base_url.setPlaceholderText("http://127.0.0.1:8080/v1")
        self.base_url.setAccessibleName(f"{_TITLES[name]} server URL")
        self.api_key = QLineEdit(parent)
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setPlaceholderText("sk-…  (kept in the system keyring)")
        self.api_key.setAccessibleName(f"{_TITLES[name]} API key")
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(self.browse)
        self.rows: dict[str, int] = {}
        self._add(form, "provider", "Provider", self.provider, parent, errors)
        self._add(form, "model", "Model", model_row, parent, errors)
        self._add(form, "base_url", "Server URL", self.base_url, parent, errors)
        self._add(form, "api_key", "API key", self.api_key, parent, errors)
        self.provider.currentIndexChanged.connect(self._provider_changed)
        self.browse.clicked.connect(self._browse)
        self._last_choice: Choice | None = None

    def _add(
        self,
        form: QFormLayout,
        key: str,
        label: str,
        field: QWidget | QHBoxLayout,
        parent: QWidget,
        errors: dict[str, QLabel],
    ) -> None:
        form.addRow(label, field)
        self.rows[key] = form.rowCount() - 1
        error = QLabel(parent)
        error.setWordWrap(True)
        error.setStyleSheet(_ERROR_STYLE)
        error.setAccessibleName(f"{_TITLES[self.name]} {label.lower()} problem")
        error.hide()
        form.addRow("", error)
        errors[f"{self.name}.{key}"] = error

    @property
    def choice(self) -> Choice:
        data = self.provider.currentData()
        return next((choice for choice in CHOICES[self.name] if choice == data), "embedded")

    def load(self, provider_choice: Choice, model: str, base_url: str, api_key: str) -> None:
        self.provider.setCurrentIndex(max(0, self.provider.findData(provider_choice)))
        self._provider_changed()
        self.model.setCurrentText(model)
        self.base_url.setText(base_url)
        self.api_key.setText(api_key)

    def _provider_changed(self) -> None:
        choice = self.choice
        remote = choice in ("openai", "custom")
        has_model = choice != "off" and not (self.name == "tts" and choice == "embedded")  # a voice has no model
        self.form.setRowVisible(self.rows["model"], has_model)
        self.form.setRowVisible(self.rows["base_url"], choice == "custom")
        self.form.setRowVisible(self.rows["api_key"], remote)
        self.browse.setVisible(choice == "embedded" and self.name == "llm")
        current = self.model.currentText()
        self.model.clear()
        suggestions = EMBEDDED_MODELS[self.name] if choice == "embedded" else (OPENAI_MODELS[self.name],)
        if self.name == "tts" and choice != "embedded":
            suggestions = (OPENAI_MODELS["tts"],)
        self.model.addItems(list(suggestions))
        previous = self._last_choice
        keep = previous is None or (previous in ("openai", "custom")) == remote
        self.model.setCurrentText(current if keep and current else suggestions[0])
        self._last_choice = choice

    def _browse(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self.provider.window(), "Choose a model", "", "Model files (*.gguf)")
        if chosen:
            self.model.setCurrentText(chosen)

    def values(self) -> tuple[str, str, str, str]:
        """(provider, model, base_url, api_key) as the config stores them."""
        choice = self.choice
        base_url = self.base_url.text().strip() if choice == "custom" else ""
        key = self.api_key.text().strip() if choice in ("openai", "custom") else ""
        return provider_of(choice), self.model.currentText().strip(), base_url, key


class SettingsDialog(QDialog):
    """Edits a ``Config``; emits ``applied(Config)`` (keys included) once saved."""

    applied = Signal(object)
    checking_changed = Signal(bool)

    def __init__(self, config: Config, context: SettingsContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Parley settings")
        self.setAccessibleName("Settings")
        self._config = config
        self._context = context
        self._notice = context.notice
        self._errors: dict[str, QLabel] = {}
        self._generation = 0
        self._closing_after_apply = False
        self._relay = _Relay(self)
        self._relay.done.connect(self._remote_checked)
        self._probe: MicrophoneProbe | None = None
        self._probe_timer = QTimer(self)
        self._probe_timer.setInterval(50)
        self._probe_timer.timeout.connect(self._probe_tick)
        self._probe_left = 0

        self.tabs = QTabWidget(self)
        self.tabs.addTab(self._models_tab(), "Models")
        self.tabs.addTab(self._voice_tab(), "Voice")
        self.tabs.addTab(self._audio_tab(), "Audio")
        self.tabs.addTab(self._assistant_tab(), "Assistant")

        self.keyring_warning = QLabel(context.secrets.warning, self)
        self.keyring_warning.setWordWrap(True)
        self.keyring_warning.setStyleSheet("color: #8a5a00;")
        self.keyring_warning.setAccessibleName("API key storage warning")
        self.keyring_warning.setVisible(bool(context.secrets.warning))
        self.damaged = QLabel(self)
        self.damaged.setWordWrap(True)
        self.damaged.setStyleSheet(_ERROR_STYLE)
        self.replace_damaged = QCheckBox("Replace the damaged settings file with these settings (a copy is kept)", self)
        self.replace_damaged.setAccessibleName("Replace the damaged settings file")
        self._show_notice()
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Settings status")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Apply
            | QDialogButtonBox.StandardButton.Cancel,
            self,
        )
        self.buttons.clicked.connect(self._button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.keyring_warning)
        layout.addWidget(self.damaged)
        layout.addWidget(self.replace_damaged)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.load(config)

    # ---- tabs -----------------------------------------------------------------------------

    def _models_tab(self) -> QWidget:
        page = QWidget(self)
        form = QFormLayout(page)
        form.addRow(_heading("Language model", page))
        self.llm = _EngineFields("llm", form, page, self._errors)
        form.addRow(_heading("Speech recognition", page))
        self.stt = _EngineFields("stt", form, page, self._errors)
        return page

    def _voice_tab(self) -> QWidget:
        page = QWidget(self)
        form = QFormLayout(page)
        form.addRow(_heading("Speech output", page))
        self.tts = _EngineFields("tts", form, page, self._errors)
        self.voice = QComboBox(page)
        self.voice.setEditable(True)
        self.voice.setAccessibleName("Voice")
        self.browse_voice = QPushButton("Browse…", page)
        self.browse_voice.setAccessibleName("Choose a piper voice file")
        self.browse_voice.clicked.connect(self._browse_voice)
        self._row(form, "tts.voice", "Voice", _pair(self.voice, self.browse_voice), page)
        self.speed = QDoubleSpinBox(page)
        self.speed.setRange(0.5, 2.0)
        self.speed.setSingleStep(0.05)
        self.speed.setSuffix(" ×")
        self.speed.setAccessibleName("Speech rate")
        self._row(form, "tts.speed", "Speech rate", self.speed, page)
        self.tts.provider.currentIndexChanged.connect(self._voice_choices)
        return page

    def _audio_tab(self) -> QWidget:
        page = QWidget(self)
        form = QFormLayout(page)
        self.output_device = self._device_combo(page, "output", "Output device")
        self.test_output = QPushButton("Test", page)
        self.test_output.setAccessibleName("Play a test sound")
        self.test_output.clicked.connect(self._test_output)
        self._row(form, "audio.output_device", "Output device", _pair(self.output_device, self.test_output), page)
        self.speak_replies = QCheckBox("Speak the replies", page)
        self.speak_replies.setAccessibleName("Speak the replies")
        form.addRow("", self.speak_replies)
        self.input_device = self._device_combo(page, "input", "Input device")
        self.test_input = QPushButton("Test", page)
        self.test_input.setAccessibleName("Test the microphone")
        self.test_input.clicked.connect(self._test_input)
        self._row(form, "audio.input_device", "Input device", _pair(self.input_device, self.test_input), page)
        self.input_meter = LevelMeter(page)
        self.input_meter.setFixedWidth(220)
        form.addRow("", self.input_meter)
        self.vad = QSlider(Qt.Orientation.Horizontal, page)
        self.vad.setRange(5, 95)
        self.vad.setAccessibleName("Voice detection sensitivity")
        self.vad.setToolTip("Higher hears quieter speech (and more background noise).")
        self._row(form, "audio.vad_threshold", "Voice detection sensitivity", self.vad, page)
        self.end_silence = QSpinBox(page)
        self.end_silence.setRange(100, 5000)
        self.end_silence.setSingleStep(50)
        self.end_silence.setSuffix(" ms")
        self.end_silence.setAccessibleName("End-of-speech silence")
        self._row(form, "audio.end_silence_ms", "End-of-speech silence", self.end_silence, page)
        self.push_to_talk = QKeySequenceEdit(page)
        self.push_to_talk.setAccessibleName("Push-to-talk shortcut")
        self._row(form, "audio.push_to_talk_shortcut", "Push-to-talk shortcut", self.push_to_talk, page)
        self.echo_cancellation = QCheckBox("Cancel the echo of the speakers (turn off with headphones)", page)
        self.echo_cancellation.setAccessibleName("Echo cancellation")
        form.addRow("", self.echo_cancellation)
        return page

    def _assistant_tab(self) -> QWidget:
        page = QWidget(self)
        layout = QVBoxLayout(page)
        label = QLabel("System prompt: what the assistant is told before every conversation.", page)
        label.setWordWrap(True)
        self.system_prompt = QPlainTextEdit(page)
        self.system_prompt.setAccessibleName("System prompt")
        label.setBuddy(self.system_prompt)
        reset = QPushButton("Reset to the default", page)
        reset.setAccessibleName("Reset the system prompt")
        reset.clicked.connect(lambda: self.system_prompt.setPlainText(DEFAULT_SYSTEM_PROMPT))
        error = _error_label(page, "System prompt problem")
        self._errors["llm.system_prompt"] = error
        layout.addWidget(label)
        layout.addWidget(self.system_prompt, 1)
        layout.addWidget(error)
        layout.addWidget(reset, 0, Qt.AlignmentFlag.AlignLeft)
        return page

    def _row(self, form: QFormLayout, key: str, label: str, field: QWidget, page: QWidget) -> None:
        form.addRow(label, field)
        error = _error_label(page, f"{label} problem")
        form.addRow("", error)
        self._errors[key] = error

    def _device_combo(self, page: QWidget, kind: str, name: str) -> QComboBox:
        combo = QComboBox(page)
        combo.setEditable(True)
        combo.setAccessibleName(name)
        combo.addItem("System default", "")
        for device in device_names("input" if kind == "input" else "output"):
            combo.addItem(device, device)
        return combo

    def _voice_choices(self) -> None:
        current = self.voice.currentText()
        embedded = self.tts.choice == "embedded"
        self.voice.clear()
        self.voice.addItems(list(EMBEDDED_MODELS["tts"] if embedded else OPENAI_VOICES))
        known = current in EMBEDDED_MODELS["tts"] or current.endswith(".onnx") if embedded else current in OPENAI_VOICES
        if current and known:
            self.voice.setCurrentText(current)
        off = self.tts.choice == "off"
        self.voice.setEnabled(not off)
        self.speed.setEnabled(not off)
        self.browse_voice.setVisible(embedded)

    def _browse_voice(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self, "Choose a voice", "", "Piper voices (*.onnx)")
        if chosen:
            self.voice.setCurrentText(chosen)

    # ---- values -------------------------------------------------------------------------

    def load(self, config: Config) -> None:
        """Shows ``config`` in the fields."""
        self.llm.load(choice_of(config.llm), config.llm.model, config.llm.base_url, config.llm.api_key)
        self.stt.load(choice_of(config.stt), config.stt.model, config.stt.base_url, config.stt.api_key)
        self.tts.load(choice_of(config.tts), config.tts.model, config.tts.base_url, config.tts.api_key)
        self._voice_choices()
        self.voice.setCurrentText(config.tts.voice)
        self.speed.setValue(config.tts.speed)
        audio = config.audio
        _select(self.output_device, audio.output_device)
        _select(self.input_device, audio.input_device)
        self.speak_replies.setChecked(audio.speak_replies)
        self.vad.setValue(round((1.0 - audio.vad_threshold) * 100))
        self.end_silence.setValue(audio.end_silence_ms)
        self.push_to_talk.setKeySequence(QKeySequence(audio.push_to_talk_shortcut))
        self.echo_cancellation.setChecked(audio.echo_cancellation)
        self.system_prompt.setPlainText(config.llm.system_prompt)

    def collect(self) -> Config:
        """The config the fields describe (API keys included)."""
        base = self._config
        provider, model, url, key = self.llm.values()
        prompt = self.system_prompt.toPlainText().strip()
        llm = replace(base.llm, provider=provider, model=model, base_url=url, api_key=key, system_prompt=prompt)
        provider, model, url, key = self.stt.values()
        stt = replace(base.stt, provider=provider, model=model, base_url=url, api_key=key)
        provider, model, url, key = self.tts.values()
        voice = self.voice.currentText().strip() or base.tts.voice
        if provider != "openai":
            model = base.tts.model  # the embedded voice has no model name
        speed = self.speed.value()
        tts = replace(base.tts, provider=provider, model=model, base_url=url, api_key=key, voice=voice, speed=speed)
        audio: AudioConfig = replace(
            base.audio,
            output_device=_device(self.output_device),
            input_device=_device(self.input_device),
            speak_replies=self.speak_replies.isChecked(),
            vad_threshold=round(1.0 - self.vad.value() / 100, 2),
            end_silence_ms=self.end_silence.value(),
            push_to_talk_shortcut=self.push_to_talk.keySequence().toString(QKeySequence.SequenceFormat.PortableText)
            or base.audio.push_to_talk_shortcut,
            echo_cancellation=self.echo_cancellation.isChecked(),
        )
        return replace(base, llm=llm, stt=stt, tts=tts, audio=audio, notice="")

    # ---- applying -----------------------------------------------------------------------

    @property
    def checking(self) -> bool:
        return not self.buttons.isEnabled()

    def problems(self) -> dict[str, str]:
        """The messages shown next to fields now, by field."""
        return {key: label.text() for key, label in self._errors.items() if not label.isHidden()}

    def apply(self, *, close: bool = False) -> None:
        """Checks, then saves and emits ``applied``; with ``close``, closes the dialog when done."""
        self._closing_after_apply = close
        self._clear_problems()
        config = self.collect()
        problems = local_problems(config)
        if problems:
            self._show_problems(problems)
            return
        if any(section.provider == "openai" for section in (config.llm, config.tts, config.stt)):
            self._generation += 1
            generation = self._generation
            self._set_checking(True)
            self.status.setText("Checking the servers…")
            relay = self._relay
            threading.Thread(
                target=_check_remote, args=(relay, generation, config), name="settings-check", daemon=True
            ).start()
            return
        self._save(config)

    def _remote_checked(self, generation: int, result: object) -> None:
        if generation != self._generation:
            return
        self._set_checking(False)
        self.status.clear()
        assert isinstance(result, tuple)
        config: Config = result[0]
        problems: Problems = result[1]
        if problems:
            self._show_problems(problems)
            return
        self._save(config)

    def _save(self, config: Config) -> None:
        if self._notice and not self.replace_damaged.isChecked():
            self.status.setText("Nothing was saved: tick the box above to replace the damaged settings file.")
            self.replace_damaged.setFocus()
            return
        try:
            names: tuple[EngineName, ...] = ("llm", "tts", "stt")
            for name in names:
                self._context.secrets.set(name, getattr(config, name).api_key)
        except OSError as exc:
            self.status.setText(f"Could not store the API keys: {exc.strerror or exc}. Nothing was saved.")
            return
        self.keyring_warning.setText(self._context.secrets.warning)
        self.keyring_warning.setVisible(bool(self._context.secrets.warning))
        try:
            backup = config_module.save(
                without_api_keys(config), self._context.path, replace_damaged=self.replace_damaged.isChecked()
            )
        except ConfigWriteRefused as exc:
            self.status.setText(str(exc))
            return
        self._notice = ""
        self._show_notice()
        self._config = config
        self.status.setText(f"Saved. The old settings file was kept as {backup}." if backup else "Saved and applied.")
        log.info("settings saved to %s", self._context.path)
        self.applied.emit(config)
        if self._closing_after_apply:
            self.accept()

    def _button(self, button: QAbstractButton) -> None:
        role = self.buttons.buttonRole(button)
        if role == QDialogButtonBox.ButtonRole.AcceptRole:
            self.apply(close=True)
        elif role == QDialogButtonBox.ButtonRole.ApplyRole:
            self.apply()
        else:
            self.reject()

    def _set_checking(self, checking: bool) -> None:
        self.buttons.setEnabled(not checking)
        self.checking_changed.emit(checking)

    def _clear_problems(self) -> None:
        for label in self._errors.values():
            label.clear()
            label.hide()
        self.status.clear()

    def _show_problems(self, problems: Problems) -> None:
        first: QLabel | None = None
        for key, message in problems.items():
            label = self._errors.get(key) or self._errors.get(key.split(".")[0] + ".provider")
            if label is None:
                label = self.status
            label.setText(message)
            label.show()
            first = first or label
        self.status.setText("Please fix the marked settings; nothing was saved.")
        if first is not None:
            page = first.parentWidget()
            index = self.tabs.indexOf(page) if page is not None else -1
            if index >= 0:
                self.tabs.setCurrentIndex(index)

    def _show_notice(self) -> None:
        notice = self._notice
        text = f"The settings file could not be used as written: {notice} Defaults are shown." if notice else ""
        self.damaged.setText(text)
        self.damaged.setVisible(bool(self._notice))
        self.replace_damaged.setVisible(bool(self._notice))

    # ---- device tests ---------------------------------------------------------------------

    def _test_output(self) -> None:
        error = self._errors["audio.output_device"]
        try:
            play_test_tone(_device(self.output_device))
        except AudioUnavailable as exc:
            error.setText(f"{exc.user_message} {exc.detail}".strip())
            error.show()
            return
        error.hide()

    def _test_input(self) -> None:
        error = self._errors["audio.input_device"]
        self._stop_probe()
        probe = MicrophoneProbe(_device(self.input_device))
        try:
            probe.start()
        except AudioUnavailable as exc:
            error.setText(f"{exc.user_message} {exc.detail}".strip())
            error.show()
            return
        error.hide()
        self._probe = probe
        self._probe_left = int(PROBE_S * 1000 / self._probe_timer.interval())
        self.test_input.setText("Listening…")
        self._probe_timer.start()

    def _probe_tick(self) -> None:
        if self._probe is None:
            self._probe_timer.stop()
            return
        self.input_meter.set_level(self._probe.level_dbfs)
        self._probe_left -= 1
        if self._probe_left <= 0:
            self._stop_probe()

    def _stop_probe(self) -> None:
        self._probe_timer.stop()
        if self._probe is not None:
            self._probe.stop()
            self._probe = None
        self.test_input.setText("Test")

    def done(self, result: int) -> None:
        self._stop_probe()
        self._generation += 1  # a check still running is forgotten
        super().done(result)


def _check_remote(relay: _Relay, generation: int, config: Config) -> None:
    """Runs on a worker thread: the server checks, then hands the result to the GUI thread."""
    try:
        problems = remote_problems(config)
    except Exception as exc:  # a check must never take the dialog down
        log.exception("the settings check failed")
        problems = {"llm.provider": f"The settings could not be checked: {exc}"}
    try:
        relay.done.emit(generation, (config, problems))
    except RuntimeError:  # the dialog is gone
        pass


def _heading(text: str, parent: QWidget) -> QLabel:
    label = QLabel(f"<b>{text}</b>", parent)
    label.setAccessibleName(text)
    return label


def _error_label(parent: QWidget, name: str) -> QLabel:
    label = QLabel(parent)
    label.setWordWrap(True)
    label.setStyleSheet(_ERROR_STYLE)
    label.setAccessibleName(name)
    label.hide()
    return label


def _pair(field: QWidget, button: QWidget) -> QWidget:
    box = QWidget(field.parentWidget())
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(field, 1)
    layout.addWidget(button)
    return box


def _select(combo: QComboBox, device: str) -> None:
    index = combo.findData(device)
    if index >= 0:
        combo.setCurrentIndex(index)
    else:
        combo.setCurrentText(device)


def _device(combo: QComboBox) -> str:
    """The chosen device: "" for the system default, else its name (or a typed name or index)."""
    text = combo.currentText().strip()
    index = combo.findText(text)
    if index >= 0:
        return str(combo.itemData(index) or "")
    return text
