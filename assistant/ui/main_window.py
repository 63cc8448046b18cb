"""The Parley window: messages above, the chat, and the input with its Send/Stop button.

It only connects to ``BackendClient`` signals and calls its plain methods; it never
awaits. Esc (anywhere in the window) and the Stop button silence the reply at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QMainWindow, QPushButton, QVBoxLayout, QWidget

from assistant.backend_client import BackendClient
from assistant.net.backend_connection import AskRefused
from assistant.ui.chat_view import ChatView
from assistant.ui.error_banner import ErrorBanner
from assistant.ui.input_box import InputBox
from assistant.ui.status_indicator import StatusIndicator
from assistant.ui.status_logic import Activity, indicator_for

log = logging.getLogger("parley.app.ui")

_CONNECTION_ERRORS: Final = frozenset(
    {"unreachable", "timeout", "auth", "version", "protocol", "backend", "connection"}
)


class MainWindow(QMainWindow):
    """Emits ``closed`` when the person closes it; the app then shuts the backend down."""

    closed = Signal()

    def __init__(self, client: BackendClient, notices: Sequence[str] = ()) -> None:
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
        central = QWidget(self)
        central.setLayout(layout)
        self.setCentralWidget(central)

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
        self.chat.finish_reply(turn_id, status)
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

    # ---- closing ---------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closed.emit()
        super().closeEvent(event)
