"""From microphone samples to clean 16 kHz speech and voice events (Qt-free, I/O-free).

``CapturePipeline.process(samples, captured_at)`` takes one block from the
microphone (any rate, with the time its first sample was captured) and:

1. resamples it to 16 kHz;
2. removes Parley's own voice in 10 ms frames with the echo canceller, giving it as
   reference what the speakers played at that moment (``PlaybackTap``);
3. runs voice activity detection (``UtteranceSegmenter``) on the clean audio, through an
   ``EchoGate`` that ignores what is only the canceller's residue while Parley speaks;
4. watches for someone starting to speak over the playback (``NearEndDetector``), which
   is faster than the voice detector when both voices sound at once;

and returns the clean audio, the utterance events, the level for a meter, and how
long the current pause inside an utterance has lasted. It keeps the last
``recent_s`` of clean audio for push-to-talk's pre-roll. The tests and the
benchmark feed it directly; the app feeds it from the microphone's thread.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Final

import numpy as np

from assistant.audio.echo_canceller import FRAME_SAMPLES as AEC_FRAME
from assistant.audio.echo_canceller import EchoCanceller
from assistant.audio.echo_gate import EchoGate
from assistant.audio.near_end import NearEndDetector
from assistant.audio.playback_tap import PlaybackTap
from assistant.audio.resample import Pcm16, Resampler
from assistant.audio.vad import FRAME_MS, SAMPLE_RATE, UtteranceSegmenter, VadEvent, level_dbfs

log = logging.getLogger("parley.app.voice")

REFERENCE_ADVANCE_S: Final = 0.02
"""The reference handed with a microphone frame is what played this much *after* it was captured.

The echo canceller only removes echo that comes after its reference; starting the
reference a little late relative to the capture time keeps clock and latency errors
from putting the echo ahead of it (the canceller finds the true delay itself).
"""
REANCHOR_S: Final = 0.05
UNSETTLED_FRAMES: Final = 150
"""After the echo path changed (a timeline slip), 1.5 s of playback during which the echo canceller re-learns
it: while something plays then, the microphone is not trusted to hold speech (no barge-in, no utterance).
Only frames with sound in the reference count: the canceller learns nothing from silence, and a slip often
comes between two replies (the device runs dry), long before the next reply's echo arrives."""
DEFAULT_RECENT_S: Final = 0.5
ECHO_LAG_RANGE_S: Final = (0.004, 0.2)
"""Where the echo may sit behind the reference handed to the canceller. Outside it (an echo ahead of its
reference, which no canceller removes, or one later than the canceller looks), the reference is moved so
that the echo comes ``REALIGNED_LAG_S`` after it, but never so far that the reference would run past what
the player has handed to the device (``REALIGN_MARGIN``) when the frame is read."""
REALIGNED_LAG_S: Final = 0.008
REALIGN_MARGIN: Final = 160
PROOF_FRAMES: Final = 100
"""A new reply (``NearEndDetector.starts_reply``) may have moved the echo path (the device timelines
are re-anchored between replies): in its first second of playback the microphone is not trusted to hold a
voice (no barge-in, no utterance) until the canceller has shown it removes this reply's echo
(``NearEndDetector.armed``), usually within half a second."""
MODEL_AUDIO_FRAMES: Final = 40
"""After an onset the echo model noticed, this many frames are taken from the model's residue rather than the
canceller's output: the canceller's suppressor hides the first tenths of a second of a voice that starts over
the echo (it takes it for echo), which is the first word of the interruption."""


@dataclass(frozen=True)
class CaptureResult:
    """What one block of microphone audio became."""

    audio: Pcm16  # the clean 16 kHz audio of this block (may be empty)
    events: tuple[VadEvent, ...]
    level_dbfs: float
    speaking: bool  # inside an utterance after this block
    pause_ms: float  # how long the current pause inside the utterance has lasted (0 while speech goes on)
    captured_at: float  # monotonic capture time of the first sample of ``audio``
    near_end_onset: bool = False  # someone started speaking over the playback (energy, not yet Silero)
    onset_by_echo_model: bool = False  # ...noticed by the echo model (else by the level rule)
    unsettled: bool = False  # the echo path just changed (a slip, a new reply): the microphone is not trusted


