"""A stored conversation as Markdown: a title, then each question and reply with its time.

The person's text is quoted as written (it is not Markdown); replies are Markdown
already and are kept as they are. A reply that did not complete says so.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from backend.protocol import ConversationInfo, StoredMessage

_NOTES: Final = {
    "cancelled": "The reply was stopped here.",
    "interrupted": "The reply was interrupted here.",
    "error": "The reply ended with an error.",
    "incomplete": "The reply was cut short (the backend stopped).",
    "streaming": "The reply was still being written.",
}


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _quoted(text: str) -> str:
    lines = text.strip().splitlines() or [""]
    return "\n".join(f"> {line}".rstrip() for line in lines)


def to_markdown(info: ConversationInfo, messages: Sequence[StoredMessage]) -> str:
    """The whole conversation as one Markdown document."""
    out = [f"# {info.title}", "", f"*Parley conversation, started {_when(info.created_at)}.*", ""]
    for message in messages:
        if message.role == "user":
            out += [f"## You ({_when(message.created_at)})", "", _quoted(message.text), ""]
            continue
        out += [f"## Parley ({_when(message.created_at)})", ""]
        if message.text.strip():
            out += [message.text.strip(), ""]
        note = _NOTES.get(message.status)
        if note:
            out += [f"*{note}*", ""]
    return "\n".join(out).rstrip() + "\n"


def pieces(text: str, size: int) -> list[str]:
    """``text`` cut into pieces of at most ``size`` characters (at least one piece)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
