"""Noticing the person's voice over Parley's within tens of milliseconds (a barge-in onset).

While both voices sound at once, the echo canceller's suppressor removes much of
the person's voice too, so the voice detector (Silero) needs several hundred
milliseconds to be sure. Energy tells sooner: once the canceller removes the echo
well, whatever it lets through *while Parley speaks* is someone else. Per 10 ms
frame, the frame is "near-end" when the cleaned signal is louder than
``LEVEL_DBFS`` and keeps at least ``KEPT_DB`` of the microphone signal; an onset
is ``ACTIVE`` near-end frames among the last ``WINDOW``.

It only speaks up when it can be trusted: while something played in the last
``ECHO_TAIL_FRAMES`` (otherwise the voice detector decides alone) and once the
canceller has shown it removes the echo (``ARMING_KEPT_DB`` or less on most recent
echo frames). An onset is a reason to pause playback, not proof of speech: the
caller confirms it with the voice detector (and resumes playback if it does not).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Final

import numpy as np

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


def _dbfs(frame: Pcm16) -> float:
    power = float(np.mean(np.square(frame.astype(np.float64)))) + 1.0
    return 10.0 * math.log10(power / 32768.0**2)


class NearEndDetector:
    """``update(raw, clean, reference)`` per 10 ms frame; True at an onset of the person's voice."""

    def __init__(self) -> None:
        self._recent: deque[bool] = deque(maxlen=WINDOW)
        self._echo_kept: deque[float] = deque(maxlen=ARMING_FRAMES)
        self._since_sound = ECHO_TAIL_FRAMES
        self._quiet_for = REFRACTORY_FRAMES
        self.onsets = 0

    @property
    def armed(self) -> bool:
        """The canceller has shown it removes the echo, so what it lets through is someone else."""
        if len(self._echo_kept) < ARMING_MIN_FRAMES:
            return False
        return float(np.quantile(np.fromiter(self._echo_kept, dtype=np.float64), ARMING_QUANTILE)) < ARMING_KEPT_DB

    def update(self, raw: Pcm16, clean: Pcm16, reference: Pcm16 | None) -> bool:
        playing = reference is not None and bool(np.any(reference))
        self._since_sound = 0 if playing else self._since_sound + 1
        self._quiet_for += 1
        if self._since_sound >= ECHO_TAIL_FRAMES:
            self._recent.clear()
            return False
        raw_db, clean_db = _dbfs(raw), _dbfs(clean)
        kept_db = clean_db - raw_db
        if playing and raw_db > ECHO_LEVEL_DBFS:
            self._echo_kept.append(kept_db)
        self._recent.append(clean_db > LEVEL_DBFS and kept_db > KEPT_DB)
        if sum(self._recent) < ACTIVE or self._quiet_for < REFRACTORY_FRAMES or not self.armed:
            return False
        self._quiet_for = 0
        self._recent.clear()
        self.onsets += 1
        log.debug("near-end onset: clean %.0f dBFS, %.0f dB of the microphone kept", clean_db, kept_db)
        return True

    def reset(self) -> None:
        """Forgets the recent frames (not what it learnt about the canceller)."""
        self._recent.clear()
