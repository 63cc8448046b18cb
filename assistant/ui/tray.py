"""The tray icon (only where the desktop has a tray): show/hide the window, push-to-talk, quit."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from assistant.ui.icons import app_icon


class ParleyTray(QObject):
    """Emits ``toggle_requested``, ``push_to_talk_requested`` and ``quit_requested``."""

    toggle_requested = Signal()
    push_to_talk_requested = Signal()
    quit_requested = Signal()

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self._window = window
        self.menu = QMenu(window)
        self.show_action = QAction("Hide Parley", self.menu)
        self.show_action.triggered.connect(self.toggle_requested)
        self.talk_action = QAction("Push to talk", self.menu)
        self.talk_action.triggered.connect(self.push_to_talk_requested)
        quit_action = QAction("Quit Parley", self.menu)
        quit_action.triggered.connect(self.quit_requested)
        self.menu.addAction(self.show_action)
        self.menu.addAction(self.talk_action)
        self.menu.addSeparator()
        self.menu.addAction(quit_action)
        self.icon = QSystemTrayIcon(app_icon(), self)
        self.icon.setToolTip("Parley")
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)

    @staticmethod
    def available() -> bool:
        return QSystemTrayIcon.isSystemTrayAvailable()

    def show(self) -> None:
        self.icon.show()

    def window_shown(self, shown: bool) -> None:
        self.show_action.setText("Hide Parley" if shown else "Show Parley")

    def set_status(self, text: str) -> None:
        self.icon.setToolTip(f"Parley: {text}")

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.toggle_requested.emit()
