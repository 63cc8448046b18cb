"""Sample-rate conversion with numpy only: a windowed-sinc polyphase resampler.

The microphone may run at 48, 44.1 or 22.05 kHz; the VAD, the echo canceller and
speech recognition want 16 kHz. ``Resampler`` converts a stream block by block
(any block sizes, the same output as converting the whole signal at once);
``resample`` converts a whole signal. Both low-pass below the lower Nyquist
frequency, so downsampling does not alias. The stream is delayed by half the
filter length (under 2 ms at the common rates).
"""

from __future__ import annotations

from math import gcd
from typing import Any, Final

import numpy as np
import numpy.typing as npt

Pcm16 = npt.NDArray[np.int16]

ZERO_CROSSINGS: Final = 16
"""Zero crossings of the sinc on each side: sets steepness and length of the filter."""
ROLLOFF: Final = 0.92
"""Passband edge as a fraction of the lower Nyquist frequency."""
KAISER_BETA: Final = 8.6
_MAX_PHASES: Final = 4096


class Resampler:
    """Converts a stream of int16 mono samples from ``src_rate`` to ``dst_rate``.

    ``process`` takes blocks of any size and returns the output samples that are
    complete so far; ``flush`` returns the rest at the end of the stream.
    """

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {src_rate} and {dst_rate}")
        divisor = gcd(src_rate, dst_rate)
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._up = dst_rate // divisor  # output steps per ``_down`` input samples
        self._down = src_rate // divisor
        if self._up > _MAX_PHASES:
            raise ValueError(f"cannot convert {src_rate} Hz to {dst_rate} Hz: the ratio is too fine")
        self._half, self._bank = _filter_bank(self._up, self._down)
        self._history = np.zeros(self._half, dtype=np.float64)  # leading zeros: output 0 is centred on input 0
        self._history_start = -self._half  # absolute input index of _history[0]
        self._next_output = 0
        self._consumed = 0  # input samples received so far

    @property
    def passthrough(self) -> bool:
        return self._up == self._down

    def process(self, samples: npt.NDArray[Any]) -> Pcm16:
        """Feeds samples (1-D, int16 or float in int16 scale) and returns the new output samples."""
        block = _as_float(samples)
        self._consumed += block.size
        if self.passthrough:
            return _to_int16(block)
        self._history = np.concatenate([self._history, block])
        return self._emit(self._history_start + self._history.size)

    def flush(self) -> Pcm16:
        """Returns the remaining output, as if the stream were followed by silence; then resets."""
        if self.passthrough:
            return np.zeros(0, dtype=np.int16)
        total_outputs = -(-self._consumed * self._up // self._down)  # ceil
        self._history = np.concatenate([self._history, np.zeros(self._half + 1, dtype=np.float64)])
        out = self._emit(self._history_start + self._history.size, limit=total_outputs)
        self.reset()
        return out

    def reset(self) -> None:
        self._history = np.zeros(self._half, dtype=np.float64)
        self._history_start = -self._half
        self._next_output = 0
        self._consumed = 0

    def _emit(self, available_end: int, limit: int | None = None) -> Pcm16:
        # Output n is centred at input position n * down / up and needs inputs up to floor(..) + half.
        last = -(-(available_end - self._half) * self._up // self._down)  # ceil: first output not ready
        if limit is not None:
            last = min(last, limit)
        count = last - self._next_output
        if count <= 0:
            return np.zeros(0, dtype=np.int16)
        n = np.arange(self._next_output, last, dtype=np.int64)
        position = n * self._down
        base = position // self._up
        phase = position % self._up
        taps = self._bank.shape[1]
        first = base - self._half + 1 - self._history_start
        index = first[:, None] + np.arange(taps, dtype=np.int64)[None, :]
        out = np.einsum("ij,ij->i", self._history[index], self._bank[phase])
        self._next_output = last
        # Keep only the history the next output still needs.
        next_first = (last * self._down) // self._up - self._half + 1
        drop = max(0, next_first - self._history_start)
        if drop:
            self._history = self._history[drop:]
            self._history_start += drop
        return _to_int16(out)


def resample(samples: npt.NDArray[Any], src_rate: int, dst_rate: int) -> Pcm16:
    """Converts a whole int16 mono signal; the result has ``ceil(len * dst / src)`` samples."""
    converter = Resampler(src_rate, dst_rate)
    head = converter.process(samples)
    return np.concatenate([head, converter.flush()])


def downmix_to_mono(frames: npt.NDArray[Any]) -> Pcm16:
    """Averages the channels of a (samples, channels) block into int16 mono; 1-D input passes."""
    array = np.asarray(frames)
    if array.ndim == 1:
        return _to_int16(array.astype(np.float64))
    if array.ndim != 2:
        raise ValueError(f"expected (samples, channels) audio, got shape {array.shape}")
    return _to_int16(array.astype(np.float64).mean(axis=1))


def _filter_bank(up: int, down: int) -> tuple[int, npt.NDArray[np.float64]]:
    """One windowed-sinc row per output phase; each row sums to 1 (unity gain at DC)."""
    cutoff = 0.5 * min(1.0, up / down) * ROLLOFF  # cycles per input sample
    half = int(np.ceil(ZERO_CROSSINGS / (2.0 * cutoff)))
    taps = 2 * half
    k = np.arange(taps, dtype=np.float64)[None, :]
    fraction = (np.arange(up, dtype=np.float64) / up)[:, None]
    offset = k - half + 1 - fraction  # input sample position minus the output position
    window = np.kaiser(2 * taps + 1, KAISER_BETA)
    # Sample the window continuously at the offset (it spans [-half, half]).
    window_at = np.interp(offset / half, np.linspace(-1.0, 1.0, window.size), window, left=0.0, right=0.0)
    bank = 2.0 * cutoff * np.sinc(2.0 * cutoff * offset) * window_at
    bank /= bank.sum(axis=1, keepdims=True)
    return half, bank


def _as_float(samples: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    array = np.asarray(samples)
    if array.ndim != 1:
        raise ValueError(f"expected mono 1-D audio, got shape {array.shape}")
    return array.astype(np.float64)


def _to_int16(values: npt.NDArray[np.float64]) -> Pcm16:
    return np.clip(np.rint(values), -32768, 32767).astype(np.int16)
