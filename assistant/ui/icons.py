"""Parley's icon, painted in code at every size a screen may ask for (sharp on high-DPI displays).

A rounded square in Parley blue with a white speech bubble and two sound waves.
It needs no image file; when the project's SVG (resources/icons/parley.svg, also
used for the desktop entry) is there, ``app_icon`` uses that, so both look alike.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Final

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QLinearGradient, QPainter, QPainterPath, QPen, QPixmap

SIZES: Final = (16, 20, 24, 32, 40, 48, 64, 96, 128, 256, 512)
_SVG: Final = Path(__file__).resolve().parents[2] / "resources" / "icons" / "parley.svg"


def paint_icon(size: int) -> QPixmap:
    """The icon as a ``size`` x ``size`` pixmap with a transparent background."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = float(size)
    gradient = QLinearGradient(0, 0, s, s)
    gradient.setColorAt(0.0, QColor("#3b82f6"))
    gradient.setColorAt(1.0, QColor("#7c3aed"))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(gradient)
    painter.drawRoundedRect(QRectF(0.04 * s, 0.04 * s, 0.92 * s, 0.92 * s), 0.22 * s, 0.22 * s)
    bubble = QPainterPath()
    bubble.addRoundedRect(QRectF(0.18 * s, 0.22 * s, 0.46 * s, 0.38 * s), 0.1 * s, 0.1 * s)
    tail = QPainterPath()
    tail.moveTo(QPointF(0.26 * s, 0.56 * s))
    tail.lineTo(QPointF(0.22 * s, 0.76 * s))
    tail.lineTo(QPointF(0.40 * s, 0.58 * s))
    tail.closeSubpath()
    painter.setBrush(QColor("white"))
    painter.drawPath(bubble.united(tail))
    pen = QPen(QColor("white"), max(1.0, 0.055 * s))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    for i, radius in enumerate((0.12, 0.22)):
        box = QRectF(0.60 * s - radius * s, 0.41 * s - radius * s, 2 * radius * s, 2 * radius * s)
        if size >= 24 or i == 0:
            painter.drawArc(box, -40 * 16, 80 * 16)
    painter.end()
    return pixmap


def painted_icon() -> QIcon:
    """The icon painted at every size in ``SIZES``."""
    icon = QIcon()
    for size in SIZES:
        icon.addPixmap(paint_icon(size))
    return icon


@cache
def app_icon() -> QIcon:
    """The application icon: the project's SVG (sharp at any scale) if it is there, else the painted one."""
    if _SVG.is_file():
        icon = QIcon(str(_SVG))
        if not icon.isNull() and not icon.pixmap(64, 64).isNull():
            return icon
    return painted_icon()
