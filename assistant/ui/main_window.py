"""The Parley window: messages above, the chat, and the input with its Send/Stop button.

It only connects to ``BackendClient`` signals and calls its plain methods; it never
awaits. Esc (anywhere in the window) and the Stop button silence the reply at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QMainWindow, QPushButton, QSplitter, QVBoxLayout, QWidget

from assistant.backend_client import BackendClient
from assistant.net.backend_connection import AskRefused
from assistant.ui.chat_view import ChatView
from assistant.ui.conversation_controller import ConversationController
from assistant.ui.error_banner import ErrorBanner
from assistant.ui.icons import app_icon
from assistant.ui.input_box import InputBox
from assistant.ui.push_to_talk import PushToTalkKeys
from assistant.ui.settings_dialog import SettingsContext, SettingsDialog
from assistant.ui.sidebar import ConversationSidebar
from assistant.ui.status_indicator import StatusIndicator
from assistant.ui.status_logic import Activity, indicator_for
from assistant.ui.timeline import TimelineDialog
from assistant.ui.tray import ParleyTray
from assistant.ui.voice_controls import HandsFreeSwitch, MicButton, PartialTranscript
from assistant.voice_controller import VoiceController
from backend.config import Config
from backend.protocol import NO_SPEECH_MESSAGE, Timings

log = logging.getLogger("parley.app.ui")

_CONNECTION_ERRORS: Final = frozenset(
    {"unreachable", "timeout", "auth", "version", "protocol", "backend", "connection"}
)


class MainWindow(QMainWindow):
    """Emits ``closed`` when the person closes it; the app then shuts the backend down."""

    closed = Signal()
    settings_applied = Signal(object)  # Config, after the settings dialog saved it (issue 4)
    push_to_talk_requested = Signal()  # from the tray menu (issue 4); the voice input answers it

    def __init__(
        self, client: BackendClient, notices: Sequence[str] = (), *, settings: SettingsContext | None = None
    ) -> None:
        super().__init__()
        self._client = client
        self._activity = Activity()
        self.setWindowTitle("Parley")
        self.resize(760, 680)

        self.banner = ErrorBanner(self)
        self.chat = ChatView(self)
        self.input = InputBox(self)
        self.status = StatusIndicator(self)
        self.send_button = QPushButton("Send", self)
        self.send_button.setDefault(True)
        self.send_button.setMinimumWidth(84)
        self.send_button.clicked.connect(self._on_button)
        self.input.submitted.connect(self.send)
        self._stop_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        self._stop_shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        self._stop_shortcut.activated.connect(self.stop)

        bottom = QHBoxLayout()
        bottom.addWidget(self.input, 1)
        bottom.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        layout = QVBoxLayout()
        layout.setContentsMargins(10, 8, 10, 10)
        layout.addWidget(self.status)
        layout.addWidget(self.banner)
        layout.addWidget(self.chat, 1)
        layout.addLayout(bottom)
        chat_panel = QWidget(self)
        chat_panel.setLayout(layout)
        self.sidebar = ConversationSidebar(self)  # stored conversations (issue 4)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(chat_panel)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.setCentralWidget(self.splitter)

        client.connection_changed.connect(self._on_connection)
        client.status_changed.connect(self._on_status)
        client.text_delta.connect(self._on_text)
        client.turn_done.connect(self._on_turn_done)
        client.error.connect(self._on_error)
        client.backend_notice.connect(lambda text: self.banner.show_message("backend-notice", text, "notice"))
        client.audio_unavailable.connect(lambda text: self.banner.show_message("audio", text, "notice"))
        client.playback_changed.connect(self._on_playback)
        for i, notice in enumerate(notices):
            self.banner.show_message(f"notice-{i}", notice, "notice")
        self._refresh()
        self.input.setFocus()
        self._install_conversations_and_settings(settings)
        self._install_voice(bottom, layout)

    # ---- actions --------------------------------------------------------------------

    def send(self, text: str) -> None:
        """Sends the question; on refusal the text stays in the input and the banner says why."""
        question = text.strip()
        if not question:
            return
        try:
            turn_id = self._client.ask(question)
        except AskRefused as exc:
            self.banner.show_message("send", str(exc))
            return
        self.banner.clear("send")
        self.banner.clear("provider")
        self.chat.add_user_message(question)
        self.chat.begin_reply(turn_id)
        self.input.clear()
        self._activity.turn_running = True
        self._activity.has_text = False
        self._refresh()

    def stop(self) -> None:
        """Stops the reply's text and sound at once."""
        self._client.stop()
        self._activity.playing = self._client.is_playing
        self._refresh()

    def _on_button(self) -> None:
        if self._activity.busy:
            self.stop()
        else:
            self.input.submit()

    # ---- client signals ------------------------------------------------------------

    def _on_connection(self, state: str, detail: str) -> None:
        self._activity.connection = state
        self._activity.connection_detail = detail
        if state == "connected":
            self.banner.clear("connection")
            self.banner.clear("send")
        elif state == "failed":
            self.banner.show_message("connection", detail)
        self._refresh()

    def _on_status(self, state: str, detail: str, progress: float) -> None:
        self._activity.backend = state
        self._activity.backend_detail = detail
        self._activity.progress = progress
        if state == "error":
            self.banner.show_message("backend", f"The backend could not get ready: {detail}")
        else:
            self.banner.clear("backend")
        self._refresh()

    def _on_text(self, turn_id: int, text: str) -> None:
        self.chat.append_reply(turn_id, text)
        if not self._activity.has_text:
            self._activity.has_text = True
            self._refresh()

    def _on_turn_done(self, turn_id: int, status: str, text: str, timings: object) -> None:
        self.chat.finish_reply(turn_id, status, timings=timings if isinstance(timings, Timings) else None)
        if self._client.current_turn is None:
            self._activity.turn_running = False
        self._refresh()

    def _on_error(self, code: str, message: str) -> None:
        key = "connection" if code in _CONNECTION_ERRORS else ("provider" if code == "provider" else "error")
        self.banner.show_message(key, message)

    def _on_playback(self, playing: bool) -> None:
        self._activity.playing = playing
        self._refresh()

    def _refresh(self) -> None:
        self.status.show_indicator(indicator_for(self._activity))
        self.send_button.setText("Stop" if self._activity.busy else "Send")
        self.send_button.setToolTip("Stop the reply (Esc)" if self._activity.busy else "Send (Enter)")
        self.send_button.setAccessibleName("Stop the reply" if self._activity.busy else "Send the question")
        tray = getattr(self, "tray", None)
        if tray is not None:
            tray.set_status(self.status.text)

    # ---- closing ---------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closed.emit()
        super().closeEvent(event)

    # ---- conversations, settings, actions, tray, listening (issue 4) ---------------------

    def _install_conversations_and_settings(self, settings: SettingsContext | None) -> None:
        self._settings = settings
        self._settings_dialog: SettingsDialog | None = None
        self._timelines: list[TimelineDialog] = []
        self.setWindowIcon(app_icon())
        self.resize(1000, 700)
        self.splitter.setSizes([240, 760])
        self.input.setAccessibleName("Question")
        self.conversations = ConversationController(self._client, self.sidebar, self.chat, self)
        self.conversations.problem.connect(self.banner.show_message)
        self.conversations.info.connect(lambda key, text: self.banner.show_message(key, text, "notice"))
        self.conversations.title_changed.connect(
            lambda title: self.setWindowTitle(f"{title} — Parley" if title else "Parley")
        )
        self.chat.timeline_requested.connect(self.show_timeline)
        self._install_actions()
        self.tray: ParleyTray | None = None
        if ParleyTray.available():
            self.tray = ParleyTray(self)
            self.tray.toggle_requested.connect(self.toggle_shown)
            self.tray.push_to_talk_requested.connect(self.push_to_talk_requested)
            self.tray.quit_requested.connect(self.close)
            self.tray.show()

    def _install_actions(self) -> None:
        """The menus, whose shortcuts work anywhere in the window."""
        self.actions_by_name: dict[str, QAction] = {}

        def action(name: str, text: str, slot: object, shortcut: QKeySequence | str | None = None) -> QAction:
            item = QAction(text, self)
            if shortcut is not None:
                item.setShortcut(QKeySequence(shortcut))
            item.triggered.connect(slot)
            self.actions_by_name[name] = item
            return item

        parley = self.menuBar().addMenu("&Parley")
        parley.addAction(action("settings", "&Settings…", self.open_settings, "Ctrl+,"))
        parley.addSeparator()
        parley.addAction(action("quit", "&Quit", self.close, "Ctrl+Q"))
        conversation = self.menuBar().addMenu("&Conversation")
        conversation.addAction(action("new", "&New conversation", self.new_conversation, "Ctrl+N"))
        conversation.addAction(action("search", "&Search conversations", self.focus_search, "Ctrl+F"))
        conversation.addAction(action("export", "&Export to Markdown…", self.conversations.export_current, "Ctrl+E"))
        conversation.addSeparator()
        conversation.addAction(action("regenerate", "&Regenerate the last reply", self.regenerate, "Ctrl+R"))
        conversation.addAction(action("copy", "&Copy the last reply", self.copy_last_reply, "Ctrl+Shift+C"))
        conversation.addAction(action("stop", "S&top the reply (Esc)", self.stop))
        view = self.menuBar().addMenu("&View")
        view.addAction(action("focus_input", "&Focus the question", self.focus_input, "Ctrl+L"))
        view.addAction(action("sidebar", "Show the &conversation list", self.toggle_sidebar, "Ctrl+B"))
        self.actions_by_name["sidebar"].setCheckable(True)
        self.actions_by_name["sidebar"].setChecked(True)
        self.sidebar.new_button.setToolTip("Start a new conversation (Ctrl+N)")

    # actions

    def new_conversation(self) -> None:
        self.conversations.new_conversation()
        self.focus_input()

    def focus_input(self) -> None:
        self.show_window()
        self.input.setFocus()

    def focus_search(self) -> None:
        if not self.sidebar.isVisible():
            self.toggle_sidebar()
        self.sidebar.search.setFocus()
        self.sidebar.search.selectAll()

    def toggle_sidebar(self) -> None:
        self.sidebar.setVisible(not self.sidebar.isVisible())
        self.actions_by_name["sidebar"].setChecked(self.sidebar.isVisible())

    def regenerate(self) -> None:
        """Asks for the last reply again; it replaces the old one in the view and in the store."""
        if self.chat.last_reply() is None:
            self.banner.show_message("send", "There is no reply to regenerate yet.")
            return
        try:
            turn_id = self._client.regenerate()
        except AskRefused as exc:
            self.banner.show_message("send", str(exc))
            return
        self.banner.clear("send")
        self.banner.clear("provider")
        self.chat.remove_last_reply()
        self.chat.begin_reply(turn_id)
        self._activity.turn_running = True
        self._activity.has_text = False
        self._refresh()

    def copy_last_reply(self) -> None:
        reply = self.chat.last_reply()
        if reply is not None:
            self.chat.copy_message(reply)

    def show_timeline(self, timings: object) -> None:
        if not isinstance(timings, Timings):
            return
        dialog = TimelineDialog(timings, getattr(timings, "stt_s", None), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.destroyed.connect(lambda *_: self._timelines.remove(dialog) if dialog in self._timelines else None)
        self._timelines.append(dialog)
        dialog.show()

    def open_settings(self) -> SettingsDialog | None:
        """Opens the settings dialog (one at a time); returns it."""
        if self._settings is None:
            self.banner.show_message("settings", "Settings cannot be changed in this window.")
            return None
        if self._settings_dialog is not None and self._settings_dialog.isVisible():
            self._settings_dialog.raise_()
            self._settings_dialog.activateWindow()
            return self._settings_dialog
        dialog = SettingsDialog(self._client.config, self._settings, self)
        dialog.applied.connect(self._apply_settings)
        self._settings_dialog = dialog
        dialog.open()
        return dialog

    def _apply_settings(self, config: Config) -> None:
        self._client.apply_config(config)
        if self._settings is not None:
            self._settings = replace(self._settings, notice="")
        for key in [k for k in self.banner.messages() if k.startswith("notice-")]:
            self.banner.clear(key)
        self.banner.show_message("settings", "The new settings are in use.", "notice")
        self.settings_applied.emit(config)

    # the window and the tray

    def show_window(self) -> None:
        self.show()
        self.raise_()
        self.activateWindow()
        if self.tray is not None:
            self.tray.window_shown(True)

    def toggle_shown(self) -> None:
        if self.isVisible() and not self.isMinimized():
            self.hide()
            if self.tray is not None:
                self.tray.window_shown(False)
        else:
            self.show_window()

    # the voice input drives these (issue 3)

    def set_listening(self, listening: bool) -> None:
        """Shows the "listening" state with the microphone level meter (or leaves it)."""
        self._activity.listening = listening
        self._refresh()

    def set_mic_level(self, dbfs: float) -> None:
        """The microphone level in dBFS, for the meter shown while listening."""
        self.status.set_level(dbfs)

    # ---- speaking instead of typing (issue 3) -------------------------------------------

    def _install_voice(self, bottom: QHBoxLayout, layout: QVBoxLayout) -> None:
        """The push-to-talk button and shortcut, the hands-free switch and the partial transcript."""
        audio = self._client.config.audio
        self.voice = VoiceController(self._client, self)
        self.ptt_keys = PushToTalkKeys(audio.push_to_talk_shortcut, self)
        self.mic_button = MicButton(self.ptt_keys.shortcut, self)
        self.hands_free = HandsFreeSwitch(self)
        self.voice_partial = PartialTranscript(self)
        bottom.insertWidget(1, self.mic_button, 0, Qt.AlignmentFlag.AlignBottom)
        bottom.insertWidget(2, self.hands_free, 0, Qt.AlignmentFlag.AlignBottom)
        layout.insertWidget(layout.indexOf(self.chat) + 1, self.voice_partial)
        self.mic_button.pressed.connect(self.voice.press)
        self.mic_button.released.connect(self.voice.release)
        self.ptt_keys.pressed.connect(self.voice.press)
        self.ptt_keys.released.connect(self.voice.release)
        self.hands_free.toggled.connect(self._on_hands_free)
        self.push_to_talk_requested.connect(self.voice.listen_once)
        self.voice.state_changed.connect(self._on_voice_state)
        self.voice.level_changed.connect(self.set_mic_level)
        self.voice.problem.connect(lambda text: self.banner.show_message("voice", text, "notice"))
        self.voice.barged_in.connect(lambda _heard: self._on_playback(self._client.is_playing))
        self._client.transcript.connect(self._on_transcript)
        self._client.status_changed.connect(lambda *_: self._refresh_voice())
        self._client.config_changed.connect(self._on_voice_config)
        self.closed.connect(self.voice.close)
        self._refresh_voice()

    def _on_hands_free(self, on: bool) -> None:
        if on and not self.voice.set_hands_free(True):
            self.hands_free.setChecked(False)  # the problem is in the banner
        elif not on:
            self.voice.set_hands_free(False)

    def _on_voice_state(self, state: str) -> None:
        self.mic_button.set_recording(state == "recording")
        taking = state in ("hearing", "recording")
        if taking:
            self.banner.clear("voice")
            self.voice_partial.show_partial("")
        self.set_listening(taking)
        if self.hands_free.isChecked() != self.voice.hands_free:
            self.hands_free.setChecked(self.voice.hands_free)

    def _on_transcript(self, turn_id: int, text: str, final: bool) -> None:
        if not final:
            self.voice_partial.show_partial(text)
            return
        self.voice_partial.clear_partial()
        if not text:
            self.banner.show_message("voice", f"{NO_SPEECH_MESSAGE} Please say it again.", "notice")
            return
        for key in ("voice", "send", "provider"):
            self.banner.clear(key)
        self.chat.add_user_message(text)
        self.chat.begin_reply(turn_id)
        self._activity.turn_running = True
        self._activity.has_text = False
        self._refresh()

    def _on_voice_config(self, config: object) -> None:
        if isinstance(config, Config) and self.ptt_keys.set_shortcut(config.audio.push_to_talk_shortcut):
            self.mic_button.set_shortcut_hint(self.ptt_keys.shortcut)

    def _refresh_voice(self) -> None:
        """Voice controls work once the backend can recognize speech; they say why not otherwise."""
        status = self._client.backend_status
        available = self._client.voice_available
        for control in (self.mic_button, self.hands_free):
            control.setEnabled(available)
        if not available and status is not None and status.state == "ready":
            reason = status.detail or "this backend has no speech recognition"
            self.hands_free.setToolTip(f"Voice input is unavailable: {reason}")
        if not available and self.voice.hands_free:
            self.voice.set_hands_free(False)
