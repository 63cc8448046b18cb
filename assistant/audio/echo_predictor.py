"""Predicting Parley's own echo in the microphone, sample by sample, to hear a voice over it at once.

WebRTC's canceller (``echo_canceller``) hides the person's first ~100 ms of speech
over a reply: its suppressor treats everything as echo until its double-talk
detection catches up. A plain linear echo model does not: what it cannot predict
from the played signal is, from the first frame on, someone else. This module
keeps such a model for the barge-in detector (the canceller still cleans the
audio that goes to speech recognition):

- ``LagTracker`` finds where the echo sits relative to the reference the capture
  pipeline hands over (GCC-PHAT over the last second); the played timeline and the
  microphone's are re-anchored on jittery device clocks, so that lag changes by
  tens of milliseconds from one reply to the next.
- ``EchoPredictor`` runs a partitioned-block frequency-domain NLMS filter over the
  reference delayed by that lag (``PARTITIONS`` blocks of 10 ms, so a room's early
  reflections fit), with a proportionate step (most of it where the echo path is
  strong), and returns, per 10 ms frame, the residual the filter could not explain.
  When the lag moves, the reference window moves with it and the filter's taps with
  the window, so it keeps what it learnt about the room.

Qt-free, I/O-free, not thread-safe: used from the microphone's processing thread.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final

import numpy as np
import numpy.typing as npt

from assistant.audio.resample import Pcm16

RATE: Final = 16000
BLOCK: Final = 160
"""10 ms at 16 kHz, the capture pipeline's frame."""
PARTITIONS: Final = 8
STEP: Final = 0.4
"""NLMS step size (0..1): higher learns faster and is noisier."""
POWER_SMOOTHING: Final = 0.9
"""The step is normalised by the reference energy in the filter's span, never by less than it holds now
(a reply starting after silence must not make a huge step)."""
REGULARIZATION: Final = 1e5
PROPORTION_FLOOR: Final = 0.1
"""Every partition keeps at least this share (relative to the strongest) of the step, to find new paths."""
LEAD_SAMPLES: Final = 64
"""The filter starts this many samples before the echo's main path (resampling filters smear it both ways)."""
HISTORY_S: Final = 1.0
MAX_LAG_S: Final = 0.3
MAX_LEAD_S: Final = 0.1
"""Lags down to minus this are looked for too: an echo ahead of its reference (the device clocks misreported)
cannot be cancelled, and the capture pipeline moves the reference back behind it when it finds one."""
LAG_EVERY_FRAMES: Final = 25
LAG_MIN_FRAMES: Final = 40
"""At least this much microphone audio (0.4 s) goes into an estimate."""
LAG_MIN_DBFS: Final = -45.0
"""The reference must have been at least this loud over the window for a lag estimate."""
LAG_MIN_PLAYING: Final = 0.6
"""Something must have played in this share of the microphone window's frames."""
LAG_MIN_SHARPNESS: Final = 6.0
"""GCC-PHAT peak over the correlation's mean magnitude: below it, no clear echo path (noise, a voice over it)."""
LAG_AGREE_SAMPLES: Final = 16

Samples = npt.NDArray[np.float64]


def frame_dbfs(frame: npt.NDArray[np.generic]) -> float:
    """The level of a frame in dB relative to full scale (int16), about -90 for digital silence."""
    power = float(np.mean(np.square(np.asarray(frame, dtype=np.float64)))) + 1.0
    return 10.0 * math.log10(power / 32768.0**2)


