"""Splits a streamed markdown reply into settled text (rendered once) and a short live tail.

Only the live tail is re-rendered on each token, so the cost of a token does not
grow with the reply. A paragraph settles at a blank line outside a code block; a
tail longer than ``limit`` settles at its last line break (or sentence end, or
space), so even a reply without blank lines keeps the tail short. A code block cut
in two is re-opened and closed around each piece, so both render as code. When the
reply ends, the whole text is rendered once more so the pieces join up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

LIVE_LIMIT: Final = 800
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class StreamUpdate:
    settled: str  # markdown to render once and keep ("" when nothing settled)
    live: str  # markdown of the unfinished tail, to render in place of the previous tail


class LiveMarkdown:
    """Accumulates a reply's text and says what to (re-)render after each delta."""

    def __init__(self, limit: int = LIVE_LIMIT) -> None:
        self._limit = limit
        self._parts: list[str] = []
        self._live = ""
        self._fence = ""  # the opening fence line when the live tail starts inside a code block

    @property
    def text(self) -> str:
        """Everything appended so far."""
        return "".join(self._parts)

    @property
    def live_text(self) -> str:
        return self._live

    def append(self, delta: str) -> StreamUpdate:
        self._parts.append(delta)
        self._live += delta
        cut = self._settle_point()
        settled = ""
        if cut > 0:
            head, self._live = self._live[:cut], self._live[cut:]
            fence_after = _fence_after(head, self._fence)
            settled = _wrap(head, self._fence, fence_after)
            self._fence = fence_after
        return StreamUpdate(settled=settled, live=_wrap(self._live, self._fence, ""))

    def _settle_point(self) -> int:
        """Where the live tail can be cut: after its last blank line outside code, or by length."""
        live = self._live
        fence = self._fence
        last_blank_end = 0
        pos = 0
        while (newline := live.find("\n", pos)) >= 0:
            line = live[pos:newline]
            if _FENCE.match(line):
                fence = "" if fence else line.strip()
            elif not fence and not line.strip() and pos > 0:
                last_blank_end = newline + 1
            pos = newline + 1
        if last_blank_end or len(live) <= self._limit:
            return last_blank_end
        for mark in ("\n", ". ", " "):
            at = live.rfind(mark, 0, self._limit)
            if at > 0:
                return at + len(mark)
        return self._limit


def _fence_after(text: str, fence: str) -> str:
    """The open fence line at the end of ``text`` (which starts with ``fence`` open), or ""."""
    for line in text.split("\n")[:-1]:  # complete lines only
        if _FENCE.match(line):
            fence = "" if fence else line.strip()
    return fence


def _wrap(text: str, open_fence: str, close_fence: str) -> str:
    """Re-opens the code block ``text`` starts inside of, and closes the one it ends inside of."""
    if not text:
        return ""
    opener = f"{open_fence}\n" if open_fence else ""
    closer = ""
    if close_fence:
        match = _FENCE.match(close_fence)
        closer = ("" if text.endswith("\n") else "\n") + (match.group(1) if match else "```")
    return f"{opener}{text}{closer}"


def closed_fences(markdown: str) -> str:
    """``markdown`` with a closing fence added if it ends inside a code block."""
    fence = _fence_after(markdown + "\n", "")
    return _wrap(markdown, "", fence) if fence else markdown
