"""What the status light shows, decided from what the app knows (pure logic, no widgets)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Indicator:
    state: str  # starting | loading | ready (idle) | listening | thinking | speaking | error
    label: str
    detail: str = ""
    progress: float | None = None  # 0..1 while models load, when known


@dataclass
class Activity:
    """The facts the window collects from ``BackendClient`` signals."""

    connection: str = "stopped"
    connection_detail: str = ""
    backend: str = ""  # the backend's Status: loading | ready | error ("" until the first one)
    backend_detail: str = ""
    progress: float = -1.0
    turn_running: bool = False
    has_text: bool = False
    playing: bool = False
    listening: bool = False  # the microphone is taking a question (push-to-talk held, or speech heard)

    @property
    def busy(self) -> bool:
        """A reply is being written or spoken (the Send button becomes Stop)."""
        return self.turn_running or self.playing


def indicator_for(activity: Activity) -> Indicator:
    a = activity
    if a.connection == "failed":
        return Indicator("error", "Backend unavailable", a.connection_detail)
    if a.connection in ("stopped", "starting"):
        return Indicator("starting", "Starting…", a.connection_detail)
    if a.connection == "connecting":
        return Indicator("starting", "Connecting…", a.connection_detail)
    if a.connection == "reconnecting":
        return Indicator("starting", "Reconnecting…", a.connection_detail)
    if a.listening:
        return Indicator("listening", "Listening…")
    if a.playing:
        return Indicator("speaking", "Speaking")
    if a.turn_running:
        return Indicator("thinking", "Answering…" if a.has_text else "Thinking…")
    if a.backend == "loading":
        progress = a.progress if 0.0 <= a.progress <= 1.0 else None
        return Indicator("loading", a.backend_detail or "Loading models…", a.backend_detail, progress)
    if a.backend == "error":
        return Indicator("error", "Models failed to load", a.backend_detail)
    if a.backend == "":
        return Indicator("starting", "Waiting for the backend…")
    return Indicator("ready", "Ready", a.backend_detail)
