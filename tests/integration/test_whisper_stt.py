"""WhisperLocalSTT with the packaged Whisper models on espeak-ng speech."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest

from backend.engines.base import EngineError, Pcm16
from backend.engines.stt.whisper_local import WhisperLocalSTT, default_threads
from backend.models.whisper_models import WhisperModels
from tests.integration.conftest import WhisperSettings as Settings
from tests.integration.conftest import ignore_progress, run_bounded
from tests.spoken import espeak, silence

SENTENCES = (
    "What is the weather like in Paris today?",
    "Can you tell me a short story about a brave little cat?",
    "How far away is the moon from the earth?",
    "I would like to learn how to cook pasta.",
    "Remind me to call my mother tomorrow morning.",
    "Please play some quiet music in the living room.",
)
MAX_WER = 0.15


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Word-level edit distance summed over all pairs, divided by the reference word count."""
    errors = total = 0
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        ref, hyp = words(reference), words(hypothesis)
        row = list(range(len(hyp) + 1))
        for i, word in enumerate(ref, 1):
            previous, row[0] = row[:], i
            for j, other in enumerate(hyp, 1):
                row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (word != other))
        errors += row[len(hyp)]
        total += len(ref)
    return errors / max(total, 1)


def test_word_error_rate_counts_substitutions_insertions_and_deletions() -> None:
    assert word_error_rate(["the cat sat"], ["The cat sat."]) == 0.0
    assert word_error_rate(["the cat sat"], ["the dog sat"]) == pytest.approx(1 / 3)
    assert word_error_rate(["the cat sat"], ["the cat"]) == pytest.approx(1 / 3)
    assert word_error_rate(["the cat", "a b c d"], ["the cat sat down", ""]) == pytest.approx(6 / 6)


def transcribe_all(engine: WhisperLocalSTT, clips: list[Pcm16]) -> list[str]:
    async def scenario() -> list[str]:
        return [await asyncio.wait_for(engine.transcribe(clip), 60) for clip in clips]

    return run_bounded(scenario(), 300)


@pytest.mark.slow
def test_tiny_en_transcribes_spoken_sentences(tiny: WhisperLocalSTT) -> None:
    clips = [np.concatenate([silence(0.3), espeak(s), silence(0.3)]) for s in SENTENCES]

    texts = transcribe_all(tiny, clips)

    assert tiny.name == "whisper-tiny.en (embedded)"
    assert tiny.language == "en"
    wer = word_error_rate(list(SENTENCES), texts)
    assert wer < MAX_WER, f"WER {wer:.0%}: {texts}"


@pytest.mark.slow
def test_a_growing_buffer_gives_partial_transcripts(tiny: WhisperLocalSTT) -> None:
    speech = espeak("Remind me to call my mother tomorrow morning.")
    halfway = speech[: speech.size // 2]

    partial, final = transcribe_all(tiny, [halfway, speech])

    assert 0 < len(words(partial)) < len(words(final))
    assert words(partial)[0].startswith("remind")
    assert "morning" in words(final)
    assert "morning" not in words(partial)


@pytest.mark.slow
def test_a_cancelled_transcription_leaves_the_engine_usable(tiny: WhisperLocalSTT) -> None:
    speech = espeak("How far away is the moon from the earth?")

    async def scenario() -> str:
        first = asyncio.ensure_future(tiny.transcribe(speech))
        second = asyncio.ensure_future(tiny.transcribe(speech))  # queued behind the first
        await asyncio.sleep(0.05)
        second.cancel()
        first.cancel()
        await asyncio.wait({first, second}, timeout=30)
        return await asyncio.wait_for(tiny.transcribe(speech), 60)

    text = run_bounded(scenario(), 120)

    assert "moon" in words(text)


@pytest.mark.slow
def test_silence_is_empty_and_bad_audio_is_refused(tiny: WhisperLocalSTT) -> None:
    assert transcribe_all(tiny, [silence(0.05), silence(2.0)]) == ["", ""]
    with pytest.raises(EngineError, match="16 kHz mono int16"):
        transcribe_all(tiny, [np.zeros((100, 2), dtype=np.int16)])
    with pytest.raises(EngineError, match="at most 120 s"):
        transcribe_all(tiny, [silence(121.0)])


@pytest.mark.slow
def test_base_is_assembled_from_its_two_packages_and_transcribes(tmp_path: Path) -> None:
    engine = WhisperLocalSTT(Settings(model="base", threads=1), WhisperModels(tmp_path))
    clips = [espeak(s) for s in SENTENCES[:3]]

    async def scenario() -> list[str]:
        try:
            await asyncio.wait_for(engine.load(ignore_progress), 120)
            return [await asyncio.wait_for(engine.transcribe(c), 60) for c in clips]
        finally:
            await asyncio.wait_for(engine.aclose(), 30)

    texts = run_bounded(scenario(), 300)

    assert (tmp_path / "models" / "whisper-base" / "model.bin").stat().st_size == 145_217_532
    assert engine.name == "whisper-base (embedded)"
    assert engine.language == "en"
    assert word_error_rate(list(SENTENCES[:3]), texts) < MAX_WER, texts


def test_transcribing_before_loading_is_a_clear_error(tmp_path: Path) -> None:
    engine = WhisperLocalSTT(Settings(), WhisperModels(tmp_path))

    with pytest.raises(EngineError, match="not loaded"):
        run_bounded(engine.transcribe(silence(1.0)), 10)


def test_an_unknown_model_fails_to_load_with_the_choices(tmp_path: Path) -> None:
    engine = WhisperLocalSTT(Settings(model="huge"), WhisperModels(tmp_path))

    with pytest.raises(EngineError, match="use tiny, base or a path"):
        run_bounded(engine.load(ignore_progress), 10)


def test_threads_default_to_at_most_two() -> None:
    assert default_threads(3) == 3
    assert 1 <= default_threads(0) <= 2
