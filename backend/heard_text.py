"""How much of a spoken reply the person heard, as a cut of the reply text.

A turn records, for each segment it speaks, the span of the raw reply text the
segment covers and the span of the turn's audio (in seconds) it became. When the
person barges in after hearing ``heard_s`` seconds, the reply is cut after the last
segment heard in full plus the proportional share of the words of the segment that
was playing (rounded down: a word half heard is not kept). Pure logic, no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

_WORD = re.compile(r"\S+")


@dataclass
class SpokenSpan:
    """One spoken segment: the raw reply text it covers and the audio it became (once synthesized)."""

    text_start: int
    text_end: int
    audio_start_s: float | None = None
    audio_end_s: float | None = None


def split_text_range(start: int, end: int, segments: Sequence[str]) -> list[tuple[int, int]]:
    """Shares the raw text ``[start, end)`` between ``segments`` in proportion to their spoken length.

    Used when one chunk of the reply completed several segments at once.
    """
    if not segments:
        return []
    weights = [max(1, len(s)) for s in segments]
    total = sum(weights)
    spans: list[tuple[int, int]] = []
    position = start
    covered = 0
    for i, weight in enumerate(weights):
        covered += weight
        stop = end if i == len(weights) - 1 else start + (end - start) * covered // total
        spans.append((position, max(position, stop)))
        position = max(position, stop)
    return spans


def heard_cut(reply: str, spans: Sequence[SpokenSpan], heard_s: float) -> str:
    """The part of ``reply`` the person heard after ``heard_s`` seconds of its audio.

    Segments never synthesized were never heard; with no audio at all nothing was heard.
    """
    cut = 0
    for span in spans:
        start, end = span.audio_start_s, span.audio_end_s
        if start is None or end is None:
            break
        if heard_s >= end:
            cut = span.text_end
            continue
        if heard_s > start and end > start:
            fraction = (heard_s - start) / (end - start)
            words = list(_WORD.finditer(reply, span.text_start, span.text_end))
            keep = math.floor(fraction * len(words))
            if keep > 0:
                cut = words[keep - 1].end()
        break
    return reply[: min(cut, len(reply))].rstrip()
