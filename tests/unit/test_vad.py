"""The Silero VAD and the utterance segmenter, on synthetic and espeak-ng speech."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from assistant.audio.vad import (
    FRAME_SAMPLES,
    SileroVad,
    UtteranceSegmenter,
    VadEvent,
    level_dbfs,
    silero_model_path,
    utterance_audio,
)
from tests.spoken import RATE, Pcm16, espeak, silence, voiced_span

SENTENCE = "Could you tell me what the weather will be like tomorrow?"
SECOND = "And please remind me to buy some bread."


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad()


def segment(
    audio: Pcm16, vad: SileroVad, *, block: int = 160, flush: bool = False, **options: object
) -> list[VadEvent]:
    vad.reset()
    segmenter = UtteranceSegmenter(vad, **options)  # type: ignore[arg-type]
    events: list[VadEvent] = []
    for offset in range(0, audio.size, block):
        events.extend(segmenter.feed(audio[offset : offset + block]))
    if flush:
        events.extend(segmenter.flush())
    return events


def kinds(events: Sequence[VadEvent]) -> list[str]:
    return [e.kind for e in events if e.kind != "speech"]


def utterances(events: Sequence[VadEvent]) -> list[list[VadEvent]]:
    found: list[list[VadEvent]] = []
    for event in events:
        if event.kind == "start":
            found.append([])
        if found:
            found[-1].append(event)
    return found


class ScriptedScorer:
    """A hand-written FrameScorer that returns the given probabilities in order."""

    def __init__(self, probabilities: Sequence[float]) -> None:
        self._probabilities = list(probabilities)
        self.calls = 0

    def probability(self, frame: Pcm16) -> float:
        value = self._probabilities[self.calls] if self.calls < len(self._probabilities) else 0.0
        self.calls += 1
        return value

    def reset(self) -> None:
        self.calls = 0


def frames(count: int, value: int = 0) -> Pcm16:
    return np.full(count * FRAME_SAMPLES, value, dtype=np.int16)


# ---- the model ---------------------------------------------------------------------------------


def test_the_model_ships_with_faster_whisper_and_its_signature_is_read(vad: SileroVad) -> None:
    assert silero_model_path().is_file()
    assert silero_model_path().parent.name == "assets"
    assert vad.context_samples == 64  # 576-sample input window minus the 512-sample frame
    assert 0.0 <= vad.probability(frames(1)) < 0.2


def test_the_model_rejects_frames_of_another_size(vad: SileroVad) -> None:
    with pytest.raises(ValueError, match="512"):
        vad.probability(np.zeros(480, dtype=np.int16))


def test_silence_gives_no_events(vad: SileroVad) -> None:
    assert segment(silence(3.0), vad) == []


def test_white_noise_gives_no_utterance(vad: SileroVad) -> None:
    noise = (np.random.default_rng(1).standard_normal(3 * RATE) * 1000).astype(np.int16)  # about -30 dBFS

    assert kinds(segment(noise, vad)) == []


def test_speech_is_one_utterance_with_its_pre_roll(vad: SileroVad) -> None:
    speech = espeak(SENTENCE)
    audio = np.concatenate([silence(1.0), speech, silence(1.5)])
    onset, offset = voiced_span(audio)

    events = segment(audio, vad)

    assert kinds(events) == ["start", "end"]
    start = events[0]
    start_position = start.sample - start.audio.size
    assert start.audio.size >= int(0.3 * RATE)  # the pre-roll plus the confirming frames
    assert start_position <= onset - int(0.1 * RATE)  # the audio reaches back before the onset
    whole = utterance_audio(events)
    assert whole.size == events[-1].sample - start_position
    assert np.array_equal(whole, audio[start_position : events[-1].sample])
    assert events[-1].sample >= offset  # nothing spoken is cut off


def test_a_pause_longer_than_the_end_silence_splits_two_utterances(vad: SileroVad) -> None:
    audio = np.concatenate([silence(0.5), espeak(SENTENCE), silence(1.2), espeak(SECOND), silence(3.0)])

    short_end = segment(audio, vad, end_silence_ms=600)
    long_end = segment(audio, vad, end_silence_ms=2500)

    assert kinds(short_end) == ["start", "end", "start", "end"]
    assert kinds(long_end) == ["start", "end"]


def test_the_end_comes_after_the_configured_silence(vad: SileroVad) -> None:
    audio = np.concatenate([silence(0.5), espeak(SENTENCE), silence(2.0)])
    _, offset = voiced_span(audio)

    ends = {}
    for end_silence_ms in (300, 900):
        events = segment(audio, vad, end_silence_ms=end_silence_ms)
        assert kinds(events) == ["start", "end"]
        ends[end_silence_ms] = events[-1].sample
        assert ends[end_silence_ms] - offset >= (end_silence_ms - 150) * RATE // 1000

    waited_ms = (ends[900] - ends[300]) * 1000 / RATE
    assert 600 - 64 <= waited_ms <= 600 + 64


def test_block_size_does_not_change_the_events(vad: SileroVad) -> None:
    audio = np.concatenate([silence(0.7), espeak(SECOND), silence(1.0)])

    small = segment(audio, vad, block=160)
    large = segment(audio, vad, block=4001)

    assert [(e.kind, e.sample) for e in small] == [(e.kind, e.sample) for e in large]


def test_flush_ends_the_utterance_in_progress(vad: SileroVad) -> None:
    audio = np.concatenate([silence(0.5), espeak(SENTENCE)[:RATE]])  # cut mid-sentence (push-to-talk released)

    events = segment(audio, vad, block=1000, flush=True)

    assert kinds(events) == ["start", "end"]
    assert events[-1].sample == audio.size


def test_the_webrtc_prefilter_skips_silence_and_keeps_speech(vad: SileroVad) -> None:
    audio = np.concatenate([silence(1.0), espeak(SECOND), silence(1.0)])
    vad.reset()
    segmenter = UtteranceSegmenter(vad, prefilter=True)

    events = segmenter.feed(audio)

    assert kinds(events) == ["start", "end"]
    assert segmenter.frames_skipped >= 20  # most of the leading second
    assert segmenter.frames_scored + segmenter.frames_skipped == audio.size // FRAME_SAMPLES


# ---- the segmenter's logic (scripted scores) ----------------------------------------------------------


def test_a_single_loud_frame_does_not_start_an_utterance() -> None:
    scorer = ScriptedScorer([0.0, 0.9, 0.0, 0.0, 0.9, 0.9, 0.0])

    events = UtteranceSegmenter(scorer, min_speech_ms=64).feed(frames(7))

    assert kinds(events) == ["start"]
    assert events[0].sample == 6 * FRAME_SAMPLES


def test_pre_roll_is_limited_and_includes_unconfirmed_frames() -> None:
    probabilities = [0.0] * 20 + [0.9] * 3
    audio = np.concatenate([frames(20, 1), frames(3, 2)])

    events = UtteranceSegmenter(ScriptedScorer(probabilities), pre_roll_ms=160, min_speech_ms=96).feed(audio)

    start = events[0]
    assert start.kind == "start"
    assert start.audio.size == (5 + 3) * FRAME_SAMPLES  # 160 ms is 5 frames of pre-roll
    assert start.audio[: 5 * FRAME_SAMPLES].tolist() == [1] * (5 * FRAME_SAMPLES)


def test_hysteresis_keeps_uncertain_frames_inside_the_utterance() -> None:
    # 0.4 is below the threshold (0.5) but above the silence level (0.35): it does not start a silence.
    probabilities = [0.9] * 3 + [0.4] * 40 + [0.1] * 19
    segmenter = UtteranceSegmenter(ScriptedScorer(probabilities), end_silence_ms=600, min_speech_ms=96)

    events = segmenter.feed(frames(len(probabilities)))

    assert kinds(events) == ["start", "end"]
    assert events[-1].sample == len(probabilities) * FRAME_SAMPLES


def test_a_long_utterance_is_ended_at_the_limit() -> None:
    segmenter = UtteranceSegmenter(ScriptedScorer([0.9] * 100), max_utterance_s=1.0, min_speech_ms=32)

    events = segmenter.feed(frames(100))

    assert kinds(events)[:2] == ["start", "end"]
    assert events[[e.kind for e in events].index("end")].sample == 32 * FRAME_SAMPLES  # 1 s = 31.25 frames


def test_threshold_can_change_while_listening() -> None:
    segmenter = UtteranceSegmenter(ScriptedScorer([0.4] * 10), min_speech_ms=32)
    assert segmenter.feed(frames(5)) == []

    segmenter.threshold = 0.3

    assert kinds(segmenter.feed(frames(5))) == ["start"]


def test_bad_input_and_settings_raise_clear_errors() -> None:
    segmenter = UtteranceSegmenter(ScriptedScorer([]))
    with pytest.raises(ValueError, match="int16"):
        segmenter.feed(np.zeros(512, dtype=np.float32))
    with pytest.raises(ValueError, match="threshold"):
        UtteranceSegmenter(ScriptedScorer([]), threshold=1.5)
    with pytest.raises(ValueError, match="threshold"):
        segmenter.threshold = 0.0
    with pytest.raises(ValueError, match="positive"):
        UtteranceSegmenter(ScriptedScorer([]), end_silence_ms=0)


def test_level_meter_in_dbfs() -> None:
    full_scale = np.full(160, 32767, dtype=np.int16)

    assert level_dbfs(full_scale) == pytest.approx(0.0, abs=0.01)
    assert level_dbfs(full_scale // 10) == pytest.approx(-20.0, abs=0.05)
    assert level_dbfs(np.zeros(160, dtype=np.int16)) == -96.0
    assert level_dbfs(np.zeros(0, dtype=np.int16)) == -96.0


def test_events_do_not_alias_the_callers_buffer() -> None:
    segmenter = UtteranceSegmenter(ScriptedScorer([0.9] * 4), min_speech_ms=32, pre_roll_ms=0)
    buffer = frames(2, 7)

    events = segmenter.feed(buffer)
    buffer[:] = 0  # an audio callback reuses its buffer

    assert [e.kind for e in events] == ["start", "speech"]
    assert all((e.audio == 7).all() for e in events)
