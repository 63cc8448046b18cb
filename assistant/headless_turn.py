"""Runs questions against a backend without a window: the path the selftest and benchmark share.

It uses the app's own parts (``BackendConnection`` and ``AudioPlayer``), so what
it measures is what a person gets: time from sending the question to the first
text, and to the first sample handed to the sound card.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from assistant.audio.player import AudioPlayer
from assistant.net.backend_connection import BackendConnection
from backend.protocol import (
    AudioFrame,
    AudioStart,
    Error,
    Message,
    PipelineMode,
    Status,
    TextDelta,
    Timings,
    TurnDone,
)

log = logging.getLogger("parley.app.headless")


@dataclass
class TurnRecord:
    """What one question produced, timed on the app's side."""

    question: str
    pipeline: PipelineMode
    sent_at: float
    first_text_at: float | None = None
    reply: str = ""
    status: str = ""
    error: str = ""
    timings: Timings = field(default_factory=Timings)
    first_audio_at: float | None = None
    underruns: int = 0
    samples_played: int = 0
    sample_rate: int = 0

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_text_at is None else self.first_text_at - self.sent_at

    @property
    def ttfa_s(self) -> float | None:
        return None if self.first_audio_at is None else self.first_audio_at - self.sent_at

    @property
    def words(self) -> int:
        return len(self.reply.split())


class HeadlessClient:
    """A ``ConnectionSink`` that feeds audio to a player and records one turn at a time."""

    def __init__(self, player: AudioPlayer | None) -> None:
        self.player = player
        self.status: Status | None = None
        self.errors: list[Error] = []
        self.closed_reason: str | None = None
        self._record: TurnRecord | None = None
        self._done = asyncio.Event()
        self._status_changed = asyncio.Event()
        self.connection: BackendConnection | None = None

    # -- ConnectionSink --------------------------------------------------------
    def on_message(self, message: Message) -> None:
        record = self._record
        match message:
            case Status():
                self.status = message
                self._status_changed.set()
            case Error():
                self.errors.append(message)
                if record is not None and message.turn_id is not None:
                    record.error = message.message
            case TextDelta() if record is not None:
                if record.first_text_at is None:
                    record.first_text_at = time.monotonic()
                record.reply += message.text
            case AudioStart() if record is not None and self.player is not None:
                record.sample_rate = message.sample_rate
                self.player.begin_stream(message.sample_rate)
            case TurnDone() if record is not None:
                record.status = message.status
                record.timings = message.timings
                record.reply = message.text or record.reply
                if self.player is not None:
                    self.player.end_stream()
                self._done.set()
            case _:
                pass

    def on_audio(self, frame: AudioFrame) -> None:
        if self.player is not None:
            self.player.feed(frame.pcm)

    def on_closed(self, reason: str) -> None:
        self.closed_reason = reason
        self._done.set()
        self._status_changed.set()

    # -- driving ---------------------------------------------------------------
    async def wait_ready(self, timeout_s: float, on_progress: object = None) -> Status:
        """Waits for ``Status(ready)``; raises ``RuntimeError`` on an error status or a closed link."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status
            if status is not None and status.state == "ready":
                return status
            if status is not None and status.state == "error":
                raise RuntimeError(f"The backend could not load its models: {status.detail}")
            if self.closed_reason is not None:
                raise RuntimeError(f"The backend closed the connection: {self.closed_reason}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"The backend was not ready after {timeout_s:.0f} s")
            self._status_changed.clear()
            if callable(on_progress) and status is not None:
                on_progress(status)
            try:
                await asyncio.wait_for(self._status_changed.wait(), remaining)
            except TimeoutError:
                continue

    def _first_audio_of(self, record: TurnRecord) -> float | None:
        """When the player handed this turn's first sample to the device (None before that)."""
        first = self.player.first_audio_monotonic if self.player is not None else None
        return first if first is not None and first >= record.sent_at else None

    async def ask(
        self,
        question: str,
        *,
        pipeline: PipelineMode = "streaming",
        speak: bool = True,
        timeout_s: float = 180.0,
        stop_after_first_audio: bool = False,
    ) -> TurnRecord:
        """Asks one question, waits for its end (and for its audio to finish playing)."""
        assert self.connection is not None, "connect first"
        player = self.player
        if player is not None:
            player.flush()
        underruns_before = player.underruns if player is not None else 0
        record = TurnRecord(question=question, pipeline=pipeline, sent_at=time.monotonic())
        self._record = record
        self._done.clear()
        self.connection.ask(question, speak=speak, pipeline=pipeline)
        deadline = time.monotonic() + timeout_s
        if stop_after_first_audio and player is not None:
            while not self._first_audio_of(record) and not self._done.is_set():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no audio within {timeout_s:.0f} s for {question!r}")
                await asyncio.sleep(0.005)
            record.first_audio_at = self._first_audio_of(record)
            self.connection.cancel()
            player.flush()
            self._record = None
            return record
        await asyncio.wait_for(self._done.wait(), max(1.0, deadline - time.monotonic()))
        if player is not None and record.sample_rate:
            await player.wait_drained(max(1.0, deadline - time.monotonic()))
            record.first_audio_at = self._first_audio_of(record)
            record.underruns = player.underruns - underruns_before
            record.samples_played = player.samples_played
        self._record = None
        return record
