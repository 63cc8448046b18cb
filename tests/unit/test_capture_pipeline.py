"""``CapturePipeline``: resampling, echo cancellation against the player's tap, voice events, timing."""

from __future__ import annotations

import numpy as np

from assistant.audio.capture_pipeline import UNSETTLED_FRAMES, CapturePipeline
from assistant.audio.echo_canceller import EchoCanceller
from assistant.audio.echo_gate import EchoGate
from assistant.audio.near_end import NearEndDetector
from assistant.audio.playback_tap import PlaybackTap
from assistant.audio.resample import resample
from assistant.audio.vad import SileroVad, UtteranceSegmenter
from tests.spoken import espeak, silence

T0 = 1000.0


def feed(pipeline: CapturePipeline, audio: np.ndarray, rate: int, start: float, block_s: float = 0.01) -> list:
    block = int(rate * block_s)
    return [pipeline.process(audio[i : i + block], start + i / rate) for i in range(0, audio.size, block)]


def play(tap: PlaybackTap, audio: np.ndarray, at: float) -> None:
    """Writes ``audio`` to the tap as the player hands it over: 1024-sample blocks, the first sounding at ``at``."""
    for i in range(0, audio.size, 1024):
        tap.write(audio[i : i + 1024], 16000, at + i / 16000)


def echo_of(audio: np.ndarray, delay_s: float) -> np.ndarray:
    """``audio`` as the microphone hears it back: ``delay_s`` later, at half its level."""
    delay = int(delay_s * 16000)
    return np.concatenate([np.zeros(delay, dtype=np.int16), (audio[:-delay] * 0.5).astype(np.int16)])


def test_a_48k_microphone_is_resampled_and_speech_becomes_one_utterance() -> None:
    speech = np.concatenate([silence(0.5), espeak("Please play some quiet music."), silence(1.0)])
    pipeline = CapturePipeline(48000, UtteranceSegmenter(SileroVad()), EchoCanceller(enabled=False))
    results = feed(pipeline, resample(speech, 16000, 48000), 48000, T0)
    kinds = [e.kind for r in results for e in r.events]
    assert kinds.count("start") == 1 and kinds.count("end") == 1
    clean = np.concatenate([r.audio for r in results])
    assert abs(clean.size - speech.size) <= 480
    assert all(b.captured_at >= a.captured_at for a, b in zip(results, results[1:], strict=False))
    assert abs(results[-1].captured_at - (T0 + (speech.size - 160) / 16000)) < 0.02
    assert max(r.level_dbfs for r in results) > -30 and min(r.level_dbfs for r in results if r.audio.size) < -90
    assert pipeline.recent(0.3).size == int(0.3 * 16000)


def test_the_echo_of_what_the_tap_played_is_removed() -> None:
    reply = espeak("The weather tomorrow looks mild, with light clouds in the morning and sun after lunch.")
    tap = PlaybackTap(seconds=20, clock=lambda: T0)
    play(tap, reply, T0)  # the player wrote its blocks 60 ms ahead of the microphone
    echo = echo_of(reply, 0.03)
    gate = EchoGate(SileroVad())
    pipeline = CapturePipeline(16000, UtteranceSegmenter(gate), EchoCanceller(), tap, gate=gate)
    results = feed(pipeline, echo, 16000, T0)
    clean = np.concatenate([r.audio for r in results]).astype(np.float64)
    later = slice(16000, clean.size)  # after the canceller's first second
    removed = 10 * np.log10(np.mean(echo[later].astype(np.float64) ** 2) / (np.mean(clean[later] ** 2) + 1))
    assert removed > 20, f"only {removed:.0f} dB of echo removed"
    assert not [e for r in results for e in r.events if e.kind == "start"], "the echo is not an utterance"


