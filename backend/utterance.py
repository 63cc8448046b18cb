"""One spoken question as it arrives: its audio, partial transcripts, and an early final one.

Audio comes in as 16 kHz mono int16 frames and is kept up to ``MAX_UTTERANCE_S``.
While it grows, a task re-transcribes the whole utterance at most every
``PARTIAL_INTERVAL_S`` and sends the text as a partial ``Transcript`` (one
transcription at a time: when the recognizer is still busy, the next partial
simply starts later). ``pause`` (the person went quiet) starts the final
transcription of the audio so far at once; ``resume`` (speech went on) drops it;
``final_text`` uses it when it still holds, so speech recognition overlaps the
end-of-speech silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import numpy as np

from backend.engines.base import Pcm16
from backend.engines.stt.base import STTEngine
from backend.protocol import MAX_UTTERANCE_S, VOICE_SAMPLE_RATE, Transcript, UtteranceStart
from backend.turn import TurnOutput

log = logging.getLogger("parley.utterance")

PARTIAL_INTERVAL_S: Final = 0.7
MIN_PARTIAL_S: Final = 0.6
"""No partial transcript before this much audio (Whisper guesses wildly on less)."""
MIN_NEW_AUDIO_S: Final = 0.25
STOP_TIMEOUT_S: Final = 10.0
MAX_SAMPLES: Final = int(MAX_UTTERANCE_S * VOICE_SAMPLE_RATE)

SttSource = Callable[[], STTEngine | None]
"""The speech recognizer to use now (the hub's, which may be swapped or still loading)."""


class Utterance:
    """The audio and transcripts of one voice turn; see the module docstring."""

    def __init__(
        self,
        start: UtteranceStart,
        stt: SttSource,
        out: TurnOutput,
        *,
        partials: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.start = start
        self._stt = stt
        self._out = out
        self._clock = clock
        self._chunks: list[bytes] = []
        self._samples = 0
        self._refused = False
        self._grew = asyncio.Event()
        self._paused = False
        self._early: asyncio.Task[tuple[str, float]] | None = None
        self._partials: asyncio.Task[None] | None = None
        if partials:
            self._partials = asyncio.create_task(self._send_partials(), name=f"partials-{start.turn_id}")

    @property
    def turn_id(self) -> int:
        return self.start.turn_id

    @property
    def seconds(self) -> float:
        return self._samples / VOICE_SAMPLE_RATE

    def add(self, pcm: bytes) -> str | None:
        """Appends int16 PCM; returns a message for the person the first time the limit is passed."""
        room = 2 * MAX_SAMPLES - 2 * self._samples
        if len(pcm) > room:
            pcm = pcm[: max(0, room)]
            if not self._refused:
                self._refused = True
                return (
                    f"The recording is longer than {MAX_UTTERANCE_S:.0f} s; "
                    f"only the first {MAX_UTTERANCE_S:.0f} s will be transcribed."
                )
        if pcm:
            self._chunks.append(pcm)
            self._samples += len(pcm) // 2
            self._grew.set()
        return None

    def audio(self) -> Pcm16:
        """All the audio so far, as one array."""
        if len(self._chunks) > 1:
            self._chunks = [b"".join(self._chunks)]
        return np.frombuffer(self._chunks[0], dtype="<i2").astype(np.int16) if self._chunks else _EMPTY

    def pause(self) -> None:
        """Starts the final transcription of the audio so far (unless one already runs)."""
        self._paused = True
        if self._early is None:
            self._early = asyncio.create_task(self._transcribe(self.audio()), name=f"stt-early-{self.turn_id}")

    async def resume(self) -> None:
        """Speech went on: drops the early transcription (awaited)."""
        self._paused = False
        early, self._early = self._early, None
        if early is not None:
            await _stop(early)
        self._grew.set()

    async def early_text(self) -> str | None:
        """The early final transcript once ready (None if there is none); raises like the recognizer."""
        early = self._early
        if early is None:
            return None
        text, _ = await asyncio.shield(early)
        return text

    async def final_text(self) -> tuple[str, float]:
        """The transcript of the whole utterance and how long recognizing it took (seconds).

        Partial transcripts stop here. Raises ``EngineError`` when recognition fails.
        """
        await self._stop_partials()
        early = self._early
        if early is not None:
            return await asyncio.shield(early)
        return await self._transcribe(self.audio())

    async def close(self) -> None:
        """Stops every task of this utterance and awaits them."""
        await self._stop_partials()
        early, self._early = self._early, None
        if early is not None:
            await _stop(early)

    async def _stop_partials(self) -> None:
        partials, self._partials = self._partials, None
        if partials is not None:
            await _stop(partials)

    async def _transcribe(self, audio: Pcm16) -> tuple[str, float]:
        stt = self._stt()
        if stt is None:
            return "", 0.0
        started = self._clock()
        text = await stt.transcribe(audio)
        return text.strip(), self._clock() - started

    async def _send_partials(self) -> None:
        """Sends partial transcripts while the audio grows; on cancel, stops (a running recognition is dropped)."""
        done_samples = 0
        shown = ""
        while True:
            await self._grew.wait()
            self._grew.clear()
            new = self._samples - done_samples
            if self._paused or self._samples < MIN_PARTIAL_S * VOICE_SAMPLE_RATE:
                continue
            if new < MIN_NEW_AUDIO_S * VOICE_SAMPLE_RATE or self._stt() is None:
                continue
            started = self._clock()
            done_samples = self._samples
            try:
                text, _ = await self._transcribe(self.audio())
            except Exception as exc:  # the final transcription reports failures; partials just stop
                log.warning("partial transcription failed, no more partials for turn %d: %s", self.turn_id, exc)
                return
            if text and text != shown and not self._paused:
                shown = text
                await self._out.send(Transcript(turn_id=self.turn_id, text=text, final=False))
            await asyncio.sleep(max(0.0, PARTIAL_INTERVAL_S - (self._clock() - started)))


_EMPTY: Final = np.zeros(0, dtype=np.int16)


async def _stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=STOP_TIMEOUT_S)
    if not done:
        log.error("%s did not stop within %.0f s", task.get_name(), STOP_TIMEOUT_S)
    elif not task.cancelled():
        with contextlib.suppress(BaseException):
            task.exception()  # retrieved: a failure of dropped work is not worth a warning
