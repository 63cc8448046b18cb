"""Spoken test input: espeak-ng speaks to a WAV file, resampled to 16 kHz mono int16.

Tests that need it are skipped when espeak-ng is not installed (apt install espeak-ng).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from assistant.audio.resample import resample

Pcm16 = npt.NDArray[np.int16]
RATE = 16000


@functools.lru_cache(maxsize=64)
def _spoken(text: str, voice: str, words_per_minute: int) -> bytes:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt install espeak-ng)")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(path), text],
            check=True,
            capture_output=True,
            timeout=30,
        )
        with wave.open(str(path), "rb") as wav:
            rate = wav.getframerate()
            audio = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
    return resample(audio, rate, RATE).tobytes()


def espeak(text: str, *, voice: str = "en-us", words_per_minute: int = 150) -> Pcm16:
    """``text`` spoken by espeak-ng at 16 kHz (cached per text and voice)."""
    return np.frombuffer(_spoken(text, voice, words_per_minute), dtype=np.int16).copy()


def silence(seconds: float) -> Pcm16:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def spoken_wav(path: Path, text: str, *, tail_s: float = 0.2) -> Path:
    """Writes ``text`` spoken by espeak-ng as a 16 kHz mono WAV, 0.2 s of silence before and ``tail_s`` after."""
    audio = np.concatenate([silence(0.2), espeak(text), silence(tail_s)])
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(audio.astype("<i2").tobytes())
    return path


def voiced_span(audio: Pcm16, level_dbfs: float = -40.0, window: int = 160) -> tuple[int, int]:
    """First and last sample of the 10 ms windows louder than ``level_dbfs``."""
    frames = audio[: audio.size - audio.size % window].astype(np.float64).reshape(-1, window)
    loud = np.flatnonzero(np.sqrt(np.mean(frames**2, axis=1)) > 32768 * 10 ** (level_dbfs / 20))
    if loud.size == 0:
        return 0, 0
    return int(loud[0] * window), int((loud[-1] + 1) * window)
