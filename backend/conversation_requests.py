"""Answers a session's conversation requests: list, new, open, rename, delete, restore, search, export.

Anything that could outgrow one text frame (a conversation's messages, an export,
search results) is sent in batches that each fit, so the client's frame limit
holds however long a conversation grows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Final

from backend.export import pieces, to_markdown
from backend.history import FRAME_BUDGET, SessionHistory
from backend.protocol import (
    ERR_NOT_FOUND,
    ERR_STORE,
    ConversationExport,
    ConversationMessages,
    ConversationOpened,
    DeleteConversation,
    Error,
    ExportConversation,
    ListConversations,
    Message,
    NewConversation,
    OpenConversation,
    RenameConversation,
    RestoreConversation,
    SearchConversations,
    SearchResults,
    StoredMessage,
)
from backend.session import Session
from backend.store import StoreError
from backend.turn import TurnOutput

log = logging.getLogger("parley.conversations")

REQUESTS: Final = (
    ListConversations,
    NewConversation,
    OpenConversation,
    RenameConversation,
    DeleteConversation,
    RestoreConversation,
    SearchConversations,
    ExportConversation,
)
EXPORT_PIECE_CHARS: Final = 8000  # at most 6 bytes a character once escaped: well within a frame
MAX_SEARCH_HITS: Final = 100
_CUT_MARK: Final = "\n\n[…the rest of this message is too long to show here; export the conversation to read it]"


async def handle_request(message: Message, session: Session, out: TurnOutput) -> None:
    """Answers one of ``REQUESTS``; a store failure becomes an ``Error`` and the connection goes on."""
    history = session.history
    if history is None:
        await out.send(Error(code=ERR_STORE, message="This backend does not store conversations."))
        return
    try:
        await _answer(message, session, history, out)
    except StoreError as exc:
        log.error("%s failed: %s", message.TYPE, exc)
        await out.send(Error(code=ERR_STORE, message=str(exc)))


async def _answer(message: Message, session: Session, history: SessionHistory, out: TurnOutput) -> None:
    store = history.store
    match message:
        case ListConversations():
            pass
        case NewConversation():
            await session.stop(reason="cancelled")
            history.new()
            await out.send(ConversationOpened(conversation_id=None))
        case OpenConversation():
            await session.stop(reason="cancelled")
            messages = await history.open(message.conversation_id)
            info = await store.conversation(message.conversation_id)
            if messages is None or info is None:
                await _not_found(out, message.conversation_id)
                return
            await out.send(
                ConversationOpened(
                    conversation_id=info.conversation_id, title=info.title, message_count=len(messages)
                )
            )
            batches = message_batches(messages)
            for i, batch in enumerate(batches):
                last = i == len(batches) - 1
                await out.send(ConversationMessages(conversation_id=info.conversation_id, messages=batch, last=last))
        case RenameConversation():
            if not await store.rename(message.conversation_id, message.title):
                await _not_found(out, message.conversation_id)
                return
        case DeleteConversation():
            if not await store.delete(message.conversation_id):
                await _not_found(out, message.conversation_id)
                return
            if history.current_id == message.conversation_id:
                await session.stop(reason="cancelled")
                history.new()
                await out.send(ConversationOpened(conversation_id=None))
        case RestoreConversation():
            if not await store.restore(message.conversation_id):
                await _not_found(out, message.conversation_id)
                return
        case SearchConversations():
            hits = await store.search(message.query, max(1, min(message.limit, MAX_SEARCH_HITS)))
            while hits and len(SearchResults(query=message.query, hits=tuple(hits)).to_wire().encode()) > FRAME_BUDGET:
                hits = hits[: len(hits) * 3 // 4]
            await out.send(SearchResults(query=message.query, hits=tuple(hits)))
            return
        case ExportConversation():
            await _export(message.conversation_id, history, out)
            return
        case _:  # pragma: no cover - the server only passes REQUESTS
            return
    await out.send(await history.conversation_list())


async def _export(conversation_id: int, history: SessionHistory, out: TurnOutput) -> None:
    info = await history.store.conversation(conversation_id)
    if info is None:
        await _not_found(out, conversation_id)
        return
    await history.store.flush()
    markdown = to_markdown(info, await history.store.messages(conversation_id))
    parts = pieces(markdown, EXPORT_PIECE_CHARS)
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        await out.send(ConversationExport(conversation_id=conversation_id, title=info.title, markdown=part, last=last))


async def _not_found(out: TurnOutput, conversation_id: int) -> None:
    await out.send(Error(code=ERR_NOT_FOUND, message=f"There is no conversation {conversation_id} (it was deleted?)."))


def _size(message: StoredMessage) -> int:
    return len(json.dumps(asdict(message), ensure_ascii=False, separators=(",", ":")).encode()) + 1


def _shortened(message: StoredMessage) -> StoredMessage:
    """The message with its text cut so that it fits a frame on its own."""
    text = message.text
    while text and _size(replace(message, text=text + _CUT_MARK)) > FRAME_BUDGET:
        text = text[: len(text) * 3 // 4]
    return replace(message, text=text + _CUT_MARK)


def message_batches(messages: Sequence[StoredMessage]) -> list[tuple[StoredMessage, ...]]:
    """Groups messages, in order, into batches that each fit one frame (at least one batch)."""
    batches: list[tuple[StoredMessage, ...]] = []
    batch: list[StoredMessage] = []
    used = 0
    for message in messages:
        size = _size(message)
        if size > FRAME_BUDGET:
            message = _shortened(message)
            size = _size(message)
        if batch and used + size > FRAME_BUDGET:
            batches.append(tuple(batch))
            batch, used = [], 0
        batch.append(message)
        used += size
    batches.append(tuple(batch))
    return batches
