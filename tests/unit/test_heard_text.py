"""Cutting a reply to what was heard: spans of text and audio, and the turn that records them."""

from __future__ import annotations

import asyncio

import pytest

from backend.engines.base import ChatMessage
from backend.heard_text import SpokenSpan, heard_cut, split_text_range
from backend.turn import Turn, TurnRequest
from tests.fakes.engines import ScriptedLLM, ToneTTS
from tests.recorder import RecordingOutput

REPLY = "One two three four. Five six seven eight nine ten."
SPANS = [SpokenSpan(0, 20, 0.0, 1.0), SpokenSpan(20, len(REPLY), 1.0, 2.5)]


def test_whole_segments_heard_are_kept() -> None:
    assert heard_cut(REPLY, SPANS, 1.0) == "One two three four."
    assert heard_cut(REPLY, SPANS, 9.0) == REPLY


def test_the_segment_being_spoken_keeps_its_share_of_words_rounded_down() -> None:
    assert heard_cut(REPLY, SPANS, 0.5) == "One two"  # half of four words
    assert heard_cut(REPLY, SPANS, 0.49) == "One"
    assert heard_cut(REPLY, SPANS, 1.0 + 1.5 * 0.5) == "One two three four. Five six seven"


def test_nothing_heard_keeps_nothing() -> None:
    assert heard_cut(REPLY, SPANS, 0.0) == ""
    assert heard_cut(REPLY, [SpokenSpan(0, 20)], 3.0) == ""  # never synthesized: never heard
    assert heard_cut(REPLY, [], 3.0) == ""


def test_text_shared_by_segments_of_one_chunk_is_split_by_their_length() -> None:
    assert split_text_range(10, 40, ["aaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbb"]) == [(10, 20), (20, 40)]
    assert split_text_range(0, 5, ["x"]) == [(0, 5)]
    assert split_text_range(0, 5, []) == []


@pytest.mark.parametrize("heard_s", [0.3, 0.8, 1.6, 5.0])
def test_a_turn_records_what_each_segment_said_and_cuts_to_it(heard_s: float) -> None:
    pieces = ["Paris", " is", " the", " capital", " of", " France.", " It", " sits", " on", " the", " Seine."]
    tts = ToneTTS(sample_rate=16000, seconds_per_word=0.1)
    request = TurnRequest(1, "Capital?", [ChatMessage("system", "Brief.")])
    turn = Turn(request, ScriptedLLM(pieces), tts, RecordingOutput())
    asyncio.run(asyncio.wait_for(turn.run(), 10))
    full = turn.reply
    assert [full[s.text_start : s.text_end].split() for s in turn.spans] == [seg.split() for seg in tts.segments]
    ends = [s.audio_end_s for s in turn.spans]
    assert all(e is not None for e in ends) and ends == sorted(ends)  # type: ignore[type-var]

    kept = turn.keep_heard(heard_s)

    assert full.startswith(kept) and turn.reply == kept
    words_heard = int(heard_s / 0.1 + 1e-6)  # 0.1 s per word, a word half heard is not kept
    assert len(kept.split()) == min(len(full.split()), max(0, words_heard))


def test_a_turn_without_speech_keeps_its_whole_reply() -> None:
    request = TurnRequest(1, "Hi?", [], speak=False)
    turn = Turn(request, ScriptedLLM(["Hello", " there."]), ToneTTS(), RecordingOutput())
    asyncio.run(asyncio.wait_for(turn.run(), 10))
    assert turn.keep_heard(0.0) == "Hello there."
