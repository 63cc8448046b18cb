"""Noticing the person's voice over Parley's within tens of milliseconds (a barge-in onset).

While both voices sound at once, the echo canceller's suppressor removes much of
the person's voice too, so the voice detector (Silero) needs several hundred
milliseconds to be sure. Energy tells sooner, by two paths:

- the residual path: a linear model of the echo (``EchoPredictor``) leaves, once it
  has learnt the room, the echo's residue well below the microphone level (the
  ``typical`` echo reduction of the last half second). A frame whose residue is
  ``RESIDUAL_MARGIN_DB`` closer to the microphone than that, and louder than the
  echo's residue can be after the recent loudest echo, holds someone else's voice
  from its first syllable on; ``RESIDUAL_ACTIVE`` such frames among the last
  ``RESIDUAL_WINDOW`` are an onset. The model re-learns at the start of each reply
  (the played and the captured timelines may have slipped apart) and is trusted only
  once its echo lag was confirmed and it removes ``RESIDUAL_ARMING_DB`` again;
- the level path, for the times the model is not trusted: once the canceller removes
  the echo well, whatever it lets through *while Parley speaks* is someone else. A
  frame is "near-end" when the cleaned signal is louder than ``LEVEL_DBFS`` and
  keeps at least ``KEPT_DB`` of the microphone signal; an onset is ``ACTIVE``
  near-end frames among the last ``WINDOW``, once the canceller has shown it removes
  the echo (``ARMING_KEPT_DB`` or less on most recent echo frames).

Both only speak up while something played in the last ``ECHO_TAIL_FRAMES``
(otherwise the voice detector decides alone). An onset is a reason to pause
playback, not proof of speech: the caller confirms it with the voice detector (and
resumes playback if it does not).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Final

import numpy as np
import numpy.typing as npt

from assistant.audio.echo_canceller import OUTPUT_DELAY_SAMPLES
from assistant.audio.echo_predictor import EchoPredictor, frame_dbfs
from assistant.audio.resample import Pcm16

log = logging.getLogger("parley.app.voice")

LEVEL_DBFS: Final = -45.0
KEPT_DB: Final = -10.0
ACTIVE: Final = 4
WINDOW: Final = 6
ECHO_TAIL_FRAMES: Final = 50
ECHO_LEVEL_DBFS: Final = -50.0
"""A microphone frame this loud while Parley plays is (mostly) its echo: it tells how well the canceller works."""
ARMING_KEPT_DB: Final = -25.0
ARMING_FRAMES: Final = 200
ARMING_MIN_FRAMES: Final = 50
ARMING_QUANTILE: Final = 0.3
REFRACTORY_FRAMES: Final = 100
RESIDUAL_MARGIN_DB: Final = 15.0
RESIDUAL_MAX_REDUCTION_DB: Final = 12.0
"""Whatever the typical reduction, a frame the model still reduces by this much is mostly echo: a voice up to
12 dB under the echo leaves less."""
RESIDUAL_OVER_FLOOR_DB: Final = 3.0
FLOOR_QUANTILE: Final = 0.95
FLOOR_FRAMES: Final = 200
"""The model's error floor: how loud its residue gets, relative to the loudest echo frame of the last 100 ms,
on 95% of the last 2 s of echo frames. A voice's residue must stand ``RESIDUAL_OVER_FLOOR_DB`` above it."""
RESIDUAL_OVER_PREDICTION_DB: Final = 3.0
"""A voice adds to the echo: a microphone frame quieter than the model's prediction of the echo (by more than
this) is the model gone wrong (still predicting the tail of a sentence that ended, say), not a voice; so is a
residue louder than the microphone."""
RESIDUAL_ACTIVE: Final = 2
RESIDUAL_WINDOW: Final = 3
RESIDUAL_ARMING_DB: Final = 18.0
TYPICAL_FRAMES: Final = 50
TYPICAL_SKIP_FRAMES: Final = 10
"""The newest frames are left out of ``typical``: an onset must not lower the bar it is measured against."""
PEAK_FRAMES: Final = 10
SPREAD_PARTS: Final = 4
"""The residue's level is that of its second quietest quarter frame: a voice fills the frame, while a click
(a sample dropped or repeated somewhere between the sound card and here) fills a quarter or two."""
LEARN_PAUSE_FRAMES: Final = 20
"""After a near-end frame the echo model stops learning for this long (it would learn the voice)."""


