"""Qt adapter for the Qt-free ``AudioPlayer``: turns its state into signals by polling."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QTimer, Signal

from assistant.audio.player import AudioPlayer

log = logging.getLogger("parley.app.audio")

POLL_INTERVAL_MS = 40


class PlaybackMonitor(QObject):
    """Emits ``playing_changed(bool)`` when sound starts or stops, ``underrun(int)`` on a new underrun,
    and ``device_failed(message)`` once when the device stops playing by itself."""

    playing_changed = Signal(bool)
    underrun = Signal(int)
    device_failed = Signal(str)

    def __init__(self, player: AudioPlayer, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._player = player
        self._playing = False
        self._underruns = 0
        self._failure_reported = False
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.timeout.connect(self._poll)

    @property
    def playing(self) -> bool:
        return self._playing

    def watch(self) -> None:
        """Starts polling (call when a stream begins); polling stops by itself when sound ends."""
        self._underruns = self._player.underruns
        if not self._timer.isActive():
            self._timer.start()

    def refresh(self) -> None:
        """Re-reads the player now (e.g. right after a flush)."""
        self._poll()

    def _poll(self) -> None:
        failure = self._player.failure
        if failure is not None and not self._failure_reported:
            self._failure_reported = True
            log.warning("the audio output failed during playback")
            self._timer.stop()
            self.device_failed.emit(failure)
            return
        playing = self._player.is_playing
        if playing != self._playing:
            self._playing = playing
            self.playing_changed.emit(playing)
        underruns = self._player.underruns
        if underruns > self._underruns:
            log.info("audio underrun (%d in this reply)", underruns)
            self.underrun.emit(underruns)
        self._underruns = underruns
        if not playing and self._player.drained:
            self._timer.stop()
