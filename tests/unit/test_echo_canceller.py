"""The echo canceller: Parley's own voice from the speakers must not reach the VAD; a person must."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from assistant.audio.echo_canceller import FRAME_SAMPLES, EchoCanceller
from assistant.audio.vad import SileroVad, UtteranceSegmenter
from tests.spoken import RATE, Pcm16, espeak, silence

pytest.importorskip("pywebrtc_audio")

REPLY = (
    "Tomorrow will be mild with light clouds in the morning and some sun after lunch. "
    "Temperatures should reach about eighteen degrees, so a light jacket is enough. "
    "The afternoon is the best time for a walk in the park."
)
PERSON = "Wait, what about the weekend?"


def echo_of(reference: Pcm16, *, delay_ms: int = 60, gain_db: float = -12.0) -> npt.NDArray[np.float64]:
    """The reference as a microphone hears it in a small room: delayed, quieter, with reflections."""
    rng = np.random.default_rng(11)
    delay = delay_ms * RATE // 1000
    tail = 60 * RATE // 1000
    response = np.zeros(delay + tail)
    gain = 10 ** (gain_db / 20)
    response[delay] = gain
    response[delay + 1 :] = gain * 0.3 * rng.standard_normal(tail - 1) * np.exp(-np.arange(1, tail) / 240.0)
    echo: npt.NDArray[np.float64] = np.convolve(reference.astype(np.float64), response)[: reference.size]
    return echo


def microphone(reference: Pcm16, person: Pcm16 | None = None, person_at: int = 0) -> Pcm16:
    mic = echo_of(reference) + np.random.default_rng(2).standard_normal(reference.size) * 16  # -66 dBFS noise
    if person is not None:
        mic[person_at : person_at + person.size] += person
    return np.clip(np.rint(mic), -32768, 32767).astype(np.int16)


def cancel(canceller: EchoCanceller, mic: Pcm16, reference: Pcm16) -> Pcm16:
    usable = mic.size - mic.size % FRAME_SAMPLES
    return np.concatenate(
        [
            canceller.process(mic[i : i + FRAME_SAMPLES], reference[i : i + FRAME_SAMPLES])
            for i in range(0, usable, FRAME_SAMPLES)
        ]
    )


def utterance_starts(audio: Pcm16) -> list[int]:
    segmenter = UtteranceSegmenter(SileroVad())
    return [e.sample - e.audio.size for e in segmenter.feed(audio) if e.kind == "start"]


@pytest.fixture(scope="module")
def reply() -> Pcm16:
    return np.concatenate([espeak(REPLY, voice="en-us", words_per_minute=170), silence(0.5)])


@pytest.fixture(scope="module")
def person() -> Pcm16:
    return espeak(PERSON, voice="en-us+f3", words_per_minute=150)


def test_without_cancellation_the_echo_alone_triggers_the_vad(reply: Pcm16) -> None:
    mic = microphone(reply)

    assert utterance_starts(cancel(EchoCanceller(enabled=False), mic, reply))


def test_echo_only_is_removed_and_never_triggers_the_vad(reply: Pcm16) -> None:
    mic = microphone(reply)

    cleaned = cancel(EchoCanceller(), mic, reply)

    assert utterance_starts(cleaned) == []
    converged = slice(2 * RATE, cleaned.size)
    erle_db = 10 * np.log10(
        np.mean(mic[converged].astype(np.float64) ** 2) / (np.mean(cleaned[converged].astype(np.float64) ** 2) + 1e-9)
    )
    assert erle_db > 20.0


def test_a_person_speaking_over_the_echo_is_still_detected(reply: Pcm16, person: Pcm16) -> None:
    person_at = reply.size // 2
    mic = microphone(reply, person, person_at)

    starts = utterance_starts(cancel(EchoCanceller(), mic, reply))

    assert starts
    assert all(person_at - RATE // 2 <= s <= person_at + person.size for s in starts)


def test_disabled_passes_the_microphone_through() -> None:
    canceller = EchoCanceller(enabled=False)
    mic = np.arange(FRAME_SAMPLES, dtype=np.int16)

    out = canceller.process(mic, np.ones(FRAME_SAMPLES, dtype=np.int16))

    assert not canceller.enabled
    assert np.array_equal(out, mic)
    assert out is not mic


def test_no_reference_means_nothing_is_playing(person: Pcm16) -> None:
    canceller = EchoCanceller()
    audio = np.concatenate([silence(0.5), person, silence(1.0)])
    usable = audio.size - audio.size % FRAME_SAMPLES

    cleaned = np.concatenate(
        [canceller.process(audio[i : i + FRAME_SAMPLES], None) for i in range(0, usable, FRAME_SAMPLES)]
    )

    assert cleaned.dtype == np.int16 and cleaned.size == usable
    assert len(utterance_starts(cleaned)) == 1


def test_several_frames_at_once_are_accepted() -> None:
    canceller = EchoCanceller()

    out = canceller.process(np.zeros(3 * FRAME_SAMPLES, dtype=np.int16), None)

    assert out.shape == (3 * FRAME_SAMPLES,)


@pytest.mark.parametrize("enabled", [True, False])
def test_frames_of_the_wrong_shape_are_refused(enabled: bool) -> None:
    canceller = EchoCanceller(enabled=enabled)
    with pytest.raises(ValueError, match="multiple of 160"):
        canceller.process(np.zeros(100, dtype=np.int16), None)
    with pytest.raises(ValueError, match="int16"):
        canceller.process(np.zeros(160, dtype=np.float32), None)
    if enabled:
        with pytest.raises(ValueError, match="reference"):
            canceller.process(np.zeros(160, dtype=np.int16), np.zeros(320, dtype=np.int16))
