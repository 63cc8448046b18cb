"""The linear echo model behind the fast barge-in path: ``LagTracker``, ``EchoPredictor``, ``NearEndDetector``."""

from __future__ import annotations

import numpy as np

from assistant.audio.echo_predictor import BLOCK, EchoPredictor, LagTracker, frame_dbfs
from assistant.audio.near_end import NearEndDetector
from tests.spoken import espeak, voiced_span

RATE = 16000


REPLY = (
    "The weather tomorrow looks mild, with light clouds in the morning and a little sun later on. "
    "Paris is the capital of France, and it sits on the river Seine. "
    "A rainbow forms when sunlight is bent and reflected inside raindrops."
)


def speech(text: str, db: float, voice: str = "en-us") -> np.ndarray:
    """``text`` spoken by espeak-ng, scaled so its loudest second is at about ``db`` dBFS."""
    audio = espeak(text, voice=voice).astype(np.float64)
    loud = max(frame_dbfs(audio[i : i + RATE]) for i in range(0, max(1, audio.size - RATE), RATE // 2))
    return audio * 10 ** ((db - loud) / 20)


def room(delay_ms: float, gain_db: float, seed: int = 7) -> np.ndarray:
    """A direct path after ``delay_ms`` and 30 ms of decaying reflections."""
    delay = int(delay_ms * RATE / 1000)
    tail = int(0.03 * RATE)
    response = np.zeros(delay + tail)
    gain = 10 ** (gain_db / 20)
    response[delay] = gain
    decay = np.exp(-np.arange(1, tail) / (0.008 * RATE))
    response[delay + 1 :] = gain * 0.2 * np.random.default_rng(seed).standard_normal(tail - 1) * decay
    return response


def pcm(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def frames(x: np.ndarray) -> list[np.ndarray]:
    usable = x.size - x.size % BLOCK
    return [pcm(x[i : i + BLOCK]) for i in range(0, usable, BLOCK)]


def echo_of(reference: np.ndarray, response: np.ndarray, noise_db: float = -65.0, seed: int = 3) -> np.ndarray:
    echo = np.convolve(reference, response)[: reference.size]
    return echo + np.random.default_rng(seed).standard_normal(reference.size) * 32768 * 10 ** (noise_db / 20)


def test_the_lag_tracker_finds_the_echo_and_follows_it_when_it_moves() -> None:
    tracker = LagTracker()
    reference = speech(REPLY, -18)
    half = reference.size // 2
    mic = np.concatenate([echo_of(reference[:half], room(37, -8)), echo_of(reference[half:], room(12, -8))])
    lags: list[int | None] = []
    for mic_frame, ref_frame in zip(frames(mic), frames(reference), strict=True):
        tracker.add(mic_frame, ref_frame)
        lags.append(tracker.lag)
    found = lags[half // BLOCK - 1]
    assert found is not None and abs(found - 37 * 16) <= 4, found
    assert lags[-1] is not None and abs(lags[-1] - 12 * 16) <= 4, lags[-1]
    first_seen = next(i for i, lag in enumerate(lags) if lag is not None)
    assert first_seen <= 100, f"the lag took {first_seen * 10} ms to find"
    assert tracker.changes == 2


def test_the_model_removes_the_echo_and_leaves_a_voice_over_it_whole() -> None:
    predictor = EchoPredictor()
    reference = speech(REPLY, -18)
    voice = np.zeros(reference.size)
    voice_at = reference.size - 3 * RATE
    person = speech("Wait, stop please, I have another question.", -30, voice="en-us+f3")  # 12 dB under
    voice[voice_at : voice_at + person.size] = person[: reference.size - voice_at]
    mic = echo_of(reference, room(25, -6)) + voice
    reduction, kept = [], []
    scene = zip(frames(mic), frames(reference), frames(voice), strict=True)
    for i, (mic_frame, ref_frame, voice_frame) in enumerate(scene):
        alone = i * BLOCK + BLOCK <= voice_at
        residual = predictor.process(mic_frame, ref_frame, adapt=alone)
        if alone and i * BLOCK > 2 * RATE and frame_dbfs(mic_frame) > -40:
            reduction.append(frame_dbfs(mic_frame) - frame_dbfs(residual))
        if not alone and frame_dbfs(voice_frame) > -40:
            kept.append(frame_dbfs(residual) - frame_dbfs(voice_frame))
    assert np.median(reduction) > 25, np.median(reduction)
    assert abs(float(np.median(kept))) < 3, kept  # the residue is the voice, not the echo


def run_detector(detector: NearEndDetector, mic: np.ndarray, reference: np.ndarray) -> list[int]:
    """Feeds a whole scene; the frame indexes of the onsets (the canceller's output stands in as silence)."""
    silent = np.zeros(BLOCK, dtype=np.int16)  # as if the canceller hid everything: only the model can tell
    return [
        i
        for i, (mic_frame, ref_frame) in enumerate(zip(frames(mic), frames(reference), strict=True))
        if detector.update(mic_frame, silent, ref_frame)
    ]


def test_a_voice_starting_over_the_echo_is_an_onset_within_three_frames() -> None:
    detector = NearEndDetector()
    reference = speech(REPLY, -18)
    person = speech("Hold on, that is enough.", -28, voice="en-us+f3")
    voice_at = reference.size - 3 * RATE
    voice = np.zeros(reference.size)
    voice[voice_at : voice_at + person.size] = person[: reference.size - voice_at]
    onset = voice_at + voiced_span(person.astype(np.int16))[0]
    mic = echo_of(reference, room(30, -6)) + voice
    onsets = run_detector(detector, mic, reference)  # (with nobody pausing the reply, more may follow)
    assert onsets and onset // BLOCK <= onsets[0] <= onset // BLOCK + 3, (onsets, onset // BLOCK)
    assert detector.last_onset_by_model


def test_echo_alone_and_clicks_in_it_are_no_onset() -> None:
    detector = NearEndDetector()
    reference = np.concatenate([speech(REPLY, -16), speech(REPLY, -14)])
    mic = echo_of(reference, room(45, -4))
    for at in range(int(3.3 * RATE), mic.size, int(1.7 * RATE)):  # a sample dropped here and there: a click
        mic[at : at + 30] += 8000 * np.hanning(30)
    assert run_detector(detector, mic, reference) == []
    assert detector.typical_reduction_db is not None and detector.typical_reduction_db > 20


def test_the_model_waits_for_a_new_reply_to_show_its_lag_before_it_speaks_up() -> None:
    """Between two replies the played and the captured timelines may slip apart: the first half second of a
    reply, while the model still predicts the old echo, must not look like a voice."""
    detector = NearEndDetector()
    reference = speech(REPLY, -18)
    run_detector(detector, echo_of(reference, room(20, -6)), reference)
    pause = np.zeros(int(0.8 * RATE))
    run_detector(detector, pause, pause)
    assert run_detector(detector, echo_of(reference, room(55, -6)), reference) == []


def test_the_model_follows_the_echo_when_it_moves_further_than_its_length() -> None:
    predictor = EchoPredictor()
    reference = speech(REPLY, -18)
    half = reference.size // 2
    mic = np.concatenate([echo_of(reference[:half], room(5, -6)), echo_of(reference[half:], room(200, -6))])
    reduction = []
    for i, (mic_frame, ref_frame) in enumerate(zip(frames(mic), frames(reference), strict=True)):
        residual = predictor.process(mic_frame, ref_frame, adapt=True)
        if i * BLOCK > half + 2 * RATE and frame_dbfs(mic_frame) > -40:
            reduction.append(frame_dbfs(mic_frame) - frame_dbfs(residual))
    assert predictor.lag is not None and abs(predictor.lag - 200 * 16) <= 4
    assert np.median(reduction) > 20, np.median(reduction)
