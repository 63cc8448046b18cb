"""The per-connection rate limit (issue 6), on a clock the test moves by hand."""

from __future__ import annotations

from backend.limits import ConnectionLimits
from backend.rate_limit import RateLimiter, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


LIMITS = ConnectionLimits(messages_per_s=10, burst=5, flood_drops=20, flood_window_s=10.0, warn_interval_s=1.0)


def test_a_burst_passes_then_the_excess_is_dropped_with_one_warning_per_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(LIMITS, clock)
    assert [limiter.check() for _ in range(5)] == [Verdict.ALLOW] * 5
    assert limiter.check() is Verdict.DROP_AND_WARN
    assert [limiter.check() for _ in range(3)] == [Verdict.DROP] * 3
    clock.now += 1.0  # ten more frames' worth; and the warning may come again
    assert [limiter.check() for _ in range(5)] == [Verdict.ALLOW] * 5  # the bucket holds 5 at most
    assert limiter.check() is Verdict.DROP_AND_WARN
    assert limiter.dropped_total == 5 and not limiter.flooded


def test_a_steady_client_within_the_rate_is_never_dropped() -> None:
    clock = Clock()
    limiter = RateLimiter(LIMITS, clock)
    for _ in range(1000):
        clock.now += 0.1
        assert limiter.check() is Verdict.ALLOW


def test_a_sustained_flood_closes_once_and_then_everything_is_dropped() -> None:
    clock = Clock()
    limiter = RateLimiter(LIMITS, clock)
    verdicts = [limiter.check() for _ in range(5 + 21)]
    assert verdicts[-1] is Verdict.CLOSE and Verdict.CLOSE not in verdicts[:-1]
    assert limiter.flooded
    clock.now += 100.0
    assert limiter.check() is Verdict.DROP  # a closed connection handles nothing more


def test_drops_drain_away_when_the_client_slows_down() -> None:
    clock = Clock()
    limiter = RateLimiter(LIMITS, clock)
    for _ in range(5 + 15):  # 15 drops: under the flood bound
        limiter.check()
    clock.now += 10.0  # the drop meter drains (20 per 10 s)
    for _ in range(5 + 15):
        assert limiter.check() is not Verdict.CLOSE
