"""A stack of dismissable messages above the chat: errors in red, notices in amber.

Each message has a key (e.g. "connection", "audio"), so a newer message of the
same kind replaces the older one and can be cleared when the problem goes away.
"""

from __future__ import annotations

from typing import Final

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

_STYLES: Final = {
    "error": "background-color: #fce8e6; color: #8c1d18; border: 1px solid #f2b8b5; border-radius: 4px;",
    "notice": "background-color: #fef7e0; color: #5c4200; border: 1px solid #f9dd8c; border-radius: 4px;",
}


class _BannerRow(QFrame):
    def __init__(self, text: str, level: str, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("bannerRow")
        self.setStyleSheet(f"#bannerRow {{ {_STYLES.get(level, _STYLES['error'])} }}")
        self.label = QLabel(text, self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setStyleSheet("border: none; background: transparent;")
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)


class ErrorBanner(QWidget):
    """Shows messages by key; hidden when there are none."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: dict[str, _BannerRow] = {}
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)
        self.hide()

    def show_message(self, key: str, text: str, level: str = "error") -> None:
        """Shows ``text`` under ``key`` (replacing an earlier message with that key)."""
        self.clear(key)
        row = _BannerRow(text, level, self)
        row.close_button.clicked.connect(lambda: self.clear(key))
        self._rows[key] = row
        self._layout.addWidget(row)
        self.show()

    def clear(self, key: str) -> None:
        row = self._rows.pop(key, None)
        if row is not None:
            self._layout.removeWidget(row)
            row.deleteLater()
        if not self._rows:
            self.hide()

    def message(self, key: str) -> str | None:
        row = self._rows.get(key)
        return row.label.text() if row is not None else None

    def messages(self) -> dict[str, str]:
        return {key: row.label.text() for key, row in self._rows.items()}
