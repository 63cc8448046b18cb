"""Keeps secrets out of the logs (issue 6): a formatter that blanks them in the finished line.

The whole formatted record is scrubbed (message, arguments, tracebacks): known
secrets (the access token, API keys) wherever they appear, and anything in the
places a secret travels in (JSON ``token``/``api_key``/``session_id`` fields,
``Authorization: Bearer`` values), also secrets we do not know, such as a wrong
token someone tried. Libraries that dump raw frames at DEBUG are held at INFO.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Final

MIN_SECRET_CHARS: Final = 4
MASK: Final = "***"
CHATTY_LOGGERS: Final = ("websockets", "httpcore", "httpcore2", "hpack")
"""They log raw frames and headers at DEBUG (a frame dump is cut mid-token, beyond exact matching)."""

_FIELDS = re.compile(r'("(?:token|api_key|session_id)"\s*:\s*")(?:[^"\\]|\\.)*("?)', re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[^\s'\"]+", re.IGNORECASE)


class RedactingFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose output never contains a known secret or a secret-carrying field."""

    def __init__(self, fmt: str | None = None, secrets: Iterable[str] = ()) -> None:
        super().__init__(fmt)
        self._secrets: list[str] = []
        self.add_secrets(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        known = set(self._secrets) | {s for s in secrets if len(s) >= MIN_SECRET_CHARS}
        self._secrets = sorted(known, key=len, reverse=True)  # a longer secret first: it may hold a shorter one

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _FIELDS.sub(rf"\g<1>{MASK}\g<2>", text)
        return _BEARER.sub(rf"\g<1>{MASK}", text)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


def install(secrets: Iterable[str], fmt: str) -> RedactingFormatter:
    """Puts a redacting formatter on every handler of the root logger; holds chatty libraries at INFO."""
    formatter = RedactingFormatter(fmt, secrets)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)
    return formatter


def protect(secrets: Iterable[str]) -> None:
    """Adds secrets learnt later (API keys from the settings) to the redacting formatters of the root logger."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, RedactingFormatter):
            handler.formatter.add_secrets(secrets)
