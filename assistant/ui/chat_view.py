"""The conversation: user bubbles, and replies rendered as markdown while they stream.

Each message is a frame of the document. A finished message is never touched
again. The streaming reply is the last frame: its settled paragraphs are rendered
once, and only its short live tail (see ``LiveMarkdown``) is replaced on each
token, with a cursor at the end of the document, so a token costs the same at the
end of a long reply as at its start. When the reply ends it is rendered once more
as a whole.
"""

from __future__ import annotations

import logging
from typing import Final

from PySide6.QtGui import (
    QColor,
    QPalette,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextFrame,
    QTextFrameFormat,
)
from PySide6.QtWidgets import QTextBrowser, QWidget

from assistant.ui.markdown_stream import LiveMarkdown, closed_fences

log = logging.getLogger("parley.app.ui")

_SENTINEL: Final = "\u200b"  # an empty first paragraph: keeps the real first block's format (heading, code)
_PARAGRAPH_SPACING: Final = 10
_ITEM_SPACING: Final = 3
_STATUS_NOTES: Final = {"cancelled": "[stopped]", "interrupted": "[interrupted]", "error": "[error]"}


class ChatView(QTextBrowser):
    """A read-only conversation view with streaming markdown replies."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenExternalLinks(True)
        self.setReadOnly(True)
        self.document().setDocumentMargin(10)
        self._reply_turn: int | None = None
        self._reply_frame: QTextFrame | None = None
        self._live_start = 0
        self._stream = LiveMarkdown()
        self.last_rendered_chars = 0  # markdown characters (re-)rendered by the last append
        self.total_rendered_chars = 0

    # ---- messages ----------------------------------------------------------------

    def add_user_message(self, text: str) -> None:
        """Shows what the person sent, as plain text (never interpreted as markdown)."""
        self._finish_open_reply("cancelled")
        with self._keeping_scroll():
            cursor = self._end_cursor()
            cursor.insertFrame(self._bubble_format(user=True))
            cursor.insertText(text.rstrip(), QTextCharFormat())

    def begin_reply(self, turn_id: int) -> None:
        """Opens an empty reply bubble for ``turn_id`` at the end of the conversation."""
        self._finish_open_reply("cancelled")
        with self._keeping_scroll():
            cursor = self._end_cursor()
            self._reply_frame = cursor.insertFrame(self._bubble_format(user=False))
        self._reply_turn = turn_id
        self._live_start = self._reply_frame.firstPosition()
        self._stream = LiveMarkdown()

    def append_reply(self, turn_id: int, delta: str) -> None:
        """Adds streamed text to the reply of ``turn_id`` (ignored for any other turn)."""
        if turn_id != self._reply_turn or not delta:
            return
        update = self._stream.append(delta)
        with self._keeping_scroll():
            rendered = 0
            if update.settled:
                self._render_live(update.settled)
                rendered += len(update.settled)
                cursor = self._frame_end_cursor()
                cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
                self._live_start = cursor.position()
            self._render_live(update.live)
            rendered += len(update.live)
        self.last_rendered_chars = rendered
        self.total_rendered_chars += rendered

    def finish_reply(self, turn_id: int, status: str, detail: str = "") -> None:
        """Renders the whole reply once and marks it if it did not complete (e.g. "[stopped]")."""
        if turn_id != self._reply_turn or self._reply_frame is None:
            return
        text = self._stream.text
        with self._keeping_scroll():
            self._live_start = self._reply_frame.firstPosition()
            self._render_live(text)
            note = _STATUS_NOTES.get(status, "")
            if note:
                self._add_note(f"{note} {detail}".strip(), first=not text.strip())
        self._reply_turn = None
        self._reply_frame = None

    def reply_text(self) -> str:
        """The raw markdown of the reply being streamed ("" when none)."""
        return self._stream.text if self._reply_turn is not None else ""

    @property
    def streaming_turn(self) -> int | None:
        return self._reply_turn

    # ---- rendering -----------------------------------------------------------------

    def _render_live(self, markdown: str) -> None:
        """Replaces everything from the live start to the end of the reply with ``markdown``."""
        assert self._reply_frame is not None
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._live_start)
        cursor.setPosition(self._reply_frame.lastPosition(), QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        text_list = cursor.currentList()
        if text_list is not None:
            text_list.remove(cursor.block())
        cursor.setBlockFormat(QTextBlockFormat())
        cursor.setCharFormat(QTextCharFormat())
        if not markdown.strip():
            return
        # Plain paragraphs around the markdown take the merges with the surrounding block, so
        # the markdown's own first and last blocks keep their formats (heading, list, code).
        cursor.insertMarkdown(f"{_SENTINEL}\n\n{closed_fences(markdown)}\n\n{_SENTINEL}")
        end = cursor.position()
        self._remove_sentinel(end - 2, end, f"\u2029{_SENTINEL}")
        self._remove_sentinel(self._live_start, self._live_start + 2, f"{_SENTINEL}\u2029")
        self._space_blocks(self._live_start, end - 4)

    def _space_blocks(self, start: int, end: int) -> None:
        """Gives the rendered blocks room below them (Qt's markdown import sets no margins)."""
        document = self.document()
        block = document.findBlock(start)
        last = document.findBlock(max(start, end))
        while block.isValid():
            in_list = block.textList()
            more_items = in_list is not None and block.next().textList() == in_list
            spacing = QTextBlockFormat()
            spacing.setTopMargin(0)
            spacing.setBottomMargin(_ITEM_SPACING if more_items else _PARAGRAPH_SPACING)
            cursor = QTextCursor(block)
            cursor.mergeBlockFormat(spacing)
            if block == last:
                break
            block = block.next()

    def _remove_sentinel(self, start: int, end: int, expected: str) -> None:
        cursor = QTextCursor(self.document())
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        if cursor.selectedText() == expected:
            cursor.removeSelectedText()
        else:  # pragma: no cover - Qt changed how fragments merge; the text is still shown
            log.debug("markdown sentinel not found where expected")

    def _add_note(self, text: str, *, first: bool) -> None:
        cursor = self._frame_end_cursor()
        if not first:
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
        note = QTextCharFormat()
        note.setFontItalic(True)
        note.setForeground(self.palette().color(QPalette.ColorRole.PlaceholderText))
        cursor.insertText(text, note)

    def _finish_open_reply(self, status: str) -> None:
        if self._reply_turn is not None:
            self.finish_reply(self._reply_turn, status)

    def _end_cursor(self) -> QTextCursor:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor

    def _frame_end_cursor(self) -> QTextCursor:
        assert self._reply_frame is not None
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._reply_frame.lastPosition())
        return cursor

    def _bubble_format(self, *, user: bool) -> QTextFrameFormat:
        dark = self.palette().color(QPalette.ColorRole.Base).lightness() < 128
        if user:
            background = QColor("#2b4a6f") if dark else QColor("#dceaff")
        else:
            background = QColor("#33363b") if dark else QColor("#f1f2f4")
        frame = QTextFrameFormat()
        frame.setBackground(background)
        frame.setPadding(10)
        frame.setTopMargin(6)
        frame.setBottomMargin(6)
        frame.setLeftMargin(72 if user else 0)
        frame.setRightMargin(0 if user else 72)
        frame.setBorder(0)
        return frame

    # ---- scrolling -------------------------------------------------------------------

    def _keeping_scroll(self) -> _StickToBottom:
        return _StickToBottom(self)


class _StickToBottom:
    """Keeps the view at the bottom across a change if it was at the bottom before."""

    def __init__(self, view: ChatView) -> None:
        self._bar = view.verticalScrollBar()
        self._was_at_bottom = True

    def __enter__(self) -> None:
        self._was_at_bottom = self._bar.value() >= self._bar.maximum() - 4

    def __exit__(self, *exc: object) -> None:
        if self._was_at_bottom:
            self._bar.setValue(self._bar.maximum())
