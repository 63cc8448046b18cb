"""The push-to-talk keyboard shortcut: held down to speak, released to send (default Ctrl+Space).

A ``QShortcut`` only reports presses, so ``PushToTalkKeys`` watches the key events
of the whole application (while one of its windows has focus): the shortcut's key
with its modifiers pressed (auto-repeat ignored) emits ``pressed``; releasing that
key, or the window losing focus, emits ``released``. The key press is consumed so
it does not also type into the input.
"""

from __future__ import annotations

from typing import Final

from PySide6.QtCore import QCoreApplication, QEvent, QKeyCombination, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence

DEFAULT_SHORTCUT: Final = "Ctrl+Space"
_MODIFIERS: Final = (
    Qt.KeyboardModifier.ControlModifier
    | Qt.KeyboardModifier.AltModifier
    | Qt.KeyboardModifier.ShiftModifier
    | Qt.KeyboardModifier.MetaModifier
)


def parse_shortcut(text: str) -> tuple[Qt.Key, Qt.KeyboardModifier] | None:
    """The key and modifiers of a one-key shortcut such as "Ctrl+Space"; None if it is not one."""
    sequence = QKeySequence(text.strip())
    if sequence.count() != 1:
        return None
    combination: QKeyCombination = sequence[0]  # type: ignore[index]  # the stubs miss __getitem__
    key = combination.key()
    if key == Qt.Key.Key_unknown:
        return None
    return key, combination.keyboardModifiers() & _MODIFIERS


class PushToTalkKeys(QObject):
    """Emits ``pressed`` and ``released`` for the push-to-talk shortcut; see the module docstring."""

    pressed = Signal()
    released = Signal()

    def __init__(self, shortcut: str = DEFAULT_SHORTCUT, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._binding = parse_shortcut(shortcut) or parse_shortcut(DEFAULT_SHORTCUT)
        self._down = False
        app = QCoreApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    @property
    def shortcut(self) -> str:
        if self._binding is None:
            return ""
        key, modifiers = self._binding
        return QKeySequence(modifiers | key).toString()

    def set_shortcut(self, text: str) -> bool:
        """Uses another shortcut; False (and the old one is kept) when ``text`` is not a one-key shortcut."""
        binding = parse_shortcut(text)
        if binding is None:
            return False
        self._let_go()
        self._binding = binding
        return True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.ApplicationDeactivate:
            self._let_go()
            return False
        if kind not in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) or self._binding is None:
            return False
        if not isinstance(event, QKeyEvent):
            return False
        key, modifiers = self._binding
        if event.key() != key:
            return False
        if kind == QEvent.Type.KeyPress:
            if (event.modifiers() & _MODIFIERS) != modifiers:
                return False
            if not event.isAutoRepeat() and not self._down:
                self._down = True
                self.pressed.emit()
            return True
        if event.isAutoRepeat():
            return self._down
        was_down = self._down
        self._let_go()
        return was_down

    def _let_go(self) -> None:
        if self._down:
            self._down = False
            self.released.emit()

    def detach(self) -> None:
        app = QCoreApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
