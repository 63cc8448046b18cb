"""The first-run welcome: everything runs here, the models being prepared, and a first try of the voice.

Shown once: closing it leaves a flag file in the data directory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from assistant.ui.icons import app_icon

log = logging.getLogger("parley.app.ui")

FLAG_NAME: Final = "welcome-shown"
TRY_QUESTION: Final = "Say hello, and tell me in one sentence what you can do."


def first_run(data_dir: Path) -> bool:
    return not (data_dir / FLAG_NAME).exists()


def mark_welcomed(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / FLAG_NAME).write_text("1\n", encoding="utf-8")
    except OSError as exc:  # the welcome shows again next time: no harm
        log.warning("cannot write the first-run flag in %s: %s", data_dir, exc)


class WelcomeDialog(QDialog):
    """Follows the backend's status; "Try the voice" asks a first question once the models are ready."""

    def __init__(self, data_dir: Path, try_voice: Callable[[str], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Welcome to Parley")
        self.setAccessibleName("Welcome")
        self._data_dir = data_dir
        self._try_voice = try_voice
        icon = QLabel(self)
        icon.setPixmap(app_icon().pixmap(64, 64))
        title = QLabel("<h2>Welcome to Parley</h2>", self)
        self.intro = QLabel(
            "Parley runs entirely on this computer: the language model, the voice and the speech "
            "recognition work offline, and your conversations are stored only here, in "
            f"<code>{data_dir}</code>.<br><br>"
            "Type a question, or hold the push-to-talk key and speak. Replies are read aloud while "
            "they are written. You can switch to OpenAI or your own server in Settings.",
            self,
        )
        self.intro.setWordWrap(True)
        self.intro.setTextFormat(Qt.TextFormat.RichText)
        self.progress_label = QLabel("Preparing the models…", self)
        self.progress_label.setAccessibleName("Model preparation")
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 0)
        self.progress.setAccessibleName("Model preparation progress")
        self.try_button = QPushButton("Try the voice", self)
        self.try_button.setAccessibleName("Try the voice")
        self.try_button.setEnabled(False)
        self.try_button.clicked.connect(self._try)
        self.start_button = QPushButton("Start", self)
        self.start_button.setAccessibleName("Start using Parley")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.accept)
        header = QHBoxLayout()
        header.addWidget(icon)
        header.addWidget(title, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.try_button)
        buttons.addStretch(1)
        buttons.addWidget(self.start_button)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.intro)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.progress)
        layout.addLayout(buttons)
        self.setMinimumWidth(520)

    def show_status(self, state: str, detail: str, progress: float) -> None:
        """The backend's status (the ``BackendClient.status_changed`` arguments)."""
        if state == "ready":
            self.progress.setRange(0, 100)
            self.progress.setValue(100)
            self.progress_label.setText("The models are ready.")
            self.try_button.setEnabled(True)
        elif state == "error":
            self.progress.setRange(0, 100)
            self.progress.setValue(0)
            self.progress_label.setText(f"The models could not be prepared: {detail}")
        else:
            self.progress_label.setText(detail or "Preparing the models…")
            if 0.0 <= progress <= 1.0:
                self.progress.setRange(0, 100)
                self.progress.setValue(round(progress * 100))
            else:
                self.progress.setRange(0, 0)

    def _try(self) -> None:
        self._try_voice(TRY_QUESTION)
        self.try_button.setText("Listen…")

    def done(self, result: int) -> None:
        mark_welcomed(self._data_dir)
        super().done(result)
