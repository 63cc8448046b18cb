"""``PrefetchingLLM``: a reply started ahead is continued when the question matches, and stopped otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from backend import prefetch_llm
from backend.engines.base import ChatMessage, EngineError
from backend.prefetch_llm import PrefetchingLLM
from tests.fakes.engines import ScriptedLLM

QUESTION = [ChatMessage("system", "Be brief."), ChatMessage("user", "What is the capital of France?")]
OTHER = [ChatMessage("system", "Be brief."), ChatMessage("user", "What is the capital of Italy?")]


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 10))


async def collect(llm: PrefetchingLLM, messages: list[ChatMessage]) -> str:
    return "".join([piece async for piece in llm.stream(messages)])


def test_a_matching_question_continues_the_prefetched_reply() -> None:
    engine = ScriptedLLM(["Paris", " is", " the", " capital."], delay_s=0.01)

    async def scenario() -> None:
        llm = PrefetchingLLM(lambda: engine)
        await llm.prefetch(QUESTION)
        await asyncio.sleep(0.03)  # some pieces are written ahead
        assert await collect(llm, QUESTION) == "Paris is the capital."
        assert len(engine.seen) == 1 and not llm.prefetching

    run(scenario)


def test_another_question_stops_the_prefetch_and_asks_anew() -> None:
    engine = ScriptedLLM(["A", " reply."] * 50, delay_s=0.005)

    async def scenario() -> None:
        llm = PrefetchingLLM(lambda: engine)
        await llm.prefetch(QUESTION)
        await asyncio.sleep(0.02)
        reply = await collect(llm, OTHER)
        assert reply == "A reply." * 50
        assert [m[-1].content for m in engine.seen] == [QUESTION[-1].content, OTHER[-1].content]
        assert engine.closed_streams == 2  # the prefetched stream was stopped, not left running

    run(scenario)


def test_drop_stops_the_prefetch() -> None:
    engine = ScriptedLLM(["word "] * 500, delay_s=0.001)

    async def scenario() -> None:
        llm = PrefetchingLLM(lambda: engine)
        await llm.prefetch(QUESTION)
        await asyncio.sleep(0.01)
        await llm.drop()
        assert engine.closed_streams == 1 and not llm.prefetching

    run(scenario)


def test_an_unclaimed_prefetch_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefetch_llm, "PREFETCH_TTL_S", 0.05)
    engine = ScriptedLLM(["word "] * 500, delay_s=0.001)

    async def scenario() -> None:
        llm = PrefetchingLLM(lambda: engine)
        await llm.prefetch(QUESTION)
        await asyncio.sleep(0.2)
        assert engine.closed_streams == 1  # stopped by the expiry
        assert await collect(llm, QUESTION) == "word " * 500  # asked anew
        assert len(engine.seen) == 2

    run(scenario)


def test_a_failure_of_the_prefetched_reply_reaches_the_turn() -> None:
    engine = ScriptedLLM(["Paris", " is"], fail_after=1)

    async def scenario() -> None:
        llm = PrefetchingLLM(lambda: engine)
        await llm.prefetch(QUESTION)
        with pytest.raises(EngineError, match="stopped answering"):
            await collect(llm, QUESTION)

    run(scenario)
