"""A live microphone level meter: a bar from -60 dBFS (empty) to 0 dBFS (full), in palette colours.

The voice input calls ``set_level(dbfs)`` for each block it captures (on the GUI
thread); the bar falls back slowly so short syllables stay visible.
"""

from __future__ import annotations

from typing import Final

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

FLOOR_DBFS: Final = -60.0
FALL_PER_UPDATE: Final = 0.06  # how far (of the full scale) the bar may drop per update
LOUD: Final = 0.85  # above this fraction the bar is drawn in a warning colour


def fraction_of(dbfs: float) -> float:
    """0..1 for -60..0 dBFS (clamped; NaN counts as silence)."""
    if dbfs != dbfs:  # NaN
        return 0.0
    return max(0.0, min(1.0, (dbfs - FLOOR_DBFS) / -FLOOR_DBFS))


class LevelMeter(QWidget):
    """Shows the latest microphone level."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._fraction = 0.0
        self._dbfs = FLOOR_DBFS
        self.setAccessibleName("Microphone level")
        self.setToolTip("Microphone level")
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    @property
    def fraction(self) -> float:
        return self._fraction

    @property
    def dbfs(self) -> float:
        return self._dbfs

    def set_level(self, dbfs: float) -> None:
        """Shows a new level (dBFS, 0 is full scale); rises at once, falls gradually."""
        self._dbfs = dbfs
        target = fraction_of(dbfs)
        self._fraction = target if target >= self._fraction else max(target, self._fraction - FALL_PER_UPDATE)
        self.setAccessibleDescription(f"{max(FLOOR_DBFS, dbfs):.0f} dBFS")
        self.update()

    def reset(self) -> None:
        self._fraction = 0.0
        self._dbfs = FLOOR_DBFS
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(90, 10)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        frame = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        painter.setPen(palette.color(QPalette.ColorRole.Mid))
        painter.setBrush(palette.color(QPalette.ColorRole.Base))
        painter.drawRoundedRect(frame, 3, 3)
        if self._fraction > 0:
            bar = QRectF(frame.left() + 1, frame.top() + 1, (frame.width() - 2) * self._fraction, frame.height() - 2)
            colour = QColor("#d93025") if self._fraction > LOUD else palette.color(QPalette.ColorRole.Highlight)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(colour)
            painter.drawRoundedRect(bar, 2, 2)
        painter.end()
