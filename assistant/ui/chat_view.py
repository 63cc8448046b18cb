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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from PySide6.QtCore import QEvent, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QContextMenuEvent,
    QDesktopServices,
    QGuiApplication,
    QPalette,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextFormat,
    QTextFrame,
    QTextFrameFormat,
)
from PySide6.QtWidgets import QTextBrowser, QWidget

from assistant.ui.markdown_stream import LiveMarkdown, closed_fences
from backend.protocol import StoredMessage, Timings

log = logging.getLogger("parley.app.ui")

_SENTINEL: Final = "\u200b"  # an empty first paragraph: keeps the real first block's format (heading, code)
_PARAGRAPH_SPACING: Final = 10
_ITEM_SPACING: Final = 3
_STATUS_NOTES: Final = {
    "cancelled": "[stopped]",
    "interrupted": "[interrupted]",
    "error": "[error]",
    "incomplete": "[cut short: the backend stopped]",
    "streaming": "[cut short]",
}
_ROLE: Final = QTextFormat.Property.UserProperty + 1  # frames: "user" | "assistant"; text: "muted"
_LINK_SCHEME: Final = "parley"
_STORED_TURN: Final = -1  # the turn id used while showing stored replies


@dataclass
class ShownMessage:
    """A message in the view, for copying and for its timeline."""

    role: str
    text: str
    frame: QTextFrame
    timings: Timings | None = None


def _mix(a: QColor, b: QColor, amount: float) -> QColor:
    return QColor(
        round(a.red() + (b.red() - a.red()) * amount),
        round(a.green() + (b.green() - a.green()) * amount),
        round(a.blue() + (b.blue() - a.blue()) * amount),
    )


def latency_text(timings: Timings | None) -> str:
    """"first audio 0.42 s" (or first words, for a text-only reply); "" when unknown."""
    if timings is None:
        return ""
    if timings.ttfa_s is not None:
        return f"first audio {timings.ttfa_s:.2f} s"
    if timings.ttft_s is not None:
        return f"first words {timings.ttft_s:.2f} s"
    return ""