class CapturePipeline:
    """Resampling, echo cancellation and voice detection for one microphone stream."""

    def __init__(
        self,
        input_rate: int,
        segmenter: UtteranceSegmenter,
        echo: EchoCanceller,
        tap: PlaybackTap | None = None,
        *,
        gate: EchoGate | None = None,
        near_end: NearEndDetector | None = None,
        reference_advance_s: float = REFERENCE_ADVANCE_S,
        recent_s: float = DEFAULT_RECENT_S,
    ) -> None:
        self.input_rate = input_rate
        self.segmenter = segmenter
        self.echo = echo
        self.tap = tap
        self.gate = gate
        self.near_end = near_end
        self._advance = reference_advance_s
        self._resampler = Resampler(input_rate, SAMPLE_RATE)
        self._anchor: float | None = None  # capture time of 16 kHz sample 0 since the last anchor
        self._input_anchor = 0.0  # capture time of the first input sample since the last anchor
        self._reference_origin = 0  # the tap position of 16 kHz sample 0 since the anchor (plus the advance)
        self._realigned_by = 0  # samples added to that origin since the anchor to put the echo behind its reference
        self._inputs = 0
        self._outputs = 0  # 16 kHz samples produced since the anchor
        self._pending = np.zeros(0, dtype=np.int16)  # resampled, not yet a whole 10 ms frame
        self._recent: deque[Pcm16] = deque()
        self._recent_samples = 0
        self._recent_limit = int(recent_s * SAMPLE_RATE)
        self.reanchors = 0
        self.realignments = 0
        self._disruptions = tap.disruptions if tap is not None else 0
        self._unsettled = 0  # 10 ms frames left in which the canceller is re-learning
        self._model_audio = 0  # frames left to take from the echo model's residue (after an onset)
        self._proving = 0  # playback frames left in which a new reply's echo must be shown removed

    def process(self, samples: Pcm16, captured_at: float) -> CaptureResult:
        """Runs one microphone block through the pipeline; see the module docstring."""
        block = np.asarray(samples, dtype=np.int16).reshape(-1)
        if self._anchor is None or self._drifted(captured_at):
            self._reanchor(captured_at)
        assert self._anchor is not None
        self._inputs += block.size
        resampled = self._resampler.process(block)
        first_pending = self._outputs - self._pending.size  # 16 kHz index since the anchor
        first_pending_at = self._anchor + first_pending / SAMPLE_RATE
        self._outputs += resampled.size
        data = np.concatenate([self._pending, resampled]) if self._pending.size else resampled
        whole = data.size - data.size % AEC_FRAME
        self._pending = data[whole:].copy()
        clean = np.empty(whole, dtype=np.int16)
        onset = False
        if self.tap is not None and self.tap.disruptions != self._disruptions:
            self._disruptions = self.tap.disruptions
            self._unsettled = UNSETTLED_FRAMES
            if self.near_end is not None:
                self.near_end.echo_path_changed()
            log.info("the played timeline slipped (%d times so far): the echo canceller re-learns", self._disruptions)
        unsettled = self._unsettled > 0
        for offset in range(0, whole, AEC_FRAME):
            frame = data[offset : offset + AEC_FRAME]
            reference = None
            if self.tap is not None and self.echo.enabled:  # counted on from the anchor: no rounding jitter
                reference = self.tap.read_at(self._reference_origin + first_pending + offset, AEC_FRAME)
            if reference is None or np.any(reference):  # without a reference there is nothing to re-learn
                self._unsettled = max(0, self._unsettled - 1)
            distrust = self._unsettled > 0 or not self._reply_proven(reference)
            unsettled = unsettled or distrust
            if self.gate is not None:
                self.gate.note(frame, reference, distrust=distrust)
            clean[offset : offset + AEC_FRAME] = self.echo.process(frame, reference)
            if self.near_end is not None and reference is not None:
                try:
                    cleaned = clean[offset : offset + AEC_FRAME]
                    read_end = self._reference_origin + first_pending + offset + AEC_FRAME
                    onset = self._near_end(self.near_end, frame, cleaned, reference, read_end, distrust) or onset
                except Exception:  # a bug in the fast path must not stop the microphone: the voice detector remains
                    log.exception("the barge-in detector failed; barge-in now waits for the voice detector")
                    self.near_end = None
        events = tuple(self.segmenter.feed(clean)) if whole else ()
        self._remember(clean)
        speaking = self.segmenter.speaking
        pause_ms = self.segmenter.silent_frames * FRAME_MS if speaking else 0.0
        return CaptureResult(
            audio=clean,
            events=events,
            level_dbfs=level_dbfs(clean),
            speaking=speaking,
            pause_ms=pause_ms,
            captured_at=first_pending_at,
            near_end_onset=onset,
            onset_by_echo_model=onset and self.near_end is not None and self.near_end.last_onset_by_model,
            unsettled=unsettled,
        )

    def _reply_proven(self, reference: Pcm16 | None) -> bool:
        """False in the first ``PROOF_FRAMES`` of playback of a reply until the canceller has shown it removes
        this reply's echo (the echo path may have moved since the last one); True otherwise."""
        if reference is None or self.near_end is None:
            return True
        playing = bool(np.any(reference))
        if self.near_end.starts_reply(reference):
            self._proving = PROOF_FRAMES
        if self._proving and (playing or self.near_end.armed):
            self._proving = 0 if self.near_end.armed else self._proving - 1
        return self._proving == 0

    def _near_end(
        self,
        near_end: NearEndDetector,
        frame: Pcm16,
        cleaned: Pcm16,
        reference: Pcm16,
        read_end: int,
        distrust: bool,
    ) -> bool:
        """Runs the barge-in detector on one frame (whose reference was read up to tap position ``read_end``);
        after its echo model noticed a voice, ``cleaned`` becomes the model's residue (written in place) for
        ``MODEL_AUDIO_FRAMES``; an echo found outside ``ECHO_LAG_RANGE_S`` is realigned."""
        onset = near_end.update(frame, cleaned, reference, trusted=not distrust)
        lag = near_end.predictor.lag
        low, high = ECHO_LAG_RANGE_S
        if lag is not None and self.tap is not None and not low * SAMPLE_RATE <= lag <= high * SAMPLE_RATE:
            ahead = self.tap.written_until - read_end - REALIGN_MARGIN  # how much further the reference may run
            shift = min(round(REALIGNED_LAG_S * SAMPLE_RATE) - lag, ahead)
            if abs(shift) >= AEC_FRAME // 10:
                self._realign(near_end, shift)
        if onset and near_end.last_onset_by_model:
            self._model_audio = MODEL_AUDIO_FRAMES
        if self._model_audio:
            self._model_audio -= 1
            if near_end.voice_frame is not None:
                cleaned[:] = near_end.voice_frame
        return onset

    def _realign(self, near_end: NearEndDetector, shift: int) -> None:
        """Reads the reference ``shift`` samples further on (the echo then lags it by as much more); the canceller
        and the echo model re-learn."""
        self._reference_origin += shift
        self._realigned_by += shift
        near_end.predictor.shift(shift)
        self._unsettled = UNSETTLED_FRAMES
        self.realignments += 1
        lag_ms = 1000 * near_end.predictor.lag / SAMPLE_RATE if near_end.predictor.lag is not None else 0.0
        log.info(
            "the echo now comes %.0f ms after its reference: realigned (%d times so far)", lag_ms, self.realignments
        )

    @property
    def echo_delay_s(self) -> float | None:
        """How long after its tap time a played sound is captured, as the echo model measured it (or None)."""
        lag = self.near_end.predictor.lag if self.near_end is not None else None
        return None if lag is None else (lag - self._realigned_by) / SAMPLE_RATE - self._advance

    def recent(self, seconds: float) -> Pcm16:
        """The last ``seconds`` of clean audio (at most ``recent_s``)."""
        if not self._recent:
            return np.zeros(0, dtype=np.int16)
        audio = np.concatenate(list(self._recent))
        return audio[-int(seconds * SAMPLE_RATE) :] if seconds > 0 else audio[:0]

    def reset_voice(self) -> None:
        """Forgets any utterance in progress (e.g. after push-to-talk took over)."""
        self.segmenter.reset()

    def _remember(self, clean: Pcm16) -> None:
        if not clean.size:
            return
        self._recent.append(clean)
        self._recent_samples += clean.size
        while self._recent and self._recent_samples - self._recent[0].size >= self._recent_limit:
            self._recent_samples -= self._recent.popleft().size

    def _drifted(self, captured_at: float) -> bool:
        expected = self._input_anchor + self._inputs / self.input_rate
        return abs(captured_at - expected) > REANCHOR_S

    def _reanchor(self, captured_at: float) -> None:
        if self._anchor is not None:
            self.reanchors += 1
            self._unsettled = UNSETTLED_FRAMES
            if self.near_end is not None:
                self.near_end.echo_path_changed()
            log.info(
                "the microphone's timeline slipped (%d times so far): the echo canceller re-learns",
                self.reanchors,
            )
        self._resampler = Resampler(self.input_rate, SAMPLE_RATE)
        self._anchor = captured_at - self._pending.size / SAMPLE_RATE
        self._input_anchor = captured_at
        if self.tap is not None:
            self._reference_origin = self.tap.position(self._anchor + self._advance)
        self._realigned_by = 0
        self._inputs = 0
        self._outputs = self._pending.size
