"""The push-to-talk shortcut: held down to speak, released to send, not typed into the input."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPlainTextEdit

from assistant.ui.push_to_talk import PushToTalkKeys, parse_shortcut


def test_shortcuts_are_parsed_and_bad_ones_refused() -> None:
    assert parse_shortcut("Ctrl+Space") == (Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    assert parse_shortcut("F9") == (Qt.Key.Key_F9, Qt.KeyboardModifier.NoModifier)
    assert parse_shortcut("") is None
    assert parse_shortcut("Ctrl+A, Ctrl+B") is None


def test_holding_the_shortcut_presses_once_and_releasing_it_releases(qtbot: Any) -> None:
    editor = QPlainTextEdit()
    qtbot.addWidget(editor)
    editor.show()
    keys = PushToTalkKeys("Ctrl+Space")
    events: list[str] = []
    keys.pressed.connect(lambda: events.append("pressed"))
    keys.released.connect(lambda: events.append("released"))
    try:
        qtbot.keyPress(editor, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
        qtbot.keyPress(editor, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)  # held: no second press
        qtbot.keyRelease(editor, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
        qtbot.keyClick(editor, Qt.Key.Key_Space)  # a plain space still types
        assert events == ["pressed", "released"]
        assert editor.toPlainText() == " "
        assert not keys.set_shortcut("not a key, at all")
        assert keys.set_shortcut("F9") and keys.shortcut == "F9"
        qtbot.keyPress(editor, Qt.Key.Key_F9)
        qtbot.keyRelease(editor, Qt.Key.Key_F9)
        assert events == ["pressed", "released", "pressed", "released"]
    finally:
        keys.detach()
