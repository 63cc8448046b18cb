"""A session: one connection's conversation and the one turn it may be running."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final

from backend.engine_hub import EngineHub
from backend.engines.base import ChatMessage, EngineError
from backend.history import RecordingOutput, SessionHistory
from backend.prefetch_llm import PrefetchingLLM
from backend.protocol import (
    ERR_INTERNAL,
    ERR_PROVIDER,
    ERR_STATE,
    ERR_STORE,
    Ask,
    Error,
    Regenerate,
    TurnDone,
    TurnStatus,
)
from backend.store import StoreError
from backend.turn import Turn, TurnOutput, TurnRequest

log = logging.getLogger("parley.session")

CANCEL_TIMEOUT_S: Final = 5.0
CHARS_PER_TOKEN: Final = 3


class Conversation:
    """The messages the LLM sees: a system prompt, then append-only user/assistant pairs.

    Appending only (never rewriting earlier messages) lets llama.cpp reuse its KV
    cache for the common prefix; the oldest pairs are dropped only when the
    conversation would no longer fit the context window.
    """

    def __init__(self, system_prompt: str, context_tokens: int) -> None:
        self._system = ChatMessage("system", system_prompt)
        self._pairs: list[tuple[ChatMessage, ChatMessage]] = []
        self._budget_chars = max(1000, context_tokens * CHARS_PER_TOKEN // 2)

    def messages(self) -> list[ChatMessage]:
        out = [self._system]
        for user, assistant in self._pairs:
            out += [user, assistant]
        return out

    def commit(self, question: str, reply: str) -> None:
        if not reply.strip():
            return  # a turn stopped before any word: nothing for the model to remember
        self._pairs.append((ChatMessage("user", question), ChatMessage("assistant", reply)))
        while len(self._pairs) > 1 and self._chars() > self._budget_chars:
            self._pairs.pop(0)

    def reset(self) -> None:
        self._pairs.clear()

    # stored conversations (issue 4)
    def load(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Replaces the history with stored (question, reply) pairs, oldest first."""
        self._pairs.clear()
        for question, reply in pairs:
            self.commit(question, reply)

    def set_system_prompt(self, system_prompt: str) -> None:
        self._system = ChatMessage("system", system_prompt)

    # barge-in (issue 3)
    def amend_last_reply(self, question: str, reply: str, kept: str) -> None:
        """Replaces the last reply (if it is ``reply`` to ``question``) with the part that was heard."""
        if self._pairs and self._pairs[-1][0].content == question and self._pairs[-1][1].content == reply:
            if kept.strip():
                self._pairs[-1] = (self._pairs[-1][0], ChatMessage("assistant", kept))
            else:
                self._pairs.pop()

    def _chars(self) -> int:
        return sum(len(u.content) + len(a.content) for u, a in self._pairs)


