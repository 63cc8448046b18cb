"""The turn pipeline with hand-written fake engines: order, cancel, failures, timings."""

from __future__ import annotations

import asyncio

import pytest

from backend.engine_hub import EngineHub
from backend.engines.base import ChatMessage
from backend.protocol import (
    Ask,
    AudioEnd,
    AudioFrame,
    AudioStart,
    Error,
    TextDelta,
    TurnDone,
    TurnStarted,
)
from backend.session import Conversation, Session
from backend.turn import Turn, TurnRequest
from tests.fakes.engines import ScriptedLLM, ToneTTS
from tests.recorder import RecordingOutput

REPLY = ["Paris", " is", " the", " capital", " of", " France.", " It", " is", " on", " the", " Seine."]
HISTORY = [ChatMessage("system", "Be brief.")]


def run(coro: object, timeout: float = 10.0) -> object:
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


def test_streaming_turn_order_and_timings() -> None:
    out = RecordingOutput()
    llm, tts = ScriptedLLM(REPLY), ToneTTS()
    turn = Turn(TurnRequest(1, "Capital of France?", HISTORY), llm, tts, out)

    status = run(turn.run())

    assert status == "completed"
    events = out.events
    assert isinstance(events[0], TurnStarted)
    deltas = [m.text for m in out.of(TextDelta)]  # type: ignore[attr-defined]
    assert "".join(deltas) == "".join(REPLY) == turn.reply
    start = next(i for i, e in enumerate(events) if isinstance(e, AudioStart))
    frames = [i for i, e in enumerate(events) if isinstance(e, AudioFrame)]
    end = next(i for i, e in enumerate(events) if isinstance(e, AudioEnd))
    assert start < frames[0] and frames[-1] < end
    assert [f.seq for f in out.frames()] == list(range(len(frames)))
    assert all(f.turn_id == 1 for f in out.frames())
    # every frame is at most 40 ms of 16 kHz int16
    assert max(len(f.pcm) for f in out.frames()) <= 640 * 2
    # both sentences were spoken, the first clause early
    assert len(tts.segments) >= 2
    assert "".join(tts.segments).replace(" ", "") == "ParisisthecapitalofFrance.ItisontheSeine."
    timings = turn.timings()
    assert timings.ttft_s is not None and timings.ttfa_s is not None
    assert timings.ttft_s <= timings.ttfa_s <= timings.total_s
    assert timings.tokens == len(REPLY)
    assert timings.audio_s > 0
    assert llm.seen[0][-1] == ChatMessage("user", "Capital of France?")


def test_audio_starts_before_the_reply_is_written() -> None:
    """Streaming: the first audio frame goes out before the last token (the LLM is slow here)."""
    out = RecordingOutput()
    turn = Turn(TurnRequest(1, "q", HISTORY), ScriptedLLM(REPLY, delay_s=0.02), ToneTTS(), out)
    run(turn.run())
    first_frame = next(i for i, e in enumerate(out.events) if isinstance(e, AudioFrame))
    last_delta = max(i for i, e in enumerate(out.events) if isinstance(e, TextDelta))
    assert first_frame < last_delta


def test_sequential_pipeline_speaks_after_the_whole_reply() -> None:
    out = RecordingOutput()
    turn = Turn(TurnRequest(1, "q", HISTORY, pipeline="sequential"), ScriptedLLM(REPLY, delay_s=0.01), ToneTTS(), out)
    run(turn.run())
    first_frame = next(i for i, e in enumerate(out.events) if isinstance(e, AudioFrame))
    last_delta = max(i for i, e in enumerate(out.events) if isinstance(e, TextDelta))
    assert first_frame > last_delta


def test_no_speech_when_not_asked() -> None:
    out = RecordingOutput()
    tts = ToneTTS()
    turn = Turn(TurnRequest(1, "q", HISTORY, speak=False), ScriptedLLM(REPLY), tts, out)
    assert run(turn.run()) == "completed"
    assert not out.frames() and not out.of(AudioStart) and tts.segments == []


def test_llm_failure_keeps_partial_reply() -> None:
    out = RecordingOutput()
    turn = Turn(TurnRequest(1, "q", HISTORY), ScriptedLLM(REPLY, fail_after=4), ToneTTS(), out)
    assert run(turn.run()) == "error"
    assert turn.reply == "Paris is the capital"
    errors = out.of(Error)
    assert len(errors) == 1 and "stopped answering" in errors[0].message  # type: ignore[attr-defined]


def test_tts_failure_reports_once_and_text_completes() -> None:
    out = RecordingOutput()
    turn = Turn(TurnRequest(1, "q", HISTORY), ScriptedLLM(REPLY), ToneTTS(fail=True), out)
    assert run(turn.run()) == "completed"
    assert turn.reply == "".join(REPLY)
    errors = out.of(Error)
    assert len(errors) == 1 and errors[0].message.startswith("Speech failed")  # type: ignore[attr-defined]


