"""Acoustic echo cancellation: removes Parley's own voice from the microphone signal.

Backed by WebRTC's AEC3 through ``pywebrtc-audio`` (chosen by measurement, see
``assistant/bench/aec_eval.py``: 34-46 dB of echo removed, no false barge-in on
its own voice, the person still detected while the reply plays, about 85 us per
10 ms frame). With the speakers louder than the person at the microphone, the
Silero score of the echo residue stayed below 0.3 and the person's reached
0.54-0.67, so the VAD threshold is best lowered to about 0.4 while a reply plays.
Works on 16 kHz mono int16 in 10 ms frames: each
microphone frame goes in with the frame that was playing at the same time (the
reference); when nothing plays, pass ``None`` and silence is used, so the
canceller's timeline keeps running. The output lags its input by about 8 ms.

Qt-free and I/O-free; not thread-safe (use it from the one thread that handles
microphone frames). ``EchoCanceller(enabled=False)`` passes the microphone through.
"""

from __future__ import annotations

import logging
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

log = logging.getLogger("parley.audio.aec")

Pcm16: TypeAlias = npt.NDArray[np.int16]

SAMPLE_RATE: Final = 16000
FRAME_SAMPLES: Final = 160
"""10 ms at 16 kHz: the unit the canceller works in."""
OUTPUT_DELAY_SAMPLES: Final = 128
"""How much later a sound comes out than it went in (measured for AEC3 at 16 kHz)."""


class EchoCancellerUnavailable(RuntimeError):
    """Echo cancellation was asked for but cannot run here (message is user-facing)."""


class EchoCanceller:
    """``process(mic_frame, reference_frame)`` returns the microphone without the reference's echo."""

    def __init__(self, *, enabled: bool = True, noise_suppression: bool = False, stream_delay_ms: int = 0) -> None:
        """``stream_delay_ms`` is an optional hint (0: AEC3 estimates the delay itself).

        Raises ``EchoCancellerUnavailable`` when enabled without ``pywebrtc-audio``.
        """
        self._processor: Any = None
        self._silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        self.noise_suppression = noise_suppression
        if not enabled:
            return
        try:
            import pywebrtc_audio
        except ImportError as exc:
            raise EchoCancellerUnavailable(
                f"Echo cancellation needs pywebrtc-audio ({exc}): install it with `pip install pywebrtc-audio`, "
                "or turn echo cancellation off and use headphones."
            ) from None
        self._processor = pywebrtc_audio.AudioProcessor(
            sample_rate=SAMPLE_RATE,
            num_channels=1,
            echo_cancellation=True,
            noise_suppression=noise_suppression,
            stream_delay_ms=max(0, int(stream_delay_ms)),
        )
        log.info("echo cancellation on (WebRTC AEC3%s)", ", noise suppression" if noise_suppression else "")

    @property
    def enabled(self) -> bool:
        return self._processor is not None

    @property
    def stream_delay_ms(self) -> int:
        return int(self._processor.stream_delay_ms) if self._processor is not None else 0

    @stream_delay_ms.setter
    def stream_delay_ms(self, value: int) -> None:
        if self._processor is not None:
            self._processor.stream_delay_ms = max(0, int(value))

    def process(self, mic_frame: Pcm16, reference_frame: Pcm16 | None) -> Pcm16:
        """Returns the cleaned microphone frame (a new array, same length).

        Both frames are 1-D int16 of the same length, a multiple of 160 samples
        (10 ms). ``reference_frame`` is what the speakers played meanwhile, or None
        for silence. Raises ``ValueError`` for frames of another shape or type.
        """
        mic = _checked(mic_frame, "microphone")
        if self._processor is None:
            return mic.copy()
        if reference_frame is None:
            reference = self._silence if mic.size == FRAME_SAMPLES else np.zeros(mic.size, dtype=np.int16)
        else:
            reference = _checked(reference_frame, "reference")
            if reference.size != mic.size:
                raise ValueError(f"the reference frame has {reference.size} samples, the microphone frame {mic.size}")
        cleaned: Pcm16 = self._processor.process(mic, reference)
        return cleaned

    def reset(self) -> None:
        """Forgets the learned echo path (e.g. after the output device changed)."""
        if self._processor is not None:
            self._processor.reset()


def _checked(frame: Pcm16, what: str) -> Pcm16:
    array = np.asarray(frame)
    if array.ndim != 1 or array.dtype != np.int16:
        raise ValueError(f"the {what} frame must be 1-D int16, got {array.dtype} with shape {array.shape}")
    if array.size == 0 or array.size % FRAME_SAMPLES:
        raise ValueError(f"the {what} frame must hold a multiple of {FRAME_SAMPLES} samples, got {array.size}")
    return np.ascontiguousarray(array)
