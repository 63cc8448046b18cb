"""One turn: LLM token stream -> text deltas, and -> segmenter -> TTS -> paced audio frames.

The LLM and the synthesizer run as two tasks joined by a bounded queue of
segments, so speech starts after the first clause while the rest is still being
written. ``Turn.run`` returns how the turn ended; the text produced so far is
always available in ``Turn.reply`` for the caller to commit, also after a cancel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from backend.audio_frames import AudioPacer, iter_frames
from backend.engines.base import ChatMessage, EngineError, LLMEngine, TTSEngine
from backend.heard_text import SpokenSpan, heard_cut, split_text_range
from backend.protocol import (
    ERR_PROVIDER,
    AudioEnd,
    AudioFrame,
    AudioStart,
    Error,
    Message,
    PipelineMode,
    TextDelta,
    Timings,
    TurnStarted,
    TurnStatus,
)
from backend.segmenter import SpeechSegmenter

log = logging.getLogger("parley.turn")

SEGMENT_QUEUE_SIZE: Final = 32
FIRST_CLAUSE_WORDS: Final = (3, 6)
"""The first segment is cut at a clause boundary after 3 words, or after 6 words without one."""
HURRY_BELOW_S: Final = 1.5
"""When less audio than this is left to play and no segment waits, the next one is cut early."""


class TurnOutput(Protocol):
    """Where a turn sends what it produces (the connection, or a test's recorder)."""

    async def send(self, message: Message) -> None: ...

    async def send_audio(self, frame: AudioFrame) -> None: ...


@dataclass(frozen=True)
class TurnRequest:
    turn_id: int
    text: str
    history: Sequence[ChatMessage]
    speak: bool = True
    pipeline: PipelineMode = "streaming"


@dataclass
class _Clock:
    started: float
    first_token: float | None = None
    last_token: float | None = None
    first_audio: float | None = None
    tokens: int = 0
    audio_samples: int = 0
    sample_rate: int = 0
    synth_s: float = 0.0
    now: Callable[[], float] = field(default=time.monotonic)

    def timings(self) -> Timings:
        end = self.now()

        def since(t: float | None) -> float | None:
            return None if t is None else round(t - self.started, 4)

        llm_s = 0.0
        if self.first_token is not None and self.last_token is not None:
            llm_s = self.last_token - self.first_token
        return Timings(
            ttft_s=since(self.first_token),
            ttfa_s=since(self.first_audio),
            total_s=round(end - self.started, 4),
            tokens=self.tokens,
            llm_s=round(llm_s, 4),
            audio_s=round(self.audio_samples / self.sample_rate, 4) if self.sample_rate else 0.0,
            synth_s=round(self.synth_s, 4),
        )


class Turn:
    """Runs one question to its reply. Not reusable: one ``run()`` per instance."""

    def __init__(
        self,
        request: TurnRequest,
        llm: LLMEngine,
        tts: TTSEngine | None,
        out: TurnOutput,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.request = request
        self._llm = llm
        self._tts = tts if request.speak else None
        self._out = out
        self._clock = _Clock(started=clock(), now=clock)
        self._pieces: list[str] = []
        self._segments: asyncio.Queue[str | None] = asyncio.Queue(maxsize=SEGMENT_QUEUE_SIZE)
        self._pacer: AudioPacer | None = None
        self._synthesizing = False
        self.error: str = ""
        self.spans: list[SpokenSpan] = []  # barge-in: what each spoken segment covers (issue 3)
        self._chars = 0
        self._kept: str | None = None

    @property
    def reply(self) -> str:
        """The reply text produced so far (only the heard part after ``keep_heard``)."""
        return self._kept if self._kept is not None else "".join(self._pieces)

    def keep_heard(self, heard_s: float) -> str:
        """Cuts ``reply`` to what ``heard_s`` seconds of its audio said; a turn without speech keeps it all."""
        if self._tts is not None:
            self._kept = heard_cut("".join(self._pieces), self.spans, heard_s)
        return self.reply

    def _record_spans(self, segments: list[str], text_end: int) -> None:
        start = self.spans[-1].text_end if self.spans else 0
        for a, b in split_text_range(start, max(start, text_end), segments):
            self.spans.append(SpokenSpan(a, b))

    def timings(self) -> Timings:
        return self._clock.timings()

    async def run(self) -> TurnStatus:
        """Streams the reply; returns "completed" or "error".

        When cancelled, both inner tasks are cancelled and awaited before the
        cancellation propagates; ``reply`` then holds what was produced.
        """
        tid = self.request.turn_id
        await self._out.send(TurnStarted(turn_id=tid, text=self.request.text))
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._write(), name=f"turn-{tid}-llm")
                if self._tts is not None:
                    group.create_task(self._speak(self._tts), name=f"turn-{tid}-tts")
        except* EngineError as failure:
            first = failure.exceptions[0]
            self.error = first.user_message if isinstance(first, EngineError) else str(first)
        if self.error:
            await self._out.send(Error(code=ERR_PROVIDER, message=self.error, turn_id=tid))
            return "error"
        return "completed"

    async def _write(self) -> None:
        """Streams LLM text to the client and complete segments to the speaker task."""
        tid = self.request.turn_id
        messages = [*self.request.history, ChatMessage("user", self.request.text)]
        min_first, max_first = FIRST_CLAUSE_WORDS
        segmenter = SpeechSegmenter(min_first_words=min_first, max_first_words=max_first)
        held: list[str] = []  # sequential mode: segments wait for the whole reply
        stream = self._llm.stream(messages)
        try:
            async for piece in stream:
                if not piece:
                    continue
                now = self._clock.now()
                if self._clock.first_token is None:
                    self._clock.first_token = now
                self._clock.last_token = now
                self._clock.tokens += 1
                self._pieces.append(piece)
                self._chars += len(piece)
                await self._out.send(TextDelta(turn_id=tid, text=piece))
                if self._tts is not None:
                    if self._speech_running_dry():
                        segmenter.hurry()
                    segments = segmenter.feed(piece)
                    self._record_spans(segments, self._chars - segmenter.pending_chars)
                    for segment in segments:
                        await self._queue_segment(segment, held)
        finally:
            await stream.aclose()  # the engine's worker stops now, not when garbage-collected
        if self._tts is not None:
            segments = segmenter.flush()
            self._record_spans(segments, self._chars)
            for segment in segments:
                await self._queue_segment(segment, held)
            for segment in held:
                await self._segments.put(segment)
            await self._segments.put(None)

    def _speech_running_dry(self) -> bool:
        """True when speech has started, nothing waits to be spoken, and playback nears its end."""
        pacer = self._pacer
        return (
            pacer is not None
            and self.request.pipeline == "streaming"
            and not self._synthesizing
            and self._segments.empty()
            and pacer.ahead_seconds() < HURRY_BELOW_S
        )

    async def _queue_segment(self, segment: str, held: list[str]) -> None:
        if self.request.pipeline == "sequential":
            held.append(segment)
        else:
            await self._segments.put(segment)

    async def _speak(self, tts: TTSEngine) -> None:
        """Synthesizes queued segments and sends them as paced audio frames.

        A TTS failure is reported once; the text part of the turn goes on.
        """
        tid = self.request.turn_id
        rate = tts.sample_rate
        pacer = self._pacer = AudioPacer(rate)
        seq = 0
        started = False
        failed = False
        spoken = 0
        while (segment := await self._segments.get()) is not None:
            span = self.spans[spoken] if spoken < len(self.spans) else None
            spoken += 1
            if failed:
                continue
            if span is not None:
                span.audio_start_s = self._clock.audio_samples / rate
            self._synthesizing = True
            chunks = tts.synthesize(segment)
            try:
                while True:
                    t0 = self._clock.now()
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                    finally:
                        self._clock.synth_s += self._clock.now() - t0
                    if not started:
                        started = True
                        self._clock.sample_rate = rate
                        await self._out.send(AudioStart(turn_id=tid, sample_rate=rate))
                    if span is not None:
                        span.audio_end_s = (self._clock.audio_samples + chunk.size) / rate
                    for pcm in iter_frames(chunk, rate):
                        await pacer.before_send(len(pcm) // 2)
                        if self._clock.first_audio is None:
                            self._clock.first_audio = self._clock.now()
                        await self._out.send_audio(AudioFrame(turn_id=tid, seq=seq, pcm=pcm))
                        seq += 1
                    self._clock.audio_samples += chunk.size
            except EngineError as exc:
                failed = True
                log.warning("speech failed in turn %d: %s", tid, exc.user_message)
                await self._out.send(
                    Error(code=ERR_PROVIDER, message=f"Speech failed: {exc.user_message}", turn_id=tid)
                )
            finally:
                self._synthesizing = False
                await chunks.aclose()
        if started:
            await self._out.send(AudioEnd(turn_id=tid, frames=seq))