def _session(llm: ScriptedLLM, tts: ToneTTS | None) -> tuple[Session, RecordingOutput, EngineHub]:
    out = RecordingOutput()
    hub = EngineHub(llm, tts)
    return Session(hub, out, Conversation("Be brief.", 4096)), out, hub


def test_cancel_in_the_middle_commits_what_was_produced() -> None:
    async def scenario() -> None:
        llm = ScriptedLLM(REPLY * 20, delay_s=0.01)
        session, out, hub = _session(llm, ToneTTS())
        hub.start_loading()
        await session.ask(Ask(turn_id=5, text="Tell me a lot."))
        await out.wait_for(TextDelta, count=5)
        await session.stop(5)
        done = out.of(TurnDone)
        assert len(done) == 1
        assert done[0].status == "cancelled"  # type: ignore[attr-defined]
        partial = done[0].text  # type: ignore[attr-defined]
        assert 0 < len(partial) < len("".join(REPLY * 20))
        count = len(out.events)
        await asyncio.sleep(0.1)
        assert len(out.events) == count, "nothing may be sent after the turn is done"
        assert llm.closed_streams == 1
        # the partial reply is in the conversation the model sees next
        assert session.conversation.messages()[-1] == ChatMessage("assistant", partial)
        await hub.aclose()

    run(scenario())


def test_new_question_supersedes_running_turn() -> None:
    async def scenario() -> None:
        session, out, hub = _session(ScriptedLLM(REPLY * 10, delay_s=0.01), ToneTTS())
        hub.start_loading()
        await session.ask(Ask(turn_id=1, text="first"))
        await out.wait_for(TextDelta, count=2)
        await session.ask(Ask(turn_id=2, text="second"))
        await out.wait_for(TurnDone, count=2, timeout=20)
        done = out.of(TurnDone)
        assert [(d.turn_id, d.status) for d in done] == [(1, "cancelled"), (2, "completed")]  # type: ignore[attr-defined]
        # every message after the second TurnStarted belongs to turn 2
        started = next(i for i, e in enumerate(out.events) if isinstance(e, TurnStarted) and e.turn_id == 2)
        assert all(getattr(e, "turn_id", 2) == 2 for e in out.events[started:])
        await hub.aclose()

    run(scenario())


def test_failed_model_load_is_reported_per_turn() -> None:
    async def scenario() -> None:
        session, out, hub = _session(ScriptedLLM(REPLY, load_error="The model file is missing."), None)
        hub.start_loading()
        await session.ask(Ask(turn_id=1, text="hello"))
        await out.wait_for(TurnDone)
        assert out.of(TurnDone)[0].status == "error"  # type: ignore[attr-defined]
        assert "missing" in out.of(Error)[0].message  # type: ignore[attr-defined]
        assert hub.status.state == "error"
        await hub.aclose()

    run(scenario())


def test_conversation_is_append_only_and_bounded() -> None:
    conv = Conversation("sys", context_tokens=1000)
    conv.commit("q1", "a1")
    before = conv.messages()
    conv.commit("q2", "a2")
    assert conv.messages()[: len(before)] == before
    conv.commit("q3", "")
    assert len(conv.messages()) == 5
    for i in range(200):
        conv.commit(f"question {i}", "x" * 100)
    chars = sum(len(m.content) for m in conv.messages())
    assert chars < 3000
    assert conv.messages()[0] == ChatMessage("system", "sys")


@pytest.mark.parametrize("pipeline", ["streaming", "sequential"])
def test_timings_order(pipeline: str) -> None:
    out = RecordingOutput()
    turn = Turn(TurnRequest(1, "q", HISTORY, pipeline=pipeline), ScriptedLLM(REPLY), ToneTTS(), out)  # type: ignore[arg-type]
    run(turn.run())
    t = turn.timings()
    assert t.ttft_s is not None and t.ttfa_s is not None and t.ttft_s <= t.ttfa_s


def test_long_sentence_is_cut_early_when_speech_runs_dry() -> None:
    """A slow LLM writing one long sentence: rather than go silent, the next segment is cut short."""
    long_sentence = [f" word{i}" for i in range(30)] + ["."]
    pieces = ["Hi", " there", " friends.", *long_sentence]
    out = RecordingOutput()
    tts = ToneTTS(seconds_per_word=0.02)
    turn = Turn(TurnRequest(1, "q", HISTORY), ScriptedLLM(pieces, delay_s=0.03), tts, out)
    run(turn.run(), timeout=20)
    assert tts.segments[0] == "Hi there friends."
    assert len(tts.segments) >= 3
    assert len(tts.segments[1].split()) <= 8


def test_sequential_pipeline_never_hurries() -> None:
    long_sentence = [f" word{i}" for i in range(30)] + ["."]
    tts = ToneTTS(seconds_per_word=0.02)
    turn = Turn(
        TurnRequest(1, "q", HISTORY, pipeline="sequential"),
        ScriptedLLM(["Hi", " there", " friends.", *long_sentence], delay_s=0.01),
        tts,
        RecordingOutput(),
    )
    run(turn.run(), timeout=20)
    assert len(tts.segments) == 2
