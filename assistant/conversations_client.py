"""The app's side of stored conversations: requests to the backend, answers as Qt signals.

``BackendClient`` owns one and passes it the conversation messages that arrive.
Methods never block: a request is queued on the connection, or refused with
``AskRefused`` (not connected) and a clear message. After a reconnect (for
instance when the embedded backend was restarted) the open conversation is
opened again, so the chat shows what the backend stored, cut replies included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from assistant.net.backend_connection import AskRefused
from backend.protocol import (
    ConversationExport,
    ConversationInfo,
    ConversationList,
    ConversationMessages,
    ConversationOpened,
    DeleteConversation,
    ExportConversation,
    ListConversations,
    Message,
    NewConversation,
    Notice,
    OpenConversation,
    RenameConversation,
    RestoreConversation,
    SearchConversations,
    SearchResults,
    StoredMessage,
)

log = logging.getLogger("parley.app.conversations")

SendRequest = Callable[[Message], None]


class ConversationsClient(QObject):
    """Signals: ``listed(list[ConversationInfo], current_id)``, ``opened(current_id, title)``,
    ``loaded(conversation_id, list[StoredMessage])`` once all of an opened conversation's
    messages arrived, ``search_results(query, list[SearchHit])``,
    ``exported(conversation_id, title, markdown)`` and ``notice(code, text)``.
    """

    listed = Signal(object, object)
    opened = Signal(object, str)
    loaded = Signal(int, object)
    search_results = Signal(str, object)
    exported = Signal(int, str, str)
    notice = Signal(str, str)

    def __init__(self, send: SendRequest, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._send = send
        self.current_id: int | None = None
        self.current_title = ""
        self.conversations: list[ConversationInfo] = []
        self.messages: list[StoredMessage] = []
        self.last_deleted: ConversationInfo | None = None
        self._loading: list[StoredMessage] = []
        self._export: dict[int, list[str]] = {}

    # ---- requests (raise AskRefused when not connected) ------------------------------

    def refresh(self) -> None:
        self._send(ListConversations())

    def new(self) -> None:
        self._send(NewConversation())

    def open(self, conversation_id: int) -> None:
        self._send(OpenConversation(conversation_id=conversation_id))

    def rename(self, conversation_id: int, title: str) -> None:
        self._send(RenameConversation(conversation_id=conversation_id, title=title))

    def delete(self, conversation_id: int) -> None:
        self.last_deleted = self.info(conversation_id)
        self._send(DeleteConversation(conversation_id=conversation_id))

    def restore(self, conversation_id: int) -> None:
        self._send(RestoreConversation(conversation_id=conversation_id))

    def search(self, query: str) -> None:
        self._send(SearchConversations(query=query))

    def export(self, conversation_id: int) -> None:
        self._export[conversation_id] = []
        self._send(ExportConversation(conversation_id=conversation_id))

    def info(self, conversation_id: int) -> ConversationInfo | None:
        return next((c for c in self.conversations if c.conversation_id == conversation_id), None)

    # ---- from BackendClient ------------------------------------------------------------

    def on_connected(self) -> None:
        """Lists the conversations and re-opens the current one (the backend may be a new process)."""
        try:
            self.refresh()
            if self.current_id is not None:
                self.open(self.current_id)
        except AskRefused:  # the link dropped again at once; the next connect retries
            log.debug("could not refresh the conversations after connecting", exc_info=True)

    def on_turn_started(self) -> None:
        """A first question just created a conversation: list it now, not only when the reply ends."""
        if self.current_id is None:
            self.on_turn_finished()

    def on_turn_finished(self) -> None:
        """A turn ended: the list order changed, and a first question created a conversation."""
        try:
            self.refresh()
        except AskRefused:
            log.debug("could not refresh the conversations after a turn", exc_info=True)

    def on_message(self, message: Message) -> None:
        match message:
            case ConversationList():
                self.conversations = list(message.conversations)
                self.current_id = message.current_id
                current = self.info(message.current_id) if message.current_id is not None else None
                if current is not None:
                    self.current_title = current.title
                self.listed.emit(self.conversations, self.current_id)
            case ConversationOpened():
                self.current_id = message.conversation_id
                self.current_title = message.title
                self._loading = []
                self.messages = []
                self.opened.emit(message.conversation_id, message.title)
                if message.conversation_id is None:
                    self.loaded.emit(-1, [])
            case ConversationMessages() if message.conversation_id == self.current_id:
                self._loading += message.messages
                if message.last:
                    self.messages, self._loading = self._loading, []
                    self.loaded.emit(message.conversation_id, list(self.messages))
            case SearchResults():
                self.search_results.emit(message.query, list(message.hits))
            case ConversationExport():
                parts = self._export.setdefault(message.conversation_id, [])
                parts.append(message.markdown)
                if message.last:
                    markdown = "".join(self._export.pop(message.conversation_id))
                    self.exported.emit(message.conversation_id, message.title, markdown)
            case Notice():
                self.notice.emit(message.code, message.message)
            case _:
                pass
