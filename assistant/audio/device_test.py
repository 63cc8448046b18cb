"""Sound devices for the settings dialog: lists, a test tone, and a microphone level probe.

Every failure becomes ``AudioUnavailable`` with a message for people; nothing here
blocks the GUI thread (the tone plays in the background, the probe reads levels
from PortAudio's callback thread).
"""

from __future__ import annotations

import math
import threading
from typing import Any, Final, Literal

import numpy as np

from assistant.audio.device import AudioUnavailable, load_sounddevice, parse_device

TONE_HZ: Final = 440.0
TONE_S: Final = 0.8
TONE_RATE: Final = 22050
PROBE_RATE: Final = 16000
SILENCE_DBFS: Final = -90.0


def device_names(kind: Literal["input", "output"]) -> list[str]:
    """Names of the devices that can record (input) or play (output); [] when there are none."""
    try:
        sd = load_sounddevice()
        devices = sd.query_devices()
    except (AudioUnavailable, OSError, Exception):  # PortAudio errors have no common base worth naming
        return []
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    names: list[str] = []
    for device in devices:
        if int(device.get(key, 0)) > 0 and device["name"] not in names:
            names.append(str(device["name"]))
    return names


def play_test_tone(device: str) -> None:
    """Starts a short, soft tone on ``device`` ("" is the default) and returns at once."""
    sd = load_sounddevice()
    t = np.arange(int(TONE_S * TONE_RATE)) / TONE_RATE
    fade = np.minimum(1.0, np.minimum(t, TONE_S - t) / 0.05)
    tone = (0.25 * np.sin(2 * math.pi * TONE_HZ * t) * fade).astype(np.float32)
    try:
        sd.play(tone, TONE_RATE, device=parse_device(device))
    except Exception as exc:  # sounddevice.PortAudioError, ValueError for an unknown name
        raise AudioUnavailable(f"Cannot play on {device or 'the default output'}.", str(exc)) from exc


def dbfs(samples: Any) -> float:
    """The RMS level of float samples in dBFS (``SILENCE_DBFS`` for silence)."""
    data = np.asarray(samples, dtype=np.float64)
    if data.size == 0:
        return SILENCE_DBFS
    rms = float(np.sqrt(np.mean(data * data)))
    return max(SILENCE_DBFS, 20 * math.log10(rms)) if rms > 0 else SILENCE_DBFS


class MicrophoneProbe:
    """Records from a device and keeps the latest level; ``level_dbfs`` is read from any thread."""

    def __init__(self, device: str) -> None:
        self._device = device
        self._stream: Any = None
        self._lock = threading.Lock()
        self._level = SILENCE_DBFS
        self.blocks = 0

    @property
    def level_dbfs(self) -> float:
        with self._lock:
            return self._level

    def start(self) -> None:
        """Opens the input stream; raises ``AudioUnavailable`` with a clear message."""
        sd = load_sounddevice()
        try:
            self._stream = sd.InputStream(
                device=parse_device(self._device),
                channels=1,
                samplerate=PROBE_RATE,
                blocksize=PROBE_RATE // 20,
                dtype="float32",
                callback=self._callback,
            )
            self._stream.start()
        except Exception as exc:
            self._stream = None
            raise AudioUnavailable(f"Cannot record from {self._device or 'the default microphone'}.", str(exc)) from exc

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        level = dbfs(indata[:, 0])
        with self._lock:
            self._level = level
            self.blocks += 1

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:  # closing a broken stream: nothing more to do
                pass
