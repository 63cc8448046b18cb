"""ChatView: markdown while streaming, and per-token work that does not grow with the reply."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QFont, QTextCursor

from assistant.ui.chat_view import ChatView
from assistant.ui.markdown_stream import LIVE_LIMIT


def stream(view: ChatView, turn_id: int, text: str, step: int = 5) -> list[int]:
    costs = []
    for i in range(0, len(text), step):
        view.append_reply(turn_id, text[i : i + step])
        costs.append(view.last_rendered_chars)
    return costs


def bold_words(view: ChatView) -> list[str]:
    words = []
    block = view.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if fragment.charFormat().fontWeight() >= QFont.Weight.Bold:
                words.append(fragment.text())
            it += 1
        block = block.next()
    return words


def block_texts(view: ChatView) -> list[tuple[str, bool]]:
    """(text, in a list) of every block in the document."""
    blocks = []
    block = view.document().begin()
    while block.isValid():
        blocks.append((block.text(), block.textList() is not None))
        block = block.next()
    return blocks


def test_streaming_leaves_no_stray_blocks(qtbot: Any) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    view.begin_reply(1)
    text = "Intro line.\n\n1. first\n2. second\n\n## Heading\n\n```\ncode line\n```\n\nLast words"
    stream(view, 1, text, step=2)
    streamed = block_texts(view)
    view.finish_reply(1, "completed")
    finished = block_texts(view)
    assert finished[-2] == ("Copy", False)  # the reply's footer line
    for blocks in (streamed, finished[:-2] + finished[-1:]):
        texts = [t for t, _ in blocks]
        assert texts[1:-1] == ["Intro line.", "first", "second", "Heading", "code line", "Last words"]
        assert [t for t, in_list in blocks if in_list] == ["first", "second"]


def test_streamed_markdown_is_rendered(qtbot: Any) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    view.add_user_message("What is **this**?")
    view.begin_reply(1)
    stream(view, 1, "# Title\n\nSome **bold** text.\n\n- one\n- two\n\nAnd `code`.", step=3)
    assert "Some bold text." in view.toPlainText()
    assert "What is **this**?" in view.toPlainText()  # the person's text is never markdown
    assert bold_words(view).count("bold") == 1
    view.finish_reply(1, "completed")
    plain = view.toPlainText()
    assert "Title" in plain and "#" not in plain
    assert "one" in plain and "two" in plain and "- one" not in plain
    assert "[stopped]" not in plain


def test_per_token_work_stays_flat_as_the_reply_grows(qtbot: Any) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    view.begin_reply(7)
    paragraph = "This sentence is part of a rather long reply, written a few characters at a time. " * 4
    text = "\n\n".join([paragraph] * 60)  # about 20,000 characters
    costs = stream(view, 7, text)
    assert len(text) > 19_000
    first, last = costs[: len(costs) // 10], costs[-len(costs) // 10 :]
    assert max(costs) <= LIVE_LIMIT + 10
    assert max(last) <= max(first) + 10  # no growth with the reply's length
    assert sum(costs) < 40 * len(text)  # versus about len(text)**2 / 10 if the reply were re-rendered
    view.finish_reply(7, "completed")
    assert view.toPlainText().count("rather long reply") == 240


def test_a_long_line_without_paragraphs_is_also_bounded(qtbot: Any) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    view.begin_reply(1)
    costs = stream(view, 1, "word " * 4000)
    assert max(costs) <= LIVE_LIMIT + 10
    view.finish_reply(1, "completed")
    assert view.toPlainText().count("word") == 4000


def test_a_stopped_reply_keeps_its_text_and_is_marked(qtbot: Any) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    view.begin_reply(3)
    stream(view, 3, "Half of an answ")
    view.finish_reply(3, "cancelled")
    view.append_reply(3, "er that came too late")  # a finished reply takes no more text
    plain = view.toPlainText()
    assert "Half of an answ" in plain
    assert "[stopped]" in plain
    assert "too late" not in plain


def test_text_for_another_turn_is_ignored(qtbot: Any) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    view.begin_reply(2)
    view.append_reply(1, "old turn")
    view.append_reply(2, "new turn")
    assert "old turn" not in view.toPlainText()
    assert view.reply_text() == "new turn"


def test_the_view_follows_the_end_while_streaming(qtbot: Any) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(400, 200)
    view.show()
    view.begin_reply(1)
    stream(view, 1, "line of text\n\n" * 80, step=14)
    bar = view.verticalScrollBar()
    assert bar.maximum() > 0
    assert bar.value() == bar.maximum()
    cursor = QTextCursor(view.document())
    cursor.movePosition(QTextCursor.MoveOperation.End)
    assert view.document().characterCount() > 80 * 12