def test_after_a_slip_of_the_played_timeline_the_microphone_is_not_trusted_for_a_while_of_playback() -> None:
    tap = PlaybackTap(seconds=5, clock=lambda: T0)
    pipeline = CapturePipeline(16000, UtteranceSegmenter(SileroVad()), EchoCanceller(), tap)
    assert not feed(pipeline, silence(0.1), 16000, T0)[-1].unsettled
    tap.disruptions += 1  # the player's device ran dry
    quiet = feed(pipeline, silence(2.0), 16000, T0 + 0.1)
    assert all(r.unsettled for r in quiet), "silence teaches the canceller nothing: still re-learning"
    reply = espeak("The weather tomorrow looks mild, with light clouds in the morning and sun after lunch.")
    play(tap, reply, T0 + 2.1)
    playing = feed(pipeline, (reply * 0.3).astype(np.int16), 16000, T0 + 2.1)
    unsettled = [r.unsettled for r in playing]
    assert unsettled[0] and not unsettled[-1]
    assert UNSETTLED_FRAMES <= sum(unsettled) + 1 < reply.size // 160, "1.5 s of playback, within the reply"


class BrokenDetector(NearEndDetector):
    """A barge-in detector with a bug in it."""

    def update(self, raw: np.ndarray, clean: np.ndarray, reference: np.ndarray, *, trusted: bool = True) -> bool:
        raise ZeroDivisionError("a bug")


def test_a_failing_barge_in_detector_is_dropped_and_the_microphone_goes_on() -> None:
    reply = espeak("The weather tomorrow looks mild, with light clouds in the morning.")
    tap = PlaybackTap(seconds=20, clock=lambda: T0)
    play(tap, reply, T0)
    pipeline = CapturePipeline(16000, UtteranceSegmenter(SileroVad()), EchoCanceller(), tap, near_end=BrokenDetector())
    results = feed(pipeline, (reply * 0.3).astype(np.int16), 16000, T0)
    assert pipeline.near_end is None
    assert sum(r.audio.size for r in results) >= reply.size - 480, "every block was still cleaned and passed on"


def test_an_echo_ahead_of_its_reference_is_realigned_behind_it() -> None:
    """The microphone's capture times run 60 ms early: its echo comes before the reference it is the echo of."""
    reply = np.concatenate([espeak(text) for text in ("The weather tomorrow looks mild.", "Paris sits on the Seine.")])
    tap = PlaybackTap(seconds=20, clock=lambda: T0)
    play(tap, reply, T0)
    echo = echo_of(reply, 0.01)
    pipeline = CapturePipeline(16000, UtteranceSegmenter(SileroVad()), EchoCanceller(), tap, near_end=NearEndDetector())
    assert pipeline.echo_delay_s is None
    feed(pipeline, echo, 16000, T0 - 0.06)
    assert pipeline.realignments == 1
    delay = pipeline.echo_delay_s  # on the microphone's clock: 10 ms of way back, 60 ms of clock error
    assert delay is not None and abs(delay - (0.01 - 0.06)) < 0.002, delay


def test_a_new_reply_is_not_trusted_until_its_echo_is_shown_removed() -> None:
    reply = espeak("The weather tomorrow looks mild, with light clouds in the morning and sun after lunch.")
    tap = PlaybackTap(seconds=20, clock=lambda: T0)
    play(tap, reply, T0 + 1.0)  # after a second of silence
    echo = np.concatenate([silence(1.0), echo_of(reply, 0.03)])
    gate = EchoGate(SileroVad())
    pipeline = CapturePipeline(
        16000, UtteranceSegmenter(gate), EchoCanceller(), tap, gate=gate, near_end=NearEndDetector()
    )
    results = feed(pipeline, echo, 16000, T0)
    during = [r.unsettled for r in results[100:]]  # from the reply's first sound on
    assert during[0], "the reply's first frames are not trusted"
    proven = during.index(False)
    assert 30 <= proven <= 100, f"trusted after {proven * 10} ms of the reply"
    assert not any(during[proven:]), "once shown, the reply's echo stays trusted"
