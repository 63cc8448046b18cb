"""Small statistics for benchmark figures."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by linear interpolation; None for no values."""
    data = sorted(values)
    if not data:
        return None
    pos = (len(data) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return data[low] + (data[high] - data[low]) * (pos - low)


def summary(values: Sequence[float]) -> dict[str, float | None]:
    """``{"median": ..., "p90": ...}`` rounded to milliseconds."""

    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 3)

    return {"median": r(percentile(values, 50)), "p90": r(percentile(values, 90))}


def ms(value: float | None) -> str:
    """Seconds as a fixed-width milliseconds label for progress lines; dashes for no value."""
    return "   -   " if value is None else f"{value * 1000:5.0f}ms"
