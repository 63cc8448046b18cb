"""Word error rate: how far a transcript is from what was said."""

from __future__ import annotations

import re
from collections.abc import Sequence

_NOT_WORD = re.compile(r"[^a-z0-9' ]")


def words(text: str) -> list[str]:
    """Lower-case words without punctuation ("Moon's" stays one word)."""
    return _NOT_WORD.sub(" ", text.lower().replace("-", " ")).split()


def word_errors(reference: str, hypothesis: str) -> int:
    """Substitutions, insertions and deletions turning ``reference`` into ``hypothesis``."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        previous, row[0] = row[:], i
        for j, other in enumerate(hyp, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (word != other))
    return row[len(hyp)]


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Word errors over all pairs divided by the number of reference words."""
    errors = sum(word_errors(r, h) for r, h in zip(references, hypotheses, strict=True))
    return errors / max(1, sum(len(words(r)) for r in references))
