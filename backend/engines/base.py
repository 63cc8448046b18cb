"""The small interfaces every engine implements, and the errors they raise.

Engines are async: blocking model code runs in a worker thread owned by the
engine, and every stream stops promptly when its consumer is cancelled.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

Role: TypeAlias = Literal["system", "user", "assistant"]
Pcm16: TypeAlias = npt.NDArray[np.int16]
ProgressCallback: TypeAlias = Callable[[str, float | None], None]
"""Called with a human-readable step and a fraction 0..1 (None when unknown)."""


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


class EngineError(RuntimeError):
    """A provider failed in a way the person should hear about.

    ``user_message`` is safe to show (never contains secrets); ``retry_after_s`` is
    set when the provider asked us to wait.
    """

    def __init__(self, user_message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.retry_after_s = retry_after_s


class LLMEngine(Protocol):
    """Streams a chat reply token by token."""

    @property
    def name(self) -> str:
        """A short label for the status line, e.g. ``qwen2.5-coder-1.5b (embedded)``."""
        ...

    async def load(self, progress: ProgressCallback) -> None:
        """Prepares the model (may take seconds); raises ``EngineError`` if it cannot."""
        ...

    def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        """Yields text pieces of the reply as they are generated.

        Raises ``EngineError`` on provider failures. When the consumer stops iterating
        (``aclose``) or is cancelled, generation stops within one token.
        """
        ...

    async def aclose(self) -> None:
        """Releases the model; idempotent."""
        ...


class TTSEngine(Protocol):
    """Turns one segment of text into 16-bit mono PCM, streamed in chunks."""

    @property
    def name(self) -> str: ...

    @property
    def sample_rate(self) -> int: ...

    async def load(self, progress: ProgressCallback) -> None: ...

    def synthesize(self, text: str) -> AsyncGenerator[Pcm16, None]:
        """Yields PCM chunks (int16, mono, ``sample_rate``) for ``text``.

        Raises ``EngineError`` on provider failures; stops promptly when cancelled.
        """
        ...

    async def aclose(self) -> None: ...