class LagTracker:
    """Where the echo of the reference appears in the microphone, in samples (GCC-PHAT); see the module docstring."""

    def __init__(self) -> None:
        self._keep = int(HISTORY_S * RATE)
        self._max_lag = int(MAX_LAG_S * RATE)
        self._max_lead = int(MAX_LEAD_S * RATE)
        self._mic: deque[Pcm16] = deque()
        self._ref: deque[Pcm16] = deque()
        self._frames = 0
        self._candidate: int | None = None
        self.lag: int | None = None
        self.changes = 0
        self.confirmations = 0
        """Times two estimates in a row agreed (whether or not the lag changed)."""

    def add(self, mic: Pcm16, reference: Pcm16) -> bool:
        """Feeds one frame pair; returns True when ``lag`` changed.

        An estimate counts once the next one (a quarter second later) agrees, so a
        window where a voice over the echo blurred the correlation changes nothing.
        """
        self._mic.append(mic)
        self._ref.append(reference)
        limit = (self._keep + self._max_lag) // BLOCK
        while len(self._ref) > limit:
            self._ref.popleft()
        while len(self._mic) > self._keep // BLOCK:
            self._mic.popleft()
        self._frames += 1
        if self._frames < LAG_EVERY_FRAMES or len(self._ref) - self._max_lag // BLOCK < LAG_MIN_FRAMES:
            return False
        self._frames = 0
        found = self._estimate()
        if found is None:
            return False
        if self._candidate is None or abs(found - self._candidate) > LAG_AGREE_SAMPLES:
            self._candidate = found  # one estimate is not enough: wait for the next to agree
            return False
        self._candidate = found
        self.confirmations += 1
        if self.lag is not None and abs(found - self.lag) <= LAG_AGREE_SAMPLES // 2:
            return False
        self.lag = found
        self.changes += 1
        return True

    def _estimate(self) -> int | None:
        usable = min(len(self._mic), len(self._ref) - self._max_lag // BLOCK)  # early on, a shorter window
        played = list(self._ref)
        if sum(bool(np.any(frame)) for frame in played[-usable:]) < LAG_MIN_PLAYING * usable:
            return None  # mostly silence (between replies, or paused for a voice): nothing to align on
        reference = np.concatenate(played).astype(np.float64)
        if frame_dbfs(reference) < LAG_MIN_DBFS:
            return None
        mic = np.concatenate(list(self._mic)[-usable:]).astype(np.float64)
        # both windows end now: lag L pairs mic[i] with ref[i + offset - L]
        offset = reference.size - mic.size
        size = 1 << int(math.ceil(math.log2(reference.size + mic.size)))
        cross = np.fft.rfft(mic, size) * np.conj(np.fft.rfft(reference, size))
        cross /= np.abs(cross) + 1e-9
        correlation = np.fft.irfft(cross, size)
        # correlation[k] pairs mic[i + k] with ref[i]: the echo at lag L is at k = L - offset (mod size)
        lags = np.arange(-self._max_lead, self._max_lag + 1)
        values = np.abs(correlation[(lags - offset) % size])
        best = int(np.argmax(values))
        sharpness = float(values[best]) / (float(np.mean(values)) + 1e-12)
        return int(lags[best]) if sharpness >= LAG_MIN_SHARPNESS else None

    def shift(self, samples: int) -> None:
        """The reference now runs ``samples`` further ahead of the microphone: the lag grows by as much.

        The windows are forgotten (they mix both alignments); the next estimates are made from new audio.
        """
        self._mic.clear()
        self._ref.clear()
        self._candidate = None
        self._frames = 0
        if self.lag is not None:
            self.lag += samples
            self.changes += 1


class EchoPredictor:
    """A linear echo model over the reference; ``process`` returns what it leaves of a microphone frame."""

    def __init__(self, partitions: int = PARTITIONS, step: float = STEP) -> None:
        self._partitions = partitions
        self._step = step
        self._size = 2 * BLOCK
        self._weights = np.zeros((partitions, BLOCK + 1), dtype=np.complex128)
        self._spectra = np.zeros((partitions, BLOCK + 1), dtype=np.complex128)
        self._power = np.zeros(BLOCK + 1)
        self._history = np.zeros(int(MAX_LAG_S * RATE) + (partitions + 2) * BLOCK, dtype=np.float64)
        self._delay = 0  # the filter's window starts this many samples before the newest reference sample
        self.tracker = LagTracker()

    @property
    def lag(self) -> int | None:
        return self.tracker.lag

    def shift(self, samples: int) -> None:
        """The reference now runs ``samples`` further ahead of the microphone (see ``LagTracker.shift``)."""
        self.tracker.shift(samples)
        if self.tracker.lag is not None:
            self._delay = max(0, self.tracker.lag - LEAD_SAMPLES)
            self._rebuild_spectra()

    def process(self, mic: Pcm16, reference: Pcm16, *, adapt: bool) -> Samples:
        """The part of ``mic`` the model does not predict from ``reference`` (float64, same length).

        Learns from this frame when ``adapt`` (nobody else is speaking: a voice over
        the echo would teach the filter that voice).
        """
        ref = np.asarray(reference, dtype=np.float64)
        self._history = np.roll(self._history, -BLOCK)
        self._history[-BLOCK:] = ref
        if self.tracker.add(mic, reference) and self.tracker.lag is not None:
            delay = max(0, self.tracker.lag - LEAD_SAMPLES)
            self._shift_weights(delay - self._delay)
            self._delay = delay
            self._rebuild_spectra()
        else:
            self._spectra = np.roll(self._spectra, 1, axis=0)
            self._spectra[0] = np.fft.rfft(self._window(0))
        predicted = np.fft.irfft(np.sum(self._weights * self._spectra, axis=0), self._size)[BLOCK:]
        residual: Samples = np.asarray(mic, dtype=np.float64) - predicted
        if adapt:
            self._learn(residual)
        return residual

    def _window(self, blocks_back: int) -> Samples:
        """The 2-block input window of the partition ``blocks_back`` blocks old, delayed by the lag."""
        end = self._history.size - self._delay - blocks_back * BLOCK
        window: Samples = self._history[end - self._size : end]
        return window

    def _shift_weights(self, taps: int) -> None:
        """The echo moved ``taps`` later against the reference: what the filter has learnt there since (it
        learns faster than the lag is confirmed) moves to where the window now expects the echo; a move
        longer than the filter leaves nothing to keep."""
        if taps == 0:
            return
        response = np.fft.irfft(self._weights, self._size, axis=1)[:, :BLOCK].reshape(-1)
        moved = np.zeros_like(response)
        if 0 < taps < response.size:
            moved[: response.size - taps] = response[taps:]
        elif -response.size < taps < 0:
            moved[-taps:] = response[: response.size + taps]
        padded = np.concatenate([moved.reshape(self._partitions, BLOCK), np.zeros((self._partitions, BLOCK))], axis=1)
        self._weights = np.fft.rfft(padded, axis=1)

    def _rebuild_spectra(self) -> None:
        for p in range(self._partitions):
            self._spectra[p] = np.fft.rfft(self._window(p))

    def _proportions(self) -> Samples:
        """Each partition's share of the step, by its weight (proportionate NLMS), scaled to average 1.

        An echo path is mostly a few strong taps; giving the partitions that hold them most of the step makes
        the model re-learn in a fraction of the time (a new reply shifts the echo by a fraction of a sample).
        """
        norms = np.sqrt(np.sum(np.abs(self._weights) ** 2, axis=1))
        shares = norms + PROPORTION_FLOOR * float(np.max(norms)) + 1e-9
        result: Samples = self._partitions * shares / float(np.sum(shares))
        return result

    def _learn(self, residual: Samples) -> None:
        span = np.sum(np.abs(self._spectra) ** 2, axis=0)  # the reference energy the filter sees, per bin
        self._power = np.maximum(POWER_SMOOTHING * self._power + (1 - POWER_SMOOTHING) * span, span)
        error = np.fft.rfft(np.concatenate([np.zeros(BLOCK), residual]))
        gradient = np.conj(self._spectra) * (error / (self._power + REGULARIZATION))
        gradient *= self._proportions()[:, np.newaxis]
        constrained = np.fft.irfft(gradient, self._size, axis=1)
        constrained[:, BLOCK:] = 0  # keep each partition a causal 10 ms piece of the impulse response
        self._weights += self._step * np.fft.rfft(constrained, axis=1)
