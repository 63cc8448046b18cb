"""A guard between the echo canceller and the voice detector while Parley is speaking.

Silero VAD scores a frame by its shape, not its loudness, so the faint residue the
echo canceller leaves of Parley's own voice (30-50 dB below the echo) can still
look like speech, mostly while the canceller is still learning the room. The
person's voice, in contrast, passes the canceller almost whole. ``EchoGate`` wraps
the frame scorer: while the speakers have recently played something, a frame from
which the canceller removed more than ``min_kept_db`` of the microphone signal is
scored as silence. When nothing plays, or with echo cancellation off, it changes
nothing.

The capture pipeline hands over each 10 ms of raw (resampled) microphone audio in
the order it hands the cleaned audio to the segmenter, so the gate pairs the
segmenter's frames with the raw audio they came from.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import numpy as np

from assistant.audio.resample import Pcm16
from assistant.audio.vad import FrameScorer

DEFAULT_MIN_KEPT_DB: Final = -20.0
ECHO_TAIL_FRAMES: Final = 50
"""10 ms frames after the last sound played during which echo may still arrive (500 ms)."""
MAX_PENDING: Final = 16000


class EchoGate:
    """A ``FrameScorer`` over another one; see the module docstring."""

    def __init__(self, scorer: FrameScorer, *, min_kept_db: float = DEFAULT_MIN_KEPT_DB) -> None:
        self._scorer = scorer
        self._min_kept = 10 ** (min_kept_db / 10)
        self._raw: deque[Pcm16] = deque()
        self._raw_samples = 0
        self._echo: deque[bool] = deque()  # one flag per 10 ms of ``_raw``: echo was possible then
        self._distrusted: deque[bool] = deque()  # ...and the canceller was re-learning
        self._since_sound = ECHO_TAIL_FRAMES
        self.gated_frames = 0

    def note(self, raw: Pcm16, reference: Pcm16 | None, *, distrust: bool = False) -> None:
        """Pipeline side: the raw microphone audio of the next cleaned samples, and what played meanwhile.

        ``distrust``: the canceller is re-learning the echo path; while echo is possible, nothing is speech.
        """
        playing = reference is not None and bool(np.any(reference))
        self._since_sound = 0 if playing else self._since_sound + 1
        self._raw.append(raw)
        self._raw_samples += raw.size
        echo_possible = self._since_sound < ECHO_TAIL_FRAMES
        self._echo.append(echo_possible and not distrust)
        self._distrusted.append(echo_possible and distrust)
        while self._raw_samples > MAX_PENDING:  # never unbounded, even if the scorer stopped asking
            self._raw_samples -= self._raw.popleft().size
            self._echo.popleft()
            self._distrusted.popleft()

    def probability(self, frame: Pcm16) -> float:
        probability = self._scorer.probability(frame)
        raw, echo_possible, distrusted = self._take(frame.size)
        if distrusted:
            self.gated_frames += 1
            return 0.0
        if echo_possible and probability > 0.0:
            kept = float(np.mean(np.square(frame.astype(np.float64)))) + 1.0
            heard = float(np.mean(np.square(raw.astype(np.float64)))) + 1.0 if raw.size else kept
            if kept < self._min_kept * heard:
                self.gated_frames += 1
                return 0.0
        return probability

    def reset(self) -> None:
        self._scorer.reset()
        self._raw.clear()
        self._echo.clear()
        self._distrusted.clear()
        self._raw_samples = 0

    def _take(self, count: int) -> tuple[Pcm16, bool, bool]:
        parts: list[Pcm16] = []
        echo = distrusted = False
        needed = count
        while needed > 0 and self._raw:
            head = self._raw[0]
            if head.size <= needed:
                parts.append(self._raw.popleft())
                echo = self._echo.popleft() or echo
                distrusted = self._distrusted.popleft() or distrusted
                needed -= head.size
                self._raw_samples -= head.size
            else:
                parts.append(head[:needed])
                self._raw[0] = head[needed:]
                self._raw_samples -= needed
                echo = self._echo[0] or echo
                distrusted = self._distrusted[0] or distrusted
                needed = 0
        raw = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        return raw, echo, distrusted