class Session:
    """Runs the turns of one connection, one at a time; a new question supersedes the old."""

    def __init__(
        self, hub: EngineHub, out: TurnOutput, conversation: Conversation, history: SessionHistory | None = None
    ) -> None:
        self._hub = hub
        self._out = out
        self.conversation = conversation
        self.history = history  # stored conversations (issue 4); None keeps them in memory only
        self._recording: RecordingOutput | None = None
        self._turn: Turn | None = None
        self._task: asyncio.Task[None] | None = None
        self.llm = PrefetchingLLM(lambda: self._hub.llm)  # voice turns start replies early (issue 3)

    def context(self) -> list[ChatMessage]:
        """The messages the model sees before the next question."""
        return self.conversation.messages()

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def turn_id(self) -> int | None:
        """The latest turn asked of this session, running or ended (resuming a session: issue 6)."""
        return self._turn.request.turn_id if self._turn is not None else None

    async def ask(self, ask: Ask, *, regenerate: bool = False) -> None:
        """Starts a turn for ``ask`` after stopping any turn still running.

        With a history, the question is stored first (not again when ``regenerate``).
        """
        await self.stop(reason="cancelled")
        out = await self._recorded_output(ask, regenerate)
        request = TurnRequest(
            turn_id=ask.turn_id,
            text=ask.text,
            history=self.conversation.messages(),
            speak=ask.speak,
            pipeline=ask.pipeline,
        )
        turn = Turn(request, self.llm, self._hub.tts, out)
        self._turn = turn
        self._task = asyncio.create_task(self._run(turn), name=f"turn-{ask.turn_id}")

    # ---- stored conversations (issue 4) ----------------------------------------------

    async def _recorded_output(self, ask: Ask, regenerate: bool) -> TurnOutput:
        """Where the turn sends its output: through the recorder of the stored reply, when stored."""
        self._recording = None
        if self.history is None:
            return self._out
        try:
            self._recording = await self.history.begin_turn(ask.turn_id, ask.text, self._out, regenerate=regenerate)
        except StoreError as exc:
            log.error("turn %d is not stored: %s", ask.turn_id, exc)
            await self._out.send(Error(code=ERR_STORE, message=f"This reply will not be saved: {exc}"))
            return self._out
        return self._recording

    async def regenerate(self, request: Regenerate) -> None:
        """Answers the current conversation's last question again; its old reply is deleted."""
        await self.stop(reason="cancelled")
        question: str | None = None
        if self.history is not None:
            try:
                question = await self.history.take_back_last_reply()
            except StoreError as exc:
                log.error("cannot regenerate: %s", exc)
        if question is None:
            message = "There is no reply to regenerate in this conversation."
            await self._out.send(Error(code=ERR_STATE, message=message, turn_id=request.turn_id))
            return
        ask = Ask(turn_id=request.turn_id, text=question, speak=request.speak, pipeline=request.pipeline)
        await self.ask(ask, regenerate=True)

    async def stop(
        self, turn_id: int | None = None, reason: TurnStatus = "cancelled", heard_s: float | None = None
    ) -> None:
        """Cancels the running turn (if ``turn_id`` matches), awaits it, commits what it produced.

        The client then gets ``TurnDone`` with ``reason`` as its status. With ``heard_s``
        (a barge-in), only the part of the reply its audio had said is kept, also when the
        turn had already finished while its audio was still playing.
        """
        task, turn = self._task, self._turn
        if turn_id is not None and turn is not None and turn.request.turn_id != turn_id:
            return
        if task is None or turn is None or task.done():
            if task is not None and turn is not None and heard_s is not None:
                await self._cut_to_heard(turn, heard_s)
            return
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=CANCEL_TIMEOUT_S)
        if not done:
            log.error("turn %d did not stop within %.0f s", turn.request.turn_id, CANCEL_TIMEOUT_S)
        if task.done() and not task.cancelled():
            if heard_s is not None:
                await self._cut_to_heard(turn, heard_s)
            return  # it finished on its own and already reported
        if heard_s is not None:
            turn.keep_heard(heard_s)
        self._finish(turn, reason)
        await self._out.send(
            TurnDone(turn_id=turn.request.turn_id, status=reason, text=turn.reply, timings=turn.timings())
        )

    async def _run(self, turn: Turn) -> None:
        """Waits for the engines, runs the turn, commits and reports it; on cancel, does neither."""
        tid = turn.request.turn_id
        status: TurnStatus
        try:
            await self._hub.wait_ready()
            status = await turn.run()
        except EngineError as exc:
            status = "error"
            turn.error = exc.user_message
            await self._out.send(Error(code=ERR_PROVIDER, message=exc.user_message, turn_id=tid))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("turn %d failed", tid)
            status = "error"
            turn.error = f"Something went wrong in the backend: {exc}"
            await self._out.send(Error(code=ERR_INTERNAL, message=turn.error, turn_id=tid))
        self._finish(turn, status)
        await self._out.send(
            TurnDone(turn_id=tid, status=status, text=turn.reply, timings=turn.timings(), error=turn.error)
        )

    def _finish(self, turn: Turn, status: TurnStatus) -> None:
        self.conversation.commit(turn.request.text, turn.reply)
        recording = self._recording
        if recording is not None and recording.turn_id == turn.request.turn_id:
            recording.finish(turn.reply, status, turn.timings())
        log.info("turn %d %s: %d chars, %s", turn.request.turn_id, status, len(turn.reply), turn.timings())

    # ---- barge-in (issue 3) ---------------------------------------------------------------

    async def _cut_to_heard(self, turn: Turn, heard_s: float) -> None:
        """A reply that finished while its audio still played was interrupted: keeps what was heard."""
        full = turn.reply
        kept = turn.keep_heard(heard_s)
        if kept == full:
            return
        self.conversation.amend_last_reply(turn.request.text, full, kept)
        recording = self._recording
        if recording is not None and self.history is not None and recording.turn_id == turn.request.turn_id:
            self.history.store.submit_reply(recording.reply_id, kept, "interrupted", turn.timings())
        log.info("turn %d interrupted after it ended: kept %d of %d chars", turn.request.turn_id, len(kept), len(full))
        await self._out.send(TurnDone(turn_id=turn.request.turn_id, status="interrupted", text=kept))

    async def close(self) -> None:
        """Cancels and awaits the running turn without reporting it (the connection is gone)."""
        await self.llm.drop()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=CANCEL_TIMEOUT_S)
            if self._turn is not None:
                self._finish(self._turn, "cancelled")
