"""A session: one connection's conversation and the one turn it may be running."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from backend.engine_hub import EngineHub
from backend.engines.base import ChatMessage, EngineError
from backend.protocol import (
    ERR_INTERNAL,
    ERR_PROVIDER,
    Ask,
    Error,
    TurnDone,
    TurnStatus,
)
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

    def _chars(self) -> int:
        return sum(len(u.content) + len(a.content) for u, a in self._pairs)


class Session:
    """Runs the turns of one connection, one at a time; a new question supersedes the old."""

    def __init__(self, hub: EngineHub, out: TurnOutput, conversation: Conversation) -> None:
        self._hub = hub
        self._out = out
        self.conversation = conversation
        self._turn: Turn | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def ask(self, ask: Ask) -> None:
        """Starts a turn for ``ask`` after stopping any turn still running."""
        await self.stop(reason="cancelled")
        request = TurnRequest(
            turn_id=ask.turn_id,
            text=ask.text,
            history=self.conversation.messages(),
            speak=ask.speak,
            pipeline=ask.pipeline,
        )
        turn = Turn(request, self._hub.llm, self._hub.tts, self._out)
        self._turn = turn
        self._task = asyncio.create_task(self._run(turn), name=f"turn-{ask.turn_id}")

    async def stop(self, turn_id: int | None = None, reason: TurnStatus = "cancelled") -> None:
        """Cancels the running turn (if ``turn_id`` matches), awaits it, commits what it produced.

        The client then gets ``TurnDone`` with ``reason`` as its status.
        """
        task, turn = self._task, self._turn
        if task is None or turn is None or task.done():
            return
        if turn_id is not None and turn.request.turn_id != turn_id:
            return
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=CANCEL_TIMEOUT_S)
        if not done:
            log.error("turn %d did not stop within %.0f s", turn.request.turn_id, CANCEL_TIMEOUT_S)
        if task.done() and not task.cancelled():
            return  # it finished on its own and already reported
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
        log.info("turn %d %s: %d chars, %s", turn.request.turn_id, status, len(turn.reply), turn.timings())

    async def close(self) -> None:
        """Cancels and awaits the running turn without reporting it (the connection is gone)."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=CANCEL_TIMEOUT_S)
            if self._turn is not None:
                self._finish(self._turn, "cancelled")
