"""The first-run welcome, the timeline picture, palette following, the painted icon and the meter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from assistant.ui.chat_view import ChatView
from assistant.ui.icons import SIZES, app_icon, paint_icon, painted_icon
from assistant.ui.level_meter import LevelMeter, fraction_of
from assistant.ui.theme import dark_palette, is_dark
from assistant.ui.timeline import TimelineDialog, ticks, timeline_of
from assistant.ui.welcome import FLAG_NAME, TRY_QUESTION, WelcomeDialog, first_run
from backend.protocol import Timings

TIMINGS = Timings(ttft_s=0.2, ttfa_s=0.45, total_s=2.0, tokens=30, llm_s=1.5, audio_s=3.0)


def test_the_welcome_follows_preparation_lets_the_person_try_the_voice_and_shows_once(
    qtbot: Any, tmp_path: Path
) -> None:
    asked: list[str] = []
    assert first_run(tmp_path)
    welcome = WelcomeDialog(tmp_path, asked.append)
    qtbot.addWidget(welcome)
    welcome.show()
    assert "runs entirely on this computer" in welcome.intro.text() and str(tmp_path) in welcome.intro.text()
    welcome.show_status("loading", "Assembling the language model", 0.4)
    assert welcome.progress.value() == 40 and welcome.progress_label.text() == "Assembling the language model"
    assert not welcome.try_button.isEnabled()
    welcome.show_status("loading", "Loading the voice", -1.0)
    assert welcome.progress.maximum() == 0  # busy: progress unknown
    welcome.show_status("ready", "Ready", 1.0)
    assert welcome.try_button.isEnabled()
    welcome.try_button.click()
    assert asked == [TRY_QUESTION]
    welcome.accept()
    assert (tmp_path / FLAG_NAME).exists() and not first_run(tmp_path)


def test_the_timeline_is_drawn_to_scale(qtbot: Any) -> None:
    timeline = timeline_of(TIMINGS, stt_s=0.3)
    assert [(s.kind, round(s.start_s, 2), round(s.end_s, 2)) for s in timeline.segments] == [
        ("stt", 0.0, 0.3),
        ("wait", 0.3, 0.5),
        ("llm", 0.5, 2.0),
        ("speech", 0.75, 3.75),
    ]
    assert [m.label for m in timeline.markers] == ["heard", "first token", "first audio", "end of speech"]
    assert timeline.span_s == pytest.approx(3.75)
    assert timeline_of(Timings(ttft_s=0.1, total_s=0.5, llm_s=0.3)).summary() == "first token 0.10 s"
    assert timeline_of(Timings()).summary() == "No timings were recorded."
    assert ticks(3.75) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    assert ticks(0.04)[-1] <= 0.04
    dialog = TimelineDialog(TIMINGS)
    qtbot.addWidget(dialog)
    dialog.show()
    image = dialog.picture.grab().toImage()
    colours = {image.pixel(x, y) for x in range(0, image.width(), 3) for y in range(0, image.height(), 3)}
    assert len(colours) > 10  # bars, lines and labels were painted
    assert "first audio 0.45 s" in dialog.summary.text()


def test_the_chat_recolours_when_the_palette_changes(qtbot: Any) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    view.add_user_message("Hello")
    view.begin_reply(1)
    view.append_reply(1, "Hi there.")
    view.finish_reply(1, "completed", timings=TIMINGS)

    def backgrounds() -> list[int]:
        return [f.frameFormat().background().color().lightness() for f in view.document().rootFrame().childFrames()]

    assert all(lightness > 128 for lightness in backgrounds())
    view.setPalette(dark_palette())
    assert all(lightness < 128 for lightness in backgrounds())
    assert is_dark(dark_palette()) and not is_dark(QApplication.style().standardPalette())
    assert "first audio 0.45 s" in view.toPlainText()


def test_the_icon_is_sharp_at_every_size(qtbot: Any) -> None:
    assert not app_icon().isNull() and app_icon().pixmap(256, 256).width() == 256
    icon = painted_icon()
    assert {size.width() for size in icon.availableSizes()} >= set(SIZES)
    big = paint_icon(256).toImage()
    assert big.pixelColor(128, 128).alpha() == 255 and big.pixelColor(1, 1).alpha() == 0  # a rounded square


def test_the_level_meter(qtbot: Any) -> None:
    meter = LevelMeter()
    qtbot.addWidget(meter)
    assert (fraction_of(0.0), fraction_of(-60.0), fraction_of(-30.0), fraction_of(float("nan"))) == (1.0, 0.0, 0.5, 0.0)
    meter.set_level(-6.0)
    assert meter.fraction == pytest.approx(0.9)
    meter.set_level(-80.0)
    assert meter.fraction < 0.9 and meter.accessibleDescription() == "-60 dBFS"
    meter.reset()
    assert meter.fraction == 0.0
    assert meter.palette().color(QPalette.ColorRole.Highlight).isValid()
