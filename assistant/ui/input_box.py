"""Where the person types: Enter sends, Shift+Enter starts a new line."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit, QWidget

_SEND_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter)


class InputBox(QPlainTextEdit):
    """Multi-line input; emits ``submitted(text)`` on Enter and leaves clearing to the receiver."""

    submitted = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText("Ask Parley…  (Enter sends, Shift+Enter starts a new line)")
        self.setTabChangesFocus(True)
        line = self.fontMetrics().lineSpacing()
        self.setMinimumHeight(2 * line + 16)
        self.setMaximumHeight(6 * line + 16)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in _SEND_KEYS and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            event.accept()
            self.submit()
            return
        super().keyPressEvent(event)

    def submit(self) -> None:
        """Emits the text unless it is blank."""
        text = self.toPlainText()
        if text.strip():
            self.submitted.emit(text)
