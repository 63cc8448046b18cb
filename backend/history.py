"""A session's link to the conversation store: which conversation is current, and recording turns.

The question is committed when it is asked; the reply row is created empty
(``streaming``), rewritten at most every ``CHECKPOINT_S`` while the text streams,
and written once more with its final status and timings when the turn ends. A
process killed mid-reply therefore leaves the reply as far as it was checkpointed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from backend.protocol import (
    MAX_TEXT_FRAME_BYTES,
    AudioFrame,
    ConversationList,
    Message,
    StoredMessage,
    TextDelta,
    Timings,
    TurnStatus,
)
from backend.store import ConversationStore, title_from
from backend.turn import TurnOutput

log = logging.getLogger("parley.history")

CHECKPOINT_S: Final = 0.5
LIST_LIMIT: Final = 200
FRAME_BUDGET: Final = MAX_TEXT_FRAME_BYTES - 4096
"""Bytes a batch of records may use in one frame, leaving room for the message around it."""


class ContextSink(Protocol):
    """What a session's LLM context must offer to be rebuilt from the store."""

    def load(self, pairs: Sequence[tuple[str, str]]) -> None: ...

    def reset(self) -> None: ...


def context_pairs(messages: Sequence[StoredMessage]) -> list[tuple[str, str]]:
    """The (question, reply) pairs the LLM should see, oldest first; replies without text are left out."""
    pairs: list[tuple[str, str]] = []
    question: str | None = None
    for message in messages:
        if message.role == "user":
            question = message.text
        elif question is not None:
            if message.text.strip():
                pairs.append((question, message.text))
            question = None
    return pairs


class RecordingOutput:
    """Passes a turn's output on, and checkpoints the reply text into the store as it streams."""

    def __init__(
        self,
        out: TurnOutput,
        store: ConversationStore,
        turn_id: int,
        reply_id: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._out = out
        self._store = store
        self.turn_id = turn_id
        self.reply_id = reply_id
        self._clock = clock
        self._pieces: list[str] = []
        self._last_checkpoint = clock()
        self._finished = False

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    async def send(self, message: Message) -> None:
        if isinstance(message, TextDelta) and message.turn_id == self.turn_id and not self._finished:
            self._pieces.append(message.text)
            now = self._clock()
            if now - self._last_checkpoint >= CHECKPOINT_S:
                self._last_checkpoint = now
                self._store.submit_reply(self.reply_id, self.text, "streaming")
        await self._out.send(message)

    async def send_audio(self, frame: AudioFrame) -> None:
        await self._out.send_audio(frame)

    def finish(self, text: str, status: TurnStatus, timings: Timings) -> None:
        """Queues the final write of the reply (once); returns at once."""
        if self._finished:
            return
        self._finished = True
        self._store.submit_reply(self.reply_id, text, status, timings)


class SessionHistory:
    """The current conversation of one session, kept in the store."""

    def __init__(self, store: ConversationStore, context: ContextSink) -> None:
        self.store = store
        self._context = context
        self.current_id: int | None = None

    async def begin_turn(
        self, turn_id: int, question: str, out: TurnOutput, *, regenerate: bool = False
    ) -> RecordingOutput:
        """Stores the question (unless regenerating) and an empty reply; returns its recorder.

        Without a current conversation (or when it was deleted), a new one is created,
        titled from the question; ``ListConversations`` then tells its id.
        """
        if self.current_id is None or await self.store.conversation(self.current_id) is None:
            info = await self.store.create_conversation(title_from(question))
            self.current_id = info.conversation_id
            self._context.reset()
        if not regenerate:
            await self.store.add_message(self.current_id, "user", question)
        reply_id = await self.store.add_message(self.current_id, "assistant", "", "streaming")
        return RecordingOutput(out, self.store, turn_id, reply_id)

    def new(self) -> None:
        """Leaves the current conversation; the next question starts a new one."""
        self.current_id = None
        self._context.reset()

    async def open(self, conversation_id: int) -> list[StoredMessage] | None:
        """Makes a stored conversation current and rebuilds the LLM context; None if there is none."""
        if await self.store.conversation(conversation_id) is None:
            return None
        await self.store.flush()  # replies still being written are part of it
        messages = await self.store.messages(conversation_id)
        self.current_id = conversation_id
        self._context.load(context_pairs(messages))
        return messages

    async def take_back_last_reply(self) -> str | None:
        """Deletes the last reply of the current conversation and returns its question (None if none)."""
        if self.current_id is None:
            return None
        await self.store.flush()
        messages = await self.store.messages(self.current_id)
        if messages and messages[-1].role == "assistant":
            await self.store.delete_message(messages[-1].message_id)
            messages = messages[:-1]
        if not messages or messages[-1].role != "user":
            return None
        self._context.load(context_pairs(messages[:-1]))
        return messages[-1].text

    async def conversation_list(self) -> ConversationList:
        """The newest conversations, with this session's current one."""
        conversations, total = await self.store.list_conversations(LIST_LIMIT)
        listing = ConversationList(conversations=tuple(conversations), current_id=self.current_id, total=total)
        while listing.conversations and len(listing.to_wire().encode()) > FRAME_BUDGET:
            kept = listing.conversations[: len(listing.conversations) * 3 // 4]  # the oldest are left out
            listing = ConversationList(conversations=kept, current_id=self.current_id, total=total)
        return listing
