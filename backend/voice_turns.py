"""The spoken questions of one connection: from ``UtteranceStart`` to a question for the session.

The server keeps one ``VoiceTurns`` next to each ``Session``. An utterance collects
the microphone audio and sends partial transcripts (``Utterance``). When the person
goes quiet (``UtterancePause``), its final transcription starts, and as soon as the
words are known the session's language model starts writing the reply into a
hidden buffer (``PrefetchingLLM``). At ``UtteranceEnd`` the final ``Transcript`` is
sent and the words become a question through ``Session.ask``, exactly like a typed
one, whose model stream is then the prefetched one. ``UtteranceResume`` drops the
early work. Every utterance ends with a ``TurnDone``: the session's, or one sent
here when it is cancelled, fails, or holds no words.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final, Protocol

from backend.engine_hub import EngineHub
from backend.engines.base import ChatMessage, EngineError
from backend.engines.factory import stt_gives_partials
from backend.prefetch_llm import PrefetchingLLM
from backend.protocol import (
    ERR_MALFORMED,
    ERR_PROVIDER,
    ERR_STATE,
    ERR_TOO_LARGE,
    NO_SPEECH_MESSAGE,
    VOICE_SAMPLE_RATE,
    Ask,
    AudioFrame,
    Configure,
    DeleteConversation,
    Error,
    ExportConversation,
    ListConversations,
    Message,
    RenameConversation,
    RestoreConversation,
    SearchConversations,
    Transcript,
    TurnDone,
    TurnStatus,
    UtteranceStart,
)
from backend.turn import TurnOutput
from backend.utterance import Utterance

log = logging.getLogger("parley.voice")

STOP_TIMEOUT_S: Final = 10.0
LEAVES_UTTERANCES: Final[tuple[type[Message], ...]] = (
    ListConversations,
    SearchConversations,
    ExportConversation,
    RenameConversation,
    DeleteConversation,
    RestoreConversation,
    Configure,
)
"""Requests that leave an utterance in progress alone; any other (Ask, a new conversation...) drops it."""


class VoiceSession(Protocol):
    """What voice turns need from the ``Session``."""

    @property
    def llm(self) -> PrefetchingLLM: ...

    def context(self) -> list[ChatMessage]:
        """The messages the model sees before a new question."""
        ...

    async def ask(self, ask: Ask) -> None: ...

    async def stop(self, turn_id: int | None = None, reason: TurnStatus = "cancelled") -> None: ...


class VoiceTurns:
    """Receives utterances for one session; see the module docstring."""

    def __init__(self, session: VoiceSession, hub: EngineHub, out: TurnOutput) -> None:
        self._session = session
        self._hub = hub
        self._out = out
        self._utterance: Utterance | None = None
        self._early_reply: asyncio.Task[None] | None = None
        self._ending: asyncio.Task[None] | None = None
        self._ending_turn: int | None = None

    @property
    def available(self) -> bool:
        """Speech recognition is configured (it may still be loading)."""
        return self._hub.stt is not None or self._hub.status.state == "loading"

    async def start(self, start: UtteranceStart) -> None:
        """Opens an utterance; the running turn and any earlier utterance are stopped first."""
        await self.drop()
        await self._session.stop(reason="cancelled")
        tid = start.turn_id
        if start.sample_rate != VOICE_SAMPLE_RATE:
            message = f"Voice audio must be {VOICE_SAMPLE_RATE} Hz mono int16, not {start.sample_rate} Hz."
            await self._fail(tid, ERR_MALFORMED, message)
            return
        if not self.available:
            reason = self._hub.stt_problem or "speech recognition is turned off in the backend settings"
            await self._fail(tid, ERR_STATE, f"Voice input is unavailable: {reason}.")
            return
        stt = self._hub.stt
        partials = stt is None or stt_gives_partials(stt)
        self._utterance = Utterance(start, lambda: self._hub.stt, self._out, partials=partials)
        log.info("utterance %d started", tid)

    async def audio(self, frame: AudioFrame) -> None:
        """Adds microphone audio to the open utterance of ``frame.turn_id``."""
        utterance = self._utterance
        if utterance is None or utterance.turn_id != frame.turn_id:
            if frame.turn_id != self._ending_turn:  # frames in flight after the end are harmless
                await self._out.send(
                    Error(code=ERR_STATE, message="Audio arrived outside of an utterance.", turn_id=frame.turn_id)
                )
            return
        problem = utterance.add(frame.pcm)
        if problem is not None:
            await self._out.send(Error(code=ERR_TOO_LARGE, message=problem, turn_id=frame.turn_id))

    async def pause(self, turn_id: int) -> None:
        """The person went quiet: starts the final transcription, then the reply, in the background."""
        utterance = self._open(turn_id)
        if utterance is None or self._early_reply is not None:
            return
        utterance.pause()
        self._early_reply = asyncio.create_task(self._start_early(utterance), name=f"early-reply-{turn_id}")

    async def resume(self, turn_id: int) -> None:
        """Speech went on: the early transcription and reply are dropped."""
        utterance = self._open(turn_id)
        if utterance is None:
            return
        await self._stop_early()
        await utterance.resume()

    async def end(self, turn_id: int) -> None:
        """Closes the utterance; its transcript becomes the question (in the background)."""
        utterance = self._open(turn_id)
        if utterance is None:
            return
        self._utterance = None
        self._ending_turn = turn_id
        self._ending = asyncio.create_task(self._finish(utterance), name=f"utterance-end-{turn_id}")

    async def cancel(self, turn_id: int) -> bool:
        """Stops the utterance of ``turn_id`` before it became a turn; False if there is none."""
        utterance = self._utterance
        ending = self._ending is not None and not self._ending.done() and self._ending_turn == turn_id
        if not ending and (utterance is None or utterance.turn_id != turn_id):
            return False
        await self.drop()
        await self._out.send(TurnDone(turn_id=turn_id, status="cancelled"))
        return True

    async def drop(self) -> None:
        """Forgets the utterance in progress and its early work (awaited); sends nothing."""
        utterance, self._utterance = self._utterance, None
        await self._stop_early()
        ending, self._ending = self._ending, None
        if ending is not None and not ending.done():
            ending.cancel()
            await asyncio.wait([ending], timeout=STOP_TIMEOUT_S)
        if utterance is not None:
            await utterance.close()

    # ---- internals ----------------------------------------------------------------------

    def _open(self, turn_id: int) -> Utterance | None:
        utterance = self._utterance
        return utterance if utterance is not None and utterance.turn_id == turn_id else None

    async def _start_early(self, utterance: Utterance) -> None:
        """Waits for the early transcript and starts the reply to it; on cancel, stops both."""
        try:
            await self._hub.wait_ready()
            text = await utterance.early_text()
        except EngineError:
            return  # the final transcription reports it
        if text:
            log.debug("utterance %d: early transcript %r; writing the reply ahead", utterance.turn_id, text[:60])
            await self._session.llm.prefetch([*self._session.context(), ChatMessage("user", text)])

    async def _stop_early(self) -> None:
        early, self._early_reply = self._early_reply, None
        if early is not None and not early.done():
            early.cancel()
            await asyncio.wait([early], timeout=STOP_TIMEOUT_S)
        await self._session.llm.drop()

    async def _finish(self, utterance: Utterance) -> None:
        """Sends the final transcript and asks the question; on cancel, sends nothing more."""
        tid = utterance.turn_id
        try:
            await self._hub.wait_ready()
            if self._early_reply is not None:
                await asyncio.wait([self._early_reply], timeout=STOP_TIMEOUT_S)  # the reply is on its way
            text, stt_s = await utterance.final_text()
        except EngineError as exc:
            await utterance.close()
            await self._session.llm.drop()
            await self._fail(tid, ERR_PROVIDER, f"Speech recognition failed: {exc.user_message}")
            return
        await utterance.close()
        self._early_reply = None
        log.info("utterance %d: %.1f s of audio, transcribed in %.2f s: %r", tid, utterance.seconds, stt_s, text[:80])
        await self._out.send(Transcript(turn_id=tid, text=text, final=True, stt_s=round(stt_s, 4)))
        if not text:
            await self._session.llm.drop()
            await self._out.send(TurnDone(turn_id=tid, status="cancelled", error=NO_SPEECH_MESSAGE))
            return
        start = utterance.start
        await self._session.ask(Ask(turn_id=tid, text=text, speak=start.speak, pipeline=start.pipeline))

    async def _fail(self, turn_id: int, code: str, message: str) -> None:
        await self._out.send(Error(code=code, message=message, turn_id=turn_id))
        await self._out.send(TurnDone(turn_id=turn_id, status="error", error=message))
