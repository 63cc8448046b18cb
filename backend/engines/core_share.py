"""Which engine is using the CPU right now, so the language model can take the idle cores.

Decoding one token is faster on every core (0.5B model, 2 cores: 23 ms instead of
35 ms), but two decode threads stall badly as soon as speech synthesis needs one of
those cores. Piper marks the time it synthesizes; llama.cpp reads the mark before
each token and decodes on every core only while speech is idle. So the first clause
of a reply (written before any speech exists) and the stretches where synthesis is
waiting for playback are decoded on every core, and synthesis always has its own core.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SpeechActivity:
    """Counts the syntheses in progress (thread-safe; read without blocking)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0

    @property
    def busy(self) -> bool:
        return self._running > 0

    @contextmanager
    def synthesizing(self) -> Iterator[None]:
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1


speech_activity = SpeechActivity()
"""The backend process's one record: its speech synthesis and its language model share the same cores."""
