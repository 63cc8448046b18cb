"""The voice controls next to the input: the push-to-talk button, the hands-free switch, the partial transcript."""

from __future__ import annotations

from typing import Final

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QLabel, QPushButton, QSizePolicy, QToolButton, QWidget

_RECORDING_STYLE: Final = "QPushButton { background-color: #d93025; color: white; border-radius: 4px; }"
_HEARING_NOTE: Final = "Listening…"


def mic_icon(colour: str = "#5f6368", size: int = 32) -> QIcon:
    """A microphone painted in code (no image file, no emoji font needed)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = float(size)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(colour))
    painter.drawRoundedRect(QRectF(0.36 * s, 0.08 * s, 0.28 * s, 0.5 * s), 0.14 * s, 0.14 * s)
    pen = QPen(QColor(colour), max(1.5, 0.07 * s))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawArc(QRectF(0.24 * s, 0.2 * s, 0.52 * s, 0.52 * s), 200 * 16, 140 * 16)
    painter.drawLine(int(0.5 * s), int(0.73 * s), int(0.5 * s), int(0.88 * s))
    painter.drawLine(int(0.36 * s), int(0.9 * s), int(0.64 * s), int(0.9 * s))
    painter.end()
    return QIcon(pixmap)


class MicButton(QPushButton):
    """Press and hold to speak, release to send (``pressed``/``released`` of QPushButton)."""

    def __init__(self, shortcut: str, parent: QWidget | None = None) -> None:
        super().__init__("Talk", parent)
        self.setIcon(mic_icon())
        self.setIconSize(QSize(18, 18))
        self.setMinimumWidth(72)
        self.setAccessibleName("Push to talk")
        self.set_shortcut_hint(shortcut)
        self._recording = False

    def set_shortcut_hint(self, shortcut: str) -> None:
        hint = f" ({shortcut})" if shortcut else ""
        self.setToolTip(f"Hold to speak, release to send{hint}. Pressing it while Parley speaks interrupts it.")

    @property
    def recording(self) -> bool:
        return self._recording

    def set_recording(self, recording: bool) -> None:
        self._recording = recording
        self.setStyleSheet(_RECORDING_STYLE if recording else "")
        self.setIcon(mic_icon("#ffffff" if recording else "#5f6368"))


class HandsFreeSwitch(QToolButton):
    """On: every question spoken and followed by a pause is sent."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setText("Hands-free")
        self.setCheckable(True)
        self.setAccessibleName("Hands-free listening")
        self.setToolTip("Listen all the time: speak, pause, and your words are sent. Speak over Parley to interrupt.")


class PartialTranscript(QLabel):
    """What the person is saying, while they say it (hidden otherwise)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setStyleSheet("color: palette(mid); font-style: italic;")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.setAccessibleName("What you are saying")
        self.hide()

    def show_partial(self, text: str) -> None:
        self.setText(f"{text}…" if text else _HEARING_NOTE)
        self.show()

    def clear_partial(self) -> None:
        self.clear()
        self.hide()
