"""The status light: a coloured dot, a short label, and a progress bar while models load."""

from __future__ import annotations

from typing import Final

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from assistant.ui.level_meter import LevelMeter
from assistant.ui.status_logic import Indicator

_COLOURS: Final = {
    "starting": "#9aa0a6",
    "loading": "#f2a600",
    "ready": "#1e8e3e",
    "listening": "#0b8043",
    "thinking": "#1a73e8",
    "speaking": "#9334e6",
    "error": "#d93025",
}


class StatusIndicator(QWidget):
    """Shows one ``Indicator``; a progress bar (busy when progress is unknown) while models load."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._dot = QLabel(self)
        self._dot.setFixedSize(12, 12)
        self._label = QLabel(self)
        self._progress = QProgressBar(self)
        self._progress.setRange(0, 100)
        self._progress.setFixedWidth(140)
        self._progress.setTextVisible(True)
        self._progress.hide()
        self.meter = LevelMeter(self)  # driven by the voice input through set_level (issue 4)
        self.meter.hide()
        self._dot.setAccessibleName("Status light")
        self._label.setAccessibleName("Status")
        self._progress.setAccessibleName("Model preparation progress")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._dot)
        layout.addWidget(self._label)
        layout.addWidget(self.meter)
        layout.addStretch(1)
        layout.addWidget(self._progress)
        self._indicator = Indicator("starting", "Starting…")
        self.show_indicator(self._indicator)

    @property
    def state(self) -> str:
        return self._indicator.state

    @property
    def text(self) -> str:
        return self._label.text()

    @property
    def progress_visible(self) -> bool:
        return not self._progress.isHidden()

    @property
    def progress_percent(self) -> int | None:
        """The bar's value, or None when it is hidden or busy."""
        if self._progress.isHidden() or self._progress.maximum() == 0:
            return None
        return self._progress.value()

    def show_indicator(self, indicator: Indicator) -> None:
        self._indicator = indicator
        colour = _COLOURS.get(indicator.state, _COLOURS["starting"])
        self._dot.setStyleSheet(f"background-color: {colour}; border-radius: 6px;")
        self._label.setText(indicator.label)
        self._label.setToolTip(indicator.detail)
        self.meter.setVisible(indicator.state == "listening")
        if indicator.state != "listening":
            self.meter.reset()
        if indicator.state != "loading":
            self._progress.hide()
            return
        if indicator.progress is None:
            self._progress.setRange(0, 0)  # busy: the backend did not say how far it is
        else:
            self._progress.setRange(0, 100)
            self._progress.setValue(round(100 * indicator.progress))
        self._progress.show()

    def set_level(self, dbfs: float) -> None:
        """The microphone level (dBFS) for the meter shown while listening."""
        self.meter.set_level(dbfs)
