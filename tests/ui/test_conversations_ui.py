"""The conversation flows in the window, against the real backend server and store (canned engines).

Create, switch, rename, delete with undo, search, export, regenerate, copy, the
timeline, the listening state, shortcuts and accessible names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QComboBox,
    QKeySequenceEdit,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QWidget,
)

from assistant.backend_client import BackendClient
from assistant.secrets_store import SecretStore
from assistant.ui.main_window import MainWindow
from assistant.ui.settings_dialog import SettingsContext
from assistant.ui.timeline import TimelineDialog
from backend.config import AudioConfig, BackendConfig, Config
from tests.fakes.stored_backend import TOKEN, CannedLLM, StoredBackendThread, seed

LLM_REPLIES = {"capital": "Paris is the capital of France.", "colour": "The sky is blue on a clear day."}
Make = Callable[..., tuple[MainWindow, BackendClient, StoredBackendThread]]


@pytest.fixture
def make_app(qtbot: Any, run_async: Callable[..., Any], tmp_path: Path) -> Iterator[Make]:
    """Starts a stored backend (optionally seeded) and a window connected to it."""
    started: list[tuple[BackendClient, StoredBackendThread]] = []

    def make(conversations: list[tuple[str, list[tuple[str, str]]]] | None = None) -> tuple[
        MainWindow, BackendClient, StoredBackendThread
    ]:
        if conversations:
            seed(tmp_path / "conversations.sqlite3", conversations)
        backend = StoredBackendThread(tmp_path, CannedLLM(LLM_REPLIES, "I am not sure.", delay_s=0.002))
        backend.__enter__()
        config = Config(backend=BackendConfig(url=backend.url, token=TOKEN), audio=AudioConfig(speak_replies=False))
        client = BackendClient(config)
        secrets = SecretStore(tmp_path / "keys.json", use_system_keyring=False)
        settings = SettingsContext(tmp_path / "config.toml", secrets)
        window = MainWindow(client, settings=settings)
        qtbot.addWidget(window)
        window.show()
        client.start()
        started.append((client, backend))
        qtbot.waitUntil(lambda: window.status.state == "ready", timeout=10000)
        return window, client, backend

    yield make
    for client, backend in started:
        run_async(client.shutdown(), timeout=15.0)
        backend.stop()


def ask(qtbot: Any, window: MainWindow, client: BackendClient, text: str) -> None:
    with qtbot.waitSignal(client.turn_done, timeout=10000):
        window.input.setPlainText(text)
        qtbot.keyClick(window.input, Qt.Key.Key_Return)


def named(widget: QWidget) -> bool:
    """A screen reader can name it: an accessible name, a button's own text, or (for the line
    edit inside a combo box, spin box or shortcut field) the name of that control."""
    text = widget.text() if isinstance(widget, QAbstractButton) else ""
    parent = widget.parentWidget()
    inner = isinstance(parent, QComboBox | QAbstractSpinBox | QKeySequenceEdit) and bool(parent.accessibleName())
    return bool(widget.accessibleName() or text or inner)


def stored(backend: StoredBackendThread, conversation_id: int) -> list[tuple[str, str]]:
    assert backend.store is not None
    backend.call(backend.store.flush())
    return [(m.role, m.text) for m in backend.call(backend.store.messages(conversation_id))]


def test_a_first_question_creates_a_conversation_titled_by_it(qtbot: Any, make_app: Make) -> None:
    window, client, backend = make_app()
    assert window.sidebar.titles() == [] and window.sidebar.empty.isVisibleTo(window)
    ask(qtbot, window, client, "What is the capital of France?")
    qtbot.waitUntil(lambda: window.sidebar.titles() == ["What is the capital of France?"], timeout=5000)
    current = client.conversations.current_id
    assert current is not None
    assert window.windowTitle() == "What is the capital of France? — Parley"
    item = window.sidebar.list.currentItem()
    assert item is not None and item.font().bold()
    assert stored(backend, current) == [
        ("user", "What is the capital of France?"),
        ("assistant", "Paris is the capital of France."),
    ]
    assert "first words" in window.chat.toPlainText()  # the reply's latency


def test_switching_shows_the_stored_messages_and_restores_the_context(qtbot: Any, make_app: Make) -> None:
    window, client, backend = make_app(
        [
            ("Colours", [("What colour is the sky?", "The sky is blue on a clear day.")]),
            ("Cities", [("What is the capital of France?", "Paris is the capital of France.")]),
        ]
    )
    qtbot.waitUntil(lambda: window.sidebar.list.count() == 2, timeout=5000)
    colours = window.sidebar.item_for(client.conversations.conversations[-1].conversation_id)
    assert colours is not None and colours.text() == "Colours"
    with qtbot.waitSignal(client.conversations.loaded, timeout=5000):
        window.sidebar.list.itemClicked.emit(colours)
    assert "The sky is blue" in window.chat.toPlainText() and "Paris" not in window.chat.toPlainText()
    assert window.windowTitle() == "Colours — Parley"
    cities = window.sidebar.item_for(client.conversations.conversations[0].conversation_id)
    assert cities is not None
    with qtbot.waitSignal(client.conversations.loaded, timeout=5000):
        window.sidebar.list.itemClicked.emit(cities)
    assert "Paris" in window.chat.toPlainText() and "The sky is blue" not in window.chat.toPlainText()
    ask(qtbot, window, client, "And the capital of Italy?")
    seen = [(m.role, m.content) for m in backend.llm.seen[-1]]
    assert seen[1:] == [
        ("user", "What is the capital of France?"),
        ("assistant", "Paris is the capital of France."),
        ("user", "And the capital of Italy?"),
    ]
    # a new conversation starts empty, for the model too
    with qtbot.waitSignal(client.conversations.opened, timeout=5000):
        qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.chat.toPlainText().strip() == "" and window.windowTitle() == "Parley"
    assert window.input.hasFocus()
    ask(qtbot, window, client, "What colour is grass?")
    assert [(m.role, m.content) for m in backend.llm.seen[-1]][1:] == [("user", "What colour is grass?")]


def test_rename_delete_undo_and_search(qtbot: Any, make_app: Make) -> None:
    window, client, backend = make_app(
        [
            ("Trip", [("Which trains go to Lyon?", "The TGV goes to Lyon every hour.")]),
            ("Bread", [("How long does dough rise?", "About two hours.")]),
        ]
    )
    qtbot.waitUntil(lambda: window.sidebar.list.count() == 2, timeout=5000)
    trip_id = next(c.conversation_id for c in client.conversations.conversations if c.title == "Trip")
    item = window.sidebar.item_for(trip_id)
    assert item is not None
    with qtbot.waitSignal(client.conversations.listed, timeout=5000):
        item.setText("Lyon by train")  # what the inline editor does when the person presses Enter
    assert "Lyon by train" in window.sidebar.titles()
    assert backend.call(backend.store.conversation(trip_id)).title == "Lyon by train"  # type: ignore[union-attr]

    with qtbot.waitSignal(client.conversations.listed, timeout=5000):
        window.sidebar.delete(trip_id)
    assert window.sidebar.titles() == ["Bread"]
    assert window.sidebar.undo.isVisible() and "Lyon by train" in window.sidebar.undo.label.text()
    with qtbot.waitSignal(client.conversations.listed, timeout=5000):
        qtbot.mouseClick(window.sidebar.undo.button, Qt.MouseButton.LeftButton)
    assert sorted(window.sidebar.titles()) == ["Bread", "Lyon by train"]
    assert not window.sidebar.undo.isVisible()

    with qtbot.waitSignal(client.conversations.search_results, timeout=5000):
        qtbot.keyClicks(window.sidebar.search, "tgv")
    assert window.sidebar.showing_results
    assert window.sidebar.titles() == ["Lyon by train\nThe TGV goes to Lyon every hour."]
    with qtbot.waitSignal(client.conversations.loaded, timeout=5000):
        window.sidebar.list.itemClicked.emit(window.sidebar.list.item(0))
    assert client.conversations.current_id == trip_id and "TGV" in window.chat.toPlainText()
    with qtbot.waitSignal(client.conversations.search_results, timeout=5000):
        window.sidebar.search.setText("no such words anywhere")
    assert window.sidebar.list.count() == 0 and "Nothing found" in window.sidebar.empty.text()
    window.sidebar.search.clear()
    qtbot.waitUntil(lambda: not window.sidebar.showing_results, timeout=5000)
    assert sorted(window.sidebar.titles()) == ["Bread", "Lyon by train"]


def test_export_writes_markdown_where_the_person_chose(qtbot: Any, make_app: Make, tmp_path: Path) -> None:
    window, client, _backend = make_app()
    ask(qtbot, window, client, "What is the capital of France?")
    qtbot.waitUntil(lambda: client.conversations.current_id is not None, timeout=5000)
    chosen: list[str] = []

    def choose(suggested: str) -> Path:
        chosen.append(suggested)
        return tmp_path / suggested

    window.conversations.choose_export_path = choose
    with qtbot.waitSignal(window.conversations.exported, timeout=5000) as written:
        window.actions_by_name["export"].trigger()
    assert chosen == ["What-is-the-capital-of-France.md"]
    markdown = Path(written.args[0]).read_text(encoding="utf-8")
    assert markdown.startswith("# What is the capital of France?")
    assert "> What is the capital of France?" in markdown and "Paris is the capital of France." in markdown
    assert "Exported" in (window.banner.message("export") or "")


def test_regenerate_copy_and_timeline(qtbot: Any, make_app: Make) -> None:
    window, client, backend = make_app()
    window.regenerate()
    assert "no reply to regenerate" in (window.banner.message("send") or "")
    ask(qtbot, window, client, "What colour is the sky?")
    with qtbot.waitSignal(client.turn_done, timeout=10000) as done:
        qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert done.args[1] == "completed"
    assert window.chat.toPlainText().count("The sky is blue") == 1  # replaced, not added
    current = client.conversations.current_id
    assert current is not None
    assert stored(backend, current) == [
        ("user", "What colour is the sky?"),
        ("assistant", "The sky is blue on a clear day."),
    ]
    QGuiApplication.clipboard().clear()
    window.chat.anchorClicked.emit(QUrl(f"parley:copy/{len(window.chat.shown) - 1}"))
    assert QGuiApplication.clipboard().text() == "The sky is blue on a clear day."
    QGuiApplication.clipboard().clear()
    qtbot.keyClick(window, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert QGuiApplication.clipboard().text() == "The sky is blue on a clear day."
    window.chat.anchorClicked.emit(QUrl(f"parley:timeline/{len(window.chat.shown) - 1}"))
    dialogs = window.findChildren(TimelineDialog)
    assert len(dialogs) == 1 and dialogs[0].isVisible()
    assert "first token" in dialogs[0].summary.text()
    dialogs[0].close()


def test_listening_state_and_level_meter(qtbot: Any, make_app: Make) -> None:
    window, _client, _backend = make_app()
    assert not window.status.meter.isVisible()
    window.set_listening(True)
    assert window.status.state == "listening" and window.status.text == "Listening…"
    assert window.status.meter.isVisible()
    window.set_mic_level(-12.0)
    assert window.status.meter.fraction == pytest.approx(0.8)
    window.set_mic_level(-60.0)
    assert 0.0 < window.status.meter.fraction < 0.8  # falls back gradually
    window.set_listening(False)
    assert window.status.state == "ready" and not window.status.meter.isVisible()


def test_shortcuts_and_accessible_names(qtbot: Any, make_app: Make) -> None:
    window, _client, _backend = make_app()
    window.sidebar.search.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert window.input.hasFocus()
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.sidebar.search.hasFocus()
    shortcuts = {name: action.shortcut().toString() for name, action in window.actions_by_name.items()}
    assert shortcuts["new"] == "Ctrl+N" and shortcuts["settings"] == "Ctrl+," and shortcuts["regenerate"] == "Ctrl+R"
    controls: list[QWidget] = [
        w
        for kind in (QAbstractButton, QLineEdit, QComboBox, QListWidget, QPlainTextEdit)
        for w in window.findChildren(kind)
        if w.isVisibleTo(window)
    ]
    assert len(controls) >= 5
    assert [type(w).__name__ for w in controls if not named(w)] == []
    dialog = window.open_settings()
    assert dialog is not None
    dialog_controls = [
        w for kind in (QAbstractButton, QLineEdit, QComboBox, QPlainTextEdit) for w in dialog.findChildren(kind)
    ]
    assert [type(w).__name__ for w in dialog_controls if not named(w)] == []
    dialog.reject()
