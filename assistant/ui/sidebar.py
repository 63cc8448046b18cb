"""The conversation list: newest first, with search, new, rename, export and delete (with undo).

It only emits requests (signals) and shows what it is given; the window's
``ConversationController`` talks to the backend.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from backend.protocol import ConversationInfo, SearchHit

SEARCH_DELAY_MS: Final = 250
UNDO_SHOWN_MS: Final = 10_000
REPEAT_S: Final = 0.5
_ID_ROLE: Final = Qt.ItemDataRole.UserRole


def when(timestamp: float, now: float | None = None) -> str:
    """A short date: the time today, the weekday this week, else the date."""
    now = time.time() if now is None else now
    local, today = time.localtime(timestamp), time.localtime(now)
    if local[:3] == today[:3]:
        return time.strftime("%H:%M", local)
    if 0 <= now - timestamp < 6 * 86400:
        return time.strftime("%a %H:%M", local)
    return time.strftime("%Y-%m-%d", local)


class _UndoBar(QFrame):
    """"Deleted …  [Undo]", shown for a few seconds after a delete."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.button = QPushButton("Undo", self)
        self.button.setAccessibleName("Undo delete")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.hide)
        self.hide()


class ConversationSidebar(QWidget):
    """Signals carry conversation ids; ``search_requested("")`` means the search was cleared."""

    new_requested = Signal()
    open_requested = Signal(int)
    rename_requested = Signal(int, str)
    delete_requested = Signal(int)
    restore_requested = Signal(int)
    export_requested = Signal(int)
    search_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Conversations")
        self.new_button = QToolButton(self)
        self.new_button.setText("New conversation")
        self.new_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.new_button.setAccessibleName("New conversation")
        self.new_button.clicked.connect(self.new_requested)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search conversations…")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search conversations")
        self.list = QListWidget(self)
        self.list.setAccessibleName("Conversation list")
        self.list.setSpacing(3)  # (no style sheet: it would stop the list from following the palette)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        self.list.itemActivated.connect(self._activated)
        self.list.itemClicked.connect(self._activated)
        self.list.itemChanged.connect(self._renamed)
        self.empty = QLabel("No conversations yet. Ask something to start one.", self)
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.undo = _UndoBar(self)
        self.undo.button.clicked.connect(self._undo)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self._search_now)
        self.search.textChanged.connect(lambda _text: self._search_timer.start())
        delete_key = QKeySequence(QKeySequence.StandardKey.Delete)
        for key, slot in ((delete_key, self._delete_selected), (QKeySequence(Qt.Key.Key_F2), self._rename_selected)):
            shortcut = QShortcut(key, self.list)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(slot)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 0, 10)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty)
        layout.addWidget(self.undo)
        self._conversations: list[ConversationInfo] = []
        self._current_id: int | None = None
        self._deleted: tuple[int, str] | None = None
        self._showing_results = False
        self._updating = False
        self._last_request: int | None = None
        self._last_request_at = 0.0

    # ---- what is shown ------------------------------------------------------------------

    @property
    def showing_results(self) -> bool:
        return self._showing_results

    def set_conversations(self, conversations: Sequence[ConversationInfo], current_id: int | None) -> None:
        """Shows the list (newest first, as given), the current one selected; kept while searching."""
        self._conversations = list(conversations)
        self._current_id = current_id
        if not self._showing_results:
            self._show_list()

    def show_results(self, query: str, hits: Sequence[SearchHit]) -> None:
        """Shows search hits (for the query still typed; late answers are ignored)."""
        if query != self.search.text().strip() or not query:
            return
        self._showing_results = True
        who = {"user": "You", "assistant": "Parley"}
        rows = [(hit.conversation_id, f"{hit.title}\n{hit.snippet}", f"{who[hit.role]}: {hit.snippet}") for hit in hits]
        self._fill(rows, selected=None, editable=False)
        self.empty.setText(f"Nothing found for “{query}”." if not hits else "")
        self.empty.setVisible(not hits)

    def item_for(self, conversation_id: int) -> QListWidgetItem | None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(_ID_ROLE) == conversation_id:
                return item
        return None

    def titles(self) -> list[str]:
        return [self.list.item(row).text() for row in range(self.list.count())]

    def _show_list(self) -> None:
        self._showing_results = False
        rows = [
            (c.conversation_id, c.title, f"{c.title}\n{when(c.updated_at)} · {c.message_count} messages")
            for c in self._conversations
        ]
        self._fill(rows, selected=self._current_id, editable=True)
        self.empty.setText("No conversations yet. Ask something to start one.")
        self.empty.setVisible(not rows)

    def _fill(self, rows: list[tuple[int, str, str]], *, selected: int | None, editable: bool) -> None:
        self._updating = True
        try:
            self.list.clear()
            for conversation_id, text, tooltip in rows:
                item = QListWidgetItem(text, self.list)
                item.setData(_ID_ROLE, conversation_id)
                item.setToolTip(tooltip)
                if editable:
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                if conversation_id == selected:
                    self.list.setCurrentItem(item)
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
        finally:
            self._updating = False

    # ---- actions --------------------------------------------------------------------------

    def start_rename(self, conversation_id: int) -> None:
        item = self.item_for(conversation_id)
        if item is not None and not self._showing_results:
            self.list.editItem(item)

    def delete(self, conversation_id: int) -> None:
        """Asks for the delete and offers Undo for a few seconds."""
        title = next((c.title for c in self._conversations if c.conversation_id == conversation_id), "")
        self._deleted = (conversation_id, title)
        self.delete_requested.emit(conversation_id)
        self.undo.label.setText(f"Deleted “{title}”." if title else "Conversation deleted.")
        self.undo.show()
        self.undo.timer.start(UNDO_SHOWN_MS)

    def _undo(self) -> None:
        if self._deleted is not None:
            self.restore_requested.emit(self._deleted[0])
            self._deleted = None
        self.undo.hide()

    def _activated(self, item: QListWidgetItem) -> None:
        """A click or Enter on an item; the click and the activation of one gesture open it once."""
        conversation_id = item.data(_ID_ROLE)
        if not isinstance(conversation_id, int):
            return
        now = time.monotonic()
        if self._last_request == conversation_id and now - self._last_request_at < REPEAT_S:
            return
        if conversation_id != self._current_id or self._showing_results:
            self._last_request, self._last_request_at = conversation_id, now
            self.open_requested.emit(conversation_id)

    def _renamed(self, item: QListWidgetItem) -> None:
        if self._updating or self._showing_results:
            return
        conversation_id = item.data(_ID_ROLE)
        old = next((c.title for c in self._conversations if c.conversation_id == conversation_id), None)
        title = " ".join(item.text().split())
        if not title or old is None:
            self._updating = True
            item.setText(old or "")
            self._updating = False
            return
        if title != old:
            self.rename_requested.emit(int(conversation_id), title)

    def _selected_id(self) -> int | None:
        item = self.list.currentItem()
        value = item.data(_ID_ROLE) if item is not None else None
        return int(value) if isinstance(value, int) else None

    def _delete_selected(self) -> None:
        conversation_id = self._selected_id()
        if conversation_id is not None:
            self.delete(conversation_id)

    def _rename_selected(self) -> None:
        conversation_id = self._selected_id()
        if conversation_id is not None:
            self.start_rename(conversation_id)

    def _search_now(self) -> None:
        query = self.search.text().strip()
        if not query:
            self._show_list()
        self.search_requested.emit(query)

    def _menu(self, at: QPoint) -> None:
        item = self.list.itemAt(at)
        if item is None:
            return
        conversation_id = int(item.data(_ID_ROLE))
        menu = QMenu(self)
        menu.addAction("Open", lambda: self.open_requested.emit(conversation_id))
        if not self._showing_results:
            menu.addAction("Rename", lambda: self.start_rename(conversation_id))
        menu.addAction("Export to Markdown…", lambda: self.export_requested.emit(conversation_id))
        menu.addSeparator()
        menu.addAction("Delete", lambda: self.delete(conversation_id))
        menu.exec(self.list.viewport().mapToGlobal(at))
        menu.deleteLater()