def _spread_dbfs(frame: npt.NDArray[np.float64]) -> float:
    """The level of the second quietest of ``SPREAD_PARTS`` equal parts of the frame (dBFS)."""
    parts = np.mean(np.square(frame.reshape(SPREAD_PARTS, -1)), axis=1)
    return 10.0 * math.log10((float(np.sort(parts)[1]) + 1.0) / 32768.0**2)


class NearEndDetector:
    """``update(raw, clean, reference)`` per 10 ms frame; True at an onset of the person's voice."""

    def __init__(self, predictor: EchoPredictor | None = None) -> None:
        self._recent: deque[bool] = deque(maxlen=WINDOW)
        self._echo_kept: deque[float] = deque(maxlen=ARMING_FRAMES)
        self._since_sound = ECHO_TAIL_FRAMES
        self._quiet_for = REFRACTORY_FRAMES
        self.predictor = predictor if predictor is not None else EchoPredictor()
        self._reduction: deque[float] = deque(maxlen=TYPICAL_FRAMES + TYPICAL_SKIP_FRAMES)
        self._excess: deque[float] = deque(maxlen=FLOOR_FRAMES)
        self._peaks: deque[float] = deque(maxlen=PEAK_FRAMES)
        self._residual_recent: deque[bool] = deque(maxlen=RESIDUAL_WINDOW)
        self._confirmations_needed = 1
        self._lag_changes = 0
        self._learn_pause = 0
        self._voice_tail = np.zeros(OUTPUT_DELAY_SAMPLES, dtype=np.float64)
        self.voice_frame: Pcm16 | None = None
        """The last microphone frame minus the modelled echo, as late as the canceller's output, while the
        model is trusted (else None): unlike the canceller's, it does not hide a voice that starts over the echo."""
        self.onsets = 0
        self.last_onset_by_model = False

    @property
    def armed(self) -> bool:
        """The canceller has shown it removes the echo, so what it lets through is someone else."""
        if len(self._echo_kept) < ARMING_MIN_FRAMES:
            return False
        return float(np.quantile(np.fromiter(self._echo_kept, dtype=np.float64), ARMING_QUANTILE)) < ARMING_KEPT_DB

    def starts_reply(self, reference: Pcm16) -> bool:
        """``reference`` (the next frame's) is the first sound after ``ECHO_TAIL_FRAMES`` of silence: a new reply."""
        return self._since_sound >= ECHO_TAIL_FRAMES and bool(np.any(reference))

    @property
    def typical_reduction_db(self) -> float | None:
        """How much the echo model removed from the microphone on recent echo frames (median), or None."""
        history = list(self._reduction)[:-TYPICAL_SKIP_FRAMES]
        return float(np.median(history)) if len(history) >= TYPICAL_FRAMES // 2 else None

    def update(self, raw: Pcm16, clean: Pcm16, reference: Pcm16, *, trusted: bool = True) -> bool:
        """One 10 ms frame: the microphone, the canceller's output, what played; True at an onset.

        ``trusted`` False (the echo path just changed) still teaches the models but never reports an onset.
        """
        playing = bool(np.any(reference))
        if self.starts_reply(reference):  # the echo path may have moved since the last reply
            self.echo_path_changed()
        self._since_sound = 0 if playing else self._since_sound + 1
        self._quiet_for += 1
        raw_db, clean_db = frame_dbfs(raw), frame_dbfs(clean)
        self._residual_frame(raw, reference, raw_db, playing=playing)
        if self._since_sound >= ECHO_TAIL_FRAMES:
            self._recent.clear()
            return False
        kept_db = clean_db - raw_db
        if playing and raw_db > ECHO_LEVEL_DBFS:  # how well the canceller removes the echo now (arming)
            self._echo_kept.append(kept_db)
        if not trusted:  # the canceller is re-learning, or has yet to show it removes this reply's echo
            self._recent.clear()
            return False
        self._recent.append(clean_db > LEVEL_DBFS and kept_db > KEPT_DB)
        by_residual = sum(self._residual_recent) >= RESIDUAL_ACTIVE
        by_level = sum(self._recent) >= ACTIVE and self.armed
        if self._quiet_for < REFRACTORY_FRAMES or not (by_residual or by_level):
            return False
        self._quiet_for = 0
        self._recent.clear()
        self._residual_recent.clear()
        self.onsets += 1
        self.last_onset_by_model = by_residual
        log.debug(
            "near-end onset (%s): clean %.0f dBFS, %.0f dB of the microphone kept",
            "echo model" if by_residual else "level",
            clean_db,
            kept_db,
        )
        return True

    def _residual_frame(self, raw: Pcm16, reference: Pcm16, raw_db: float, *, playing: bool) -> None:
        """Runs the echo model on one frame and notes whether it holds a voice the model cannot explain."""
        predictor = self.predictor
        residual = predictor.process(raw, reference, adapt=playing and self._learn_pause == 0)
        if predictor.tracker.changes != self._lag_changes:  # the echo moved: both paths must prove themselves anew
            self._lag_changes = predictor.tracker.changes
            self._forget_record()
        residual_db = _spread_dbfs(residual)
        reduction = raw_db - residual_db
        predicted_db = frame_dbfs(raw.astype(np.float64) - residual)
        self._peaks.append(raw_db)
        excess = residual_db - max(self._peaks)
        typical = self.typical_reduction_db
        trusted = (
            typical is not None
            and typical >= RESIDUAL_ARMING_DB
            and len(self._excess) >= TYPICAL_FRAMES
            and predictor.tracker.confirmations >= self._confirmations_needed
        )
        delayed = np.concatenate([self._voice_tail, residual])
        self._voice_tail = delayed[-OUTPUT_DELAY_SAMPLES:]
        voice = np.clip(np.rint(delayed[: residual.size]), -32768, 32767).astype(np.int16)
        self.voice_frame = voice if trusted else None
        floor = float(np.quantile(np.fromiter(self._excess, dtype=np.float64), FLOOR_QUANTILE)) if trusted else 0.0
        near = (
            trusted
            and typical is not None
            and residual_db > LEVEL_DBFS
            and excess > floor + RESIDUAL_OVER_FLOOR_DB
            and 0.0 <= reduction < min(typical - RESIDUAL_MARGIN_DB, RESIDUAL_MAX_REDUCTION_DB)
            and predicted_db <= raw_db + RESIDUAL_OVER_PREDICTION_DB
        )
        if playing and raw_db > ECHO_LEVEL_DBFS and self._quiet_for > LEARN_PAUSE_FRAMES:
            self._reduction.append(reduction)
        echo_heard = self._since_sound < PEAK_FRAMES and max(self._peaks) > ECHO_LEVEL_DBFS
        if echo_heard and self._quiet_for > LEARN_PAUSE_FRAMES and not near:
            self._excess.append(excess)
        self._learn_pause = LEARN_PAUSE_FRAMES if near else max(0, self._learn_pause - 1)
        self._residual_recent.append(near)

    def echo_path_changed(self) -> None:
        """The echo may have moved (a new reply, a slip of a timeline): neither the canceller's nor the echo
        model's past record counts until they have shown again that they remove it (and the lag is confirmed)."""
        self._forget_record()
        self._confirmations_needed = self.predictor.tracker.confirmations + 1

    def _forget_record(self) -> None:
        """Drops what the canceller and the echo model have shown on earlier echo."""
        self._echo_kept.clear()
        self._reduction.clear()
        self._excess.clear()

    def reset(self) -> None:
        """Forgets the recent frames (not what it learnt about the canceller or the echo)."""
        self._recent.clear()
        self._residual_recent.clear()
