"""Connects the sidebar and the chat view to the stored conversations of the backend.

Switching or starting a conversation first stops the reply (text and sound) at
once; the backend then rebuilds the model's context from the store. Exports are
written where the person chooses (``choose_export_path``, a file dialog by
default; tests put a function there).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QStandardPaths, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from assistant.backend_client import BackendClient
from assistant.net.backend_connection import AskRefused
from assistant.ui.chat_view import ChatView
from assistant.ui.sidebar import ConversationSidebar

log = logging.getLogger("parley.app.ui")

ExportPathChooser = Callable[[str], Path | None]


def export_file_name(title: str) -> str:
    """A safe file name for a conversation's Markdown export."""
    stem = re.sub(r"[^\w\- ]+", "", title).strip().replace(" ", "-")[:60] or "conversation"
    return f"{stem}.md"


class ConversationController(QObject):
    """``problem(key, text)`` and ``info(key, text)`` go to the window's banner; ``title_changed``
    carries the current conversation's title ("" for a new one)."""

    problem = Signal(str, str)
    info = Signal(str, str)
    title_changed = Signal(str)
    exported = Signal(str)  # the path written

    def __init__(
        self, client: BackendClient, sidebar: ConversationSidebar, chat: ChatView, window: QWidget
    ) -> None:
        super().__init__(window)
        self._client = client
        self._sidebar = sidebar
        self._chat = chat
        self._window = window
        self.choose_export_path: ExportPathChooser = self._ask_export_path
        conversations = client.conversations
        sidebar.new_requested.connect(self.new_conversation)
        sidebar.open_requested.connect(self.open_conversation)
        sidebar.rename_requested.connect(lambda cid, title: self._request(conversations.rename, cid, title))
        sidebar.delete_requested.connect(self._delete)
        sidebar.restore_requested.connect(lambda cid: self._request(conversations.restore, cid))
        sidebar.export_requested.connect(lambda cid: self._request(conversations.export, cid))
        sidebar.search_requested.connect(self._search)
        conversations.listed.connect(self._listed)
        conversations.opened.connect(self._opened)
        conversations.loaded.connect(self._loaded)
        conversations.search_results.connect(sidebar.show_results)
        conversations.exported.connect(self._write_export)
        conversations.notice.connect(lambda code, text: self.info.emit(f"backend-{code}", text))

    @property
    def current_id(self) -> int | None:
        return self._client.conversations.current_id

    def new_conversation(self) -> None:
        """Stops the reply and starts an empty conversation (stored at its first question)."""
        self._client.stop()
        self._request(self._client.conversations.new)

    def open_conversation(self, conversation_id: int) -> None:
        self._client.stop()
        self._request(self._client.conversations.open, conversation_id)

    def export_current(self) -> None:
        if self.current_id is None:
            self.problem.emit("export", "There is nothing to export yet: ask something first.")
            return
        self._request(self._client.conversations.export, self.current_id)

    def _delete(self, conversation_id: int) -> None:
        self._request(self._client.conversations.delete, conversation_id)

    def _search(self, query: str) -> None:
        if query:
            self._request(self._client.conversations.search, query)

    def _request(self, method: Callable[..., None], *args: Any) -> bool:
        try:
            method(*args)
        except AskRefused as exc:
            self.problem.emit("send", str(exc))
            return False
        return True

    # ---- answers ----------------------------------------------------------------------

    def _listed(self, conversations: list[Any], current_id: int | None) -> None:
        self._sidebar.set_conversations(conversations, current_id)
        self.title_changed.emit(self._client.conversations.current_title if current_id is not None else "")

    def _opened(self, conversation_id: int | None, title: str) -> None:
        self._chat.clear_conversation()
        self.title_changed.emit(title)
        self._sidebar.set_conversations(self._client.conversations.conversations, conversation_id)

    def _loaded(self, conversation_id: int, messages: list[Any]) -> None:
        if conversation_id >= 0:
            self._chat.show_conversation(messages)

    def _write_export(self, conversation_id: int, title: str, markdown: str) -> None:
        path = self.choose_export_path(export_file_name(title))
        if path is None:
            return
        try:
            path.write_text(markdown, encoding="utf-8")
        except OSError as exc:
            self.problem.emit("export", f"Could not write {path}: {exc.strerror or exc}.")
            return
        self.info.emit("export", f"Exported “{title}” to {path}.")
        self.exported.emit(str(path))

    def _ask_export_path(self, suggested: str) -> Path | None:
        folder = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
        chosen, _ = QFileDialog.getSaveFileName(
            self._window, "Export conversation", str(Path(folder) / suggested), "Markdown (*.md)"
        )
        return Path(chosen) if chosen else None
