"""A per-connection limit on incoming frames: a token bucket, and a flood meter for what it drops.

``check()`` is called once per frame and says what to do with it. Frames within the
sustained rate (plus a burst) pass. A frame over the limit is dropped; the first drop
of each ``warn_interval_s`` asks for an ``Error`` reply, the others drop silently. The
drops fill a second bucket that drains at ``flood_drops / flood_window_s`` per second:
when it overflows, the client is flooding and the connection should be closed.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from backend.limits import ConnectionLimits


class Verdict(enum.Enum):
    ALLOW = "allow"
    DROP = "drop"
    DROP_AND_WARN = "drop_and_warn"
    CLOSE = "close"


class RateLimiter:
    """The limit of one connection; not thread-safe (one connection, one event loop)."""

    def __init__(self, limits: ConnectionLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = max(limits.messages_per_s, 0.001)
        self._burst = float(max(1, limits.burst))
        self._flood = float(max(1, limits.flood_drops))
        self._drain = self._flood / max(limits.flood_window_s, 0.001)
        self._warn_interval = limits.warn_interval_s
        self._clock = clock
        self._tokens = self._burst
        self._dropped = 0.0
        self._last = clock()
        self._last_warning: float | None = None
        self.dropped_total = 0
        self.flooded = False

    def check(self) -> Verdict:
        """Takes one frame's worth from the bucket and says what to do with the frame.

        ``CLOSE`` comes once; after it every frame is dropped.
        """
        if self.flooded:
            return Verdict.DROP
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._dropped = max(0.0, self._dropped - elapsed * self._drain)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return Verdict.ALLOW
        self._dropped += 1.0
        self.dropped_total += 1
        if self._dropped > self._flood:
            self.flooded = True
            return Verdict.CLOSE
        if self._last_warning is None or now - self._last_warning >= self._warn_interval:
            self._last_warning = now
            return Verdict.DROP_AND_WARN
        return Verdict.DROP
