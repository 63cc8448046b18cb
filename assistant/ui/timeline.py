"""A turn's timeline, drawn to scale: speech recognition, first token, first audio, end of speech.

Time 0 is when the question was complete (typed, or the person stopped speaking).
``timeline_of`` is the pure part (segments, markers, ticks); the widget paints it
with palette colours, and the dialog adds a one-line summary for screen readers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from backend.protocol import Timings

_KIND_COLOURS: Final = {"stt": "#0b8043", "wait": "#9aa0a6", "llm": "#1a73e8", "speech": "#9334e6"}


@dataclass(frozen=True)
class Segment:
    label: str
    start_s: float
    end_s: float
    kind: str  # stt | wait | llm | speech


@dataclass(frozen=True)
class Marker:
    label: str
    at_s: float


@dataclass(frozen=True)
class Timeline:
    segments: tuple[Segment, ...]
    markers: tuple[Marker, ...]
    span_s: float

    def summary(self) -> str:
        """The markers in words, e.g. "first token 0.21 s, first audio 0.40 s, end of speech 3.10 s"."""
        return ", ".join(f"{m.label} {m.at_s:.2f} s" for m in self.markers) or "No timings were recorded."


def timeline_of(timings: Timings, stt_s: float | None = None) -> Timeline:
    """Lays out a turn's timings (``stt_s``: how long speech recognition took, for spoken questions)."""
    offset = stt_s if stt_s and stt_s > 0 else 0.0
    segments: list[Segment] = []
    markers: list[Marker] = []
    if offset:
        segments.append(Segment("Speech recognition", 0.0, offset, "stt"))
        markers.append(Marker("heard", offset))
    if timings.ttft_s is not None:
        first_token = offset + timings.ttft_s
        segments.append(Segment("Waiting for the model", offset, first_token, "wait"))
        segments.append(Segment("Writing the reply", first_token, first_token + max(timings.llm_s, 0.0), "llm"))
        markers.append(Marker("first token", first_token))
    if timings.ttfa_s is not None:
        first_audio = offset + timings.ttfa_s
        speech_end = first_audio + max(timings.audio_s, 0.0)
        segments.append(Segment("Speaking", first_audio, speech_end, "speech"))
        markers.append(Marker("first audio", first_audio))
        if timings.audio_s > 0:
            markers.append(Marker("end of speech", speech_end))
    ends = [s.end_s for s in segments] + [m.at_s for m in markers] + [offset + timings.total_s]
    span = max(ends) if ends else 0.0
    return Timeline(tuple(segments), tuple(markers), span if span > 0 else 1.0)


def ticks(span_s: float, most: int = 8) -> list[float]:
    """Round tick positions from 0 to ``span_s`` (1, 2 or 5 times a power of ten apart)."""
    if span_s <= 0:
        return [0.0]
    raw = span_s / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    count = int(span_s / step + 1e-9)
    return [round(i * step, 6) for i in range(count + 1)]


class TimelineWidget(QWidget):
    """Paints one ``Timeline``: a row per segment, markers as vertical lines, a seconds axis."""

    ROW_HEIGHT: Final = 22
    LABEL_WIDTH: Final = 150

    def __init__(self, timeline: Timeline, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.timeline = timeline
        self.setAccessibleName("Turn timeline")
        self.setAccessibleDescription(timeline.summary())
        self.setMinimumSize(self.sizeHint())

    def sizeHint(self) -> QSize:
        rows = max(1, len(self.timeline.segments))
        line = QFontMetrics(self.font()).height()
        return QSize(560, 40 + rows * self.ROW_HEIGHT + (len(self.timeline.markers) + 1) * line + 16)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.WindowText)
        muted = palette.color(QPalette.ColorRole.PlaceholderText)
        metrics = QFontMetrics(self.font())
        left, right = float(self.LABEL_WIDTH), float(self.width() - 16)
        top = 12.0
        span = self.timeline.span_s

        def x_of(seconds: float) -> float:
            return left + (right - left) * min(1.0, max(0.0, seconds / span))

        for row, segment in enumerate(self.timeline.segments):
            y = top + row * self.ROW_HEIGHT
            painter.setPen(text)
            painter.drawText(QRectF(4, y, left - 10, self.ROW_HEIGHT), Qt.AlignmentFlag.AlignVCenter, segment.label)
            width = max(2.0, x_of(segment.end_s) - x_of(segment.start_s))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(_KIND_COLOURS.get(segment.kind, "#9aa0a6")))
            painter.drawRoundedRect(QRectF(x_of(segment.start_s), y + 4, width, self.ROW_HEIGHT - 8), 3, 3)
        axis_y = top + max(1, len(self.timeline.segments)) * self.ROW_HEIGHT + 6
        painter.setPen(QPen(muted, 1))
        painter.drawLine(QPointF(left, axis_y), QPointF(right, axis_y))
        for tick in ticks(span):
            x = x_of(tick)
            painter.drawLine(QPointF(x, axis_y), QPointF(x, axis_y + 4))
            label = f"{tick:g} s"
            painter.drawText(QPointF(x - metrics.horizontalAdvance(label) / 2, axis_y + 6 + metrics.ascent()), label)
        labels_y = axis_y + 10 + metrics.height()
        for i, marker in enumerate(self.timeline.markers):
            x = x_of(marker.at_s)
            baseline = labels_y + i * metrics.height() + metrics.ascent()
            painter.setPen(QPen(text, 1, Qt.PenStyle.DashLine))
            painter.drawLine(QPointF(x, top - 4), QPointF(x, baseline - metrics.ascent()))
            label = f"{marker.label} {marker.at_s:.2f} s"  # one line each, so close markers never overlap
            width = metrics.horizontalAdvance(label)
            label_x = x + 4 if x + 4 + width < self.width() - 4 else x - 4 - width
            painter.setPen(text)
            painter.drawText(QPointF(label_x, baseline), label)
        painter.end()


class TimelineDialog(QDialog):
    """A small window with a turn's timeline and its summary in words."""

    def __init__(self, timings: Timings, stt_s: float | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Reply timeline")
        timeline = timeline_of(timings, stt_s)
        self.picture = TimelineWidget(timeline, self)
        self.summary = QLabel(timeline.summary(), self)
        self.summary.setWordWrap(True)
        self.summary.setAccessibleName("Timeline summary")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.picture, 1)
        layout.addWidget(self.summary)
        layout.addWidget(buttons)
