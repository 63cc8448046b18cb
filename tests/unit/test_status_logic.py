"""What the status light shows for each situation."""

from __future__ import annotations

from assistant.ui.status_logic import Activity, indicator_for


def test_connection_problems_come_first() -> None:
    assert indicator_for(Activity(connection="failed", connection_detail="boom")).state == "error"
    assert indicator_for(Activity(connection="starting")).label == "Starting…"
    assert indicator_for(Activity(connection="reconnecting", turn_running=True)).label == "Reconnecting…"


def test_loading_shows_progress_only_when_known() -> None:
    known = indicator_for(Activity(connection="connected", backend="loading", progress=0.25))
    unknown = indicator_for(Activity(connection="connected", backend="loading", backend_detail="Loading x"))
    assert (known.state, known.progress) == ("loading", 0.25)
    assert (unknown.state, unknown.progress, unknown.label) == ("loading", None, "Loading x")


def test_a_turn_thinks_then_answers_and_sound_means_speaking() -> None:
    activity = Activity(connection="connected", backend="ready", turn_running=True)
    assert indicator_for(activity).label == "Thinking…"
    activity.has_text = True
    assert (indicator_for(activity).state, indicator_for(activity).label) == ("thinking", "Answering…")
    activity.playing = True
    assert indicator_for(activity).state == "speaking"
    activity.turn_running = False
    assert indicator_for(activity).state == "speaking"  # the reply is written but still being spoken
    assert activity.busy
    activity.playing = False
    assert indicator_for(activity).state == "ready"
    assert not activity.busy


def test_backend_error_status() -> None:
    indicator = indicator_for(Activity(connection="connected", backend="error", backend_detail="no model"))
    assert (indicator.state, indicator.detail) == ("error", "no model")


def test_listening_shows_over_a_reply_but_not_over_connection_problems() -> None:
    activity = Activity(connection="connected", backend="ready", listening=True)
    assert (indicator_for(activity).state, indicator_for(activity).label) == ("listening", "Listening…")
    activity.playing = True  # the person talks over the reply (barge-in)
    assert indicator_for(activity).state == "listening"
    activity.connection = "reconnecting"
    assert indicator_for(activity).state == "starting"
