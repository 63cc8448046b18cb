"""Spoken turns against a backend without a window: the path the voice benchmark and tests share.

``HeadlessVoiceClient`` is the ``VoiceLink`` of a ``VoiceInput`` and the sink of a
``BackendConnection``: it opens voice turns, forwards the microphone audio, plays
the replies through the app's ``AudioPlayer`` and records, per turn, what happened
and when (on ``time.monotonic``), so the benchmark measures what a person gets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from assistant.audio.player import AudioPlayer
from assistant.net.backend_connection import BackendConnection, NotConnected
from backend.protocol import (
    AudioEnd,
    AudioFrame,
    AudioStart,
    Error,
    Message,
    Status,
    TextDelta,
    Timings,
    Transcript,
    TurnDone,
    UtteranceEnd,
    UtterancePause,
    UtteranceResume,
)

log = logging.getLogger("parley.app.headless_voice")


@dataclass
class VoiceTurnRecord:
    """One voice turn as the app saw it."""

    turn_id: int
    opened_at: float
    ended_at: float | None = None  # UtteranceEnd sent
    paused_at: float | None = None  # the last UtterancePause sent
    partials: list[str] = field(default_factory=list)
    transcript: str | None = None
    transcript_at: float | None = None
    stt_s: float = 0.0
    reply: str = ""
    audio_started: bool = False
    samples_queued: int = 0
    status: str = ""
    error: str = ""
    timings: Timings = field(default_factory=Timings)
    done_at: float | None = None


class HeadlessVoiceClient:
    """A ``ConnectionSink`` and ``VoiceLink`` over one ``BackendConnection``; see the module docstring."""

    def __init__(self, player: AudioPlayer | None) -> None:
        self.player = player
        self.connection: BackendConnection | None = None
        self.status: Status | None = None
        self.errors: list[Error] = []
        self.closed_reason: str | None = None
        self.records: dict[int, VoiceTurnRecord] = {}
        self.messages: list[Message] = []  # everything else the server sent (conversations...)
        self.barge_ins: list[tuple[float, float]] = []  # (time, heard seconds)
        self._current: VoiceTurnRecord | None = None
        self._audio_turn: int | None = None
        self._changed = asyncio.Event()

    # ---- ConnectionSink ---------------------------------------------------------------

    def on_message(self, message: Message) -> None:
        record = self._current
        now = time.monotonic()
        match message:
            case Status():
                self.status = message
            case Error():
                self.errors.append(message)
                if record is not None and message.turn_id == record.turn_id:
                    record.error = message.message
            case Transcript() if record is not None:
                if message.final:
                    record.transcript, record.transcript_at, record.stt_s = message.text, now, message.stt_s
                else:
                    record.partials.append(message.text)
            case TextDelta() if record is not None:
                record.reply += message.text
            case AudioStart() if record is not None:
                record.audio_started = True
                self._audio_turn = record.turn_id
                if self.player is not None:
                    self.player.begin_stream(message.sample_rate)
            case AudioEnd():
                if self.player is not None:
                    self.player.end_stream()
            case TurnDone() if record is not None:
                record.status, record.timings, record.done_at = message.status, message.timings, now
                record.error = record.error or message.error
                record.reply = message.text or record.reply
                if self.player is not None:
                    self.player.end_stream()
                self._current = None
            case _:
                self.messages.append(message)
        self._changed.set()

    def on_audio(self, frame: AudioFrame) -> None:
        record = self._current
        if self.player is not None and record is not None:
            record.samples_queued += self.player.feed(frame.pcm)

    def on_closed(self, reason: str) -> None:
        self.closed_reason = reason
        self._changed.set()

    # ---- VoiceLink ----------------------------------------------------------------------

    def begin_utterance(self) -> int:
        connection = self.connection
        if connection is None or not connection.is_open:
            raise NotConnected("Not connected to the backend.")
        if self.player is not None:
            self.player.flush()
        self._close_current("cancelled")
        speak = self.player is not None
        turn_id = connection.start_utterance(speak=speak)
        self._current = VoiceTurnRecord(turn_id=turn_id, opened_at=time.monotonic())
        self.records[turn_id] = self._current
        self._changed.set()
        return turn_id

    def utterance_audio(self, turn_id: int, pcm: bytes) -> None:
        if self.connection is not None:
            self.connection.send_utterance_audio(turn_id, pcm)

    def pause_utterance(self, turn_id: int) -> None:
        if self.connection is not None:
            self.connection.send_utterance_control(UtterancePause(turn_id=turn_id))
        self.records[turn_id].paused_at = time.monotonic()

    def resume_utterance(self, turn_id: int) -> None:
        if self.connection is not None:
            self.connection.send_utterance_control(UtteranceResume(turn_id=turn_id))
        self.records[turn_id].paused_at = None

    def end_utterance(self, turn_id: int) -> None:
        if self.connection is not None:
            self.connection.send_utterance_control(UtteranceEnd(turn_id=turn_id))
        self.records[turn_id].ended_at = time.monotonic()
        self._changed.set()

    def cancel_utterance(self, turn_id: int) -> None:
        if self.connection is not None and self.connection.current_turn == turn_id:
            self.connection.cancel()
        self._close_current("cancelled")

    def barge_in(self, heard_s: float) -> None:
        self.barge_ins.append((time.monotonic(), heard_s))
        audio_turn, self._audio_turn = self._audio_turn, None
        if self.connection is not None and audio_turn is not None:
            self.connection.interrupt(heard_s, turn_id=audio_turn)
        if self._current is not None and self._current.turn_id == audio_turn:
            self._close_current("interrupted")
        self._changed.set()

    # ---- asking and waiting -------------------------------------------------------------

    def stop(self) -> None:
        """Silences the player and cancels the current turn, as the Stop button does."""
        if self.player is not None:
            self.player.flush()
        if self.connection is not None:
            self.connection.cancel()
        self._close_current("cancelled")

    def ask(self, text: str) -> int:
        """A typed question (for a long reply to barge in on); recorded like a voice turn."""
        assert self.connection is not None, "connect first"
        if self.player is not None:
            self.player.flush()
        self._close_current("cancelled")
        turn_id = self.connection.ask(text, speak=self.player is not None)
        self._current = VoiceTurnRecord(turn_id=turn_id, opened_at=time.monotonic(), transcript=text)
        self.records[turn_id] = self._current
        return turn_id

    async def wait_for(self, condition: object, timeout_s: float) -> None:
        """Waits until ``condition()`` is true; raises ``TimeoutError`` (or ``RuntimeError`` if the link closed)."""
        assert callable(condition)
        async with asyncio.timeout(timeout_s):
            while not condition():
                if self.closed_reason is not None:
                    raise RuntimeError(f"the backend closed the connection: {self.closed_reason}")
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), 0.05)
                except TimeoutError:
                    continue

    async def wait_ready(self, timeout_s: float) -> Status:
        await self.wait_for(lambda: self.status is not None and self.status.state != "loading", timeout_s)
        assert self.status is not None
        if self.status.state != "ready":
            raise RuntimeError(f"The backend could not load its models: {self.status.detail}")
        return self.status

    def _close_current(self, status: str) -> None:
        record, self._current = self._current, None
        if record is not None and not record.status:
            record.status = status
            record.done_at = time.monotonic()