class ChatView(QTextBrowser):
    """A read-only conversation view with streaming markdown replies.

    Each finished reply ends with a line showing its latency and Copy / Timeline
    links; ``timeline_requested(Timings)`` asks the window to show the picture.
    """

    timeline_requested = Signal(object)
    copied = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.anchorClicked.connect(self._on_link)
        self.setAccessibleName("Conversation")
        self.setReadOnly(True)
        self.shown: list[ShownMessage] = []
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
            frame = cursor.insertFrame(self._bubble_format(user=True))
            cursor.insertText(text.rstrip(), QTextCharFormat())
        self.shown.append(ShownMessage("user", text.rstrip(), frame))

    def begin_reply(self, turn_id: int) -> None:
        """Opens an empty reply bubble for ``turn_id`` at the end of the conversation."""
        self._finish_open_reply("cancelled")
        with self._keeping_scroll():
            cursor = self._end_cursor()
            self._reply_frame = cursor.insertFrame(self._bubble_format(user=False))
        self.shown.append(ShownMessage("assistant", "", self._reply_frame))
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

    def finish_reply(self, turn_id: int, status: str, detail: str = "", timings: Timings | None = None) -> None:
        """Renders the whole reply once, marks it if it did not complete (e.g. "[stopped]"), adds its footer."""
        if turn_id != self._reply_turn or self._reply_frame is None:
            return
        text = self._stream.text
        with self._keeping_scroll():
            self._live_start = self._reply_frame.firstPosition()
            self._render_live(text)
            note = _STATUS_NOTES.get(status, "")
            if note:
                self._add_note(f"{note} {detail}".strip(), first=not text.strip())
            self._add_footer(len(self.shown) - 1, timings, first=not text.strip() and not note)
        if self.shown and self.shown[-1].frame == self._reply_frame:
            self.shown[-1].text = text
            self.shown[-1].timings = timings
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
        note = self._muted_format()
        note.setFontItalic(True)
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
        frame = QTextFrameFormat()
        frame.setProperty(_ROLE, "user" if user else "assistant")
        frame.setBackground(self._bubble_colour(user=user))
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

    # ---- stored conversations, footers, copying, palette (issue 4) --------------------------

    def clear_conversation(self) -> None:
        """Empties the view; a reply still streaming is dropped from it."""
        self._reply_turn = None
        self._reply_frame = None
        self._stream = LiveMarkdown()
        self.shown = []
        self.clear()

    def show_conversation(self, messages: Sequence[StoredMessage]) -> None:
        """Shows a stored conversation: questions as plain text, replies rendered, cut replies marked."""
        self.clear_conversation()
        for message in messages:
            if message.role == "user":
                self.add_user_message(message.text)
                continue
            self.begin_reply(_STORED_TURN)
            self._stream.append(message.text)
            timings = message.timings if message.timings.ttft_s is not None else None
            self.finish_reply(_STORED_TURN, message.status, timings=timings)
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def remove_last_reply(self) -> bool:
        """Takes the last (finished) reply out of the view, before it is regenerated."""
        if self._reply_turn is not None or not self.shown or self.shown[-1].role != "assistant":
            return False
        frame = self.shown.pop().frame
        cursor = QTextCursor(self.document())
        cursor.setPosition(frame.firstPosition() - 1)
        cursor.setPosition(frame.lastPosition() + 1, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        return True

    def last_reply(self) -> ShownMessage | None:
        return next((m for m in reversed(self.shown) if m.role == "assistant"), None)

    def copy_message(self, message: ShownMessage) -> None:
        QGuiApplication.clipboard().setText(message.text)
        self.copied.emit(message.text)

    def message_at(self, position: int) -> ShownMessage | None:
        """The message whose bubble holds the document ``position``."""
        for message in self.shown:
            if message.frame.firstPosition() <= position <= message.frame.lastPosition():
                return message
        return None

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        menu = self.createStandardContextMenu(event.pos())
        message = self.message_at(self.cursorForPosition(event.pos()).position())
        if message is not None and message.text:
            first = menu.actions()[0] if menu.actions() else None
            copy = menu.addAction("Copy message")
            copy.triggered.connect(lambda: self.copy_message(message))
            if first is not None:
                menu.insertAction(first, copy)
                menu.insertSeparator(first)
        menu.exec(event.globalPos())
        menu.deleteLater()

    def _on_link(self, url: QUrl) -> None:
        if url.scheme() != _LINK_SCHEME:
            QDesktopServices.openUrl(url)
            return
        action, _, index = url.path().partition("/")
        if not index.isdigit() or int(index) >= len(self.shown):
            return
        message = self.shown[int(index)]
        if action == "copy":
            self.copy_message(message)
        elif action == "timeline" and message.timings is not None:
            self.timeline_requested.emit(message.timings)

    def _add_footer(self, index: int, timings: Timings | None, *, first: bool) -> None:
        """The reply's last line: its latency, then Copy and Timeline links."""
        cursor = self._frame_end_cursor()
        if not first:
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
        muted = self._muted_format()
        muted.setFontPointSize(max(7.0, self.font().pointSizeF() * 0.85))
        latency = latency_text(timings)
        if latency:
            cursor.insertText(f"{latency}   ", muted)
        cursor.insertText("Copy", self._link_format(muted, f"{_LINK_SCHEME}:copy/{index}"))
        if timings is not None:
            cursor.insertText("   ", muted)
            cursor.insertText("Timeline", self._link_format(muted, f"{_LINK_SCHEME}:timeline/{index}"))

    def _link_format(self, base: QTextCharFormat, href: str) -> QTextCharFormat:
        link = QTextCharFormat(base)
        link.setAnchor(True)
        link.setAnchorHref(href)
        link.setFontUnderline(True)
        link.setProperty(_ROLE, "link")
        link.setForeground(self.palette().color(QPalette.ColorRole.Link))
        return link

    def _muted_format(self) -> QTextCharFormat:
        muted = QTextCharFormat()
        muted.setProperty(_ROLE, "muted")
        muted.setForeground(self.palette().color(QPalette.ColorRole.PlaceholderText))
        return muted

    def _bubble_colour(self, *, user: bool) -> QColor:
        """Bubble backgrounds derived from the palette, so light and dark themes both read well."""
        palette = self.palette()
        base = palette.color(QPalette.ColorRole.Base)
        if user:
            return _mix(base, palette.color(QPalette.ColorRole.Highlight), 0.22)
        return _mix(base, palette.color(QPalette.ColorRole.Text), 0.07)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._recolour()

    def _recolour(self) -> None:
        """Applies the current palette to bubbles, notes and links already shown."""
        for frame in self.document().rootFrame().childFrames():
            frame_format = frame.frameFormat()
            role = frame_format.property(_ROLE)
            if role in ("user", "assistant"):
                frame_format.setBackground(self._bubble_colour(user=role == "user"))
                frame.setFrameFormat(frame_format)
        colours = {
            "muted": self.palette().color(QPalette.ColorRole.PlaceholderText),
            "link": self.palette().color(QPalette.ColorRole.Link),
        }
        spans: list[tuple[int, int, str]] = []
        block = self.document().begin()
        while block.isValid():
            it = block.begin()
            while not it.atEnd():
                fragment = it.fragment()
                kind = fragment.charFormat().property(_ROLE)
                if kind in colours:
                    spans.append((fragment.position(), fragment.length(), kind))
                it += 1
            block = block.next()
        for start, length, kind in spans:
            cursor = QTextCursor(self.document())
            cursor.setPosition(start)
            cursor.setPosition(start + length, QTextCursor.MoveMode.KeepAnchor)
            colour = QTextCharFormat()
            colour.setForeground(colours[kind])
            cursor.mergeCharFormat(colour)


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
