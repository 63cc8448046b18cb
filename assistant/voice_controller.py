"""The Qt side of voice input: ``VoiceInput`` for the window, as signals and plain methods.

``VoiceController`` owns a ``VoiceInput`` whose connection is the app's
``BackendClient`` and whose player is the client's (barge-in silences it). It
turns what voice input reports into signals on the GUI thread and takes its
settings from the client's configuration, also when the settings dialog changes
them. Widgets call ``press``/``release`` (push-to-talk), ``set_hands_free`` and
``listen_once``; none of them blocks or awaits.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

from assistant.backend_client import BackendClient
from assistant.voice_input import VoiceInput, VoiceSettings, VoiceState
from backend.config import AudioConfig, Config

log = logging.getLogger("parley.app.voice")


def voice_settings(audio: AudioConfig) -> VoiceSettings:
    """The voice input's settings from the ``[audio]`` section (out-of-range values fall back)."""
    threshold = audio.vad_threshold if 0.0 < audio.vad_threshold < 1.0 else VoiceSettings.vad_threshold
    silence = audio.end_silence_ms if audio.end_silence_ms > 0 else VoiceSettings.end_silence_ms
    return VoiceSettings(
        input_device=audio.input_device,
        vad_threshold=threshold,
        end_silence_ms=silence,
        echo_cancellation=audio.echo_cancellation,
    )


class VoiceController(QObject):
    """Signals: ``state_changed(str)`` (off | listening | hearing | recording), ``level_changed(float)``
    in dBFS, ``problem(str)`` for the person, ``barged_in(float)`` heard seconds of the reply."""

    state_changed = Signal(str)
    level_changed = Signal(float)
    problem = Signal(str)
    barged_in = Signal(float)

    def __init__(self, client: BackendClient, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._client = client
        self.voice = VoiceInput(client, self, voice_settings(client.config.audio), player=lambda: client.player)
        client.config_changed.connect(self._on_config)

    @property
    def state(self) -> VoiceState:
        return self.voice.state

    @property
    def hands_free(self) -> bool:
        return self.voice.hands_free

    # ---- for widgets ----------------------------------------------------------------

    def press(self) -> None:
        """Push-to-talk pressed (button or shortcut)."""
        self.voice.press()

    def release(self) -> None:
        """Push-to-talk released: the question is sent."""
        self.voice.release()

    def set_hands_free(self, on: bool) -> bool:
        """Listening for questions on or off; False (and ``problem``) if the microphone failed."""
        return self.voice.set_hands_free(on)

    def listen_once(self) -> None:
        """Takes one question hands-free (the tray's push-to-talk)."""
        self.voice.listen_once()

    def close(self) -> None:
        """Stops listening and closes the microphone."""
        self.voice.close()

    # ---- VoiceListener (GUI thread) -------------------------------------------------

    def on_state(self, state: VoiceState) -> None:
        self.state_changed.emit(state)

    def on_level(self, dbfs: float) -> None:
        self.level_changed.emit(dbfs)

    def on_problem(self, message: str) -> None:
        log.info("voice input: %s", message)
        self.problem.emit(message)

    def on_barge_in(self, heard_s: float) -> None:
        self.barged_in.emit(heard_s)

    def _on_config(self, config: object) -> None:
        if isinstance(config, Config):
            self.voice.apply(voice_settings(config.audio))
