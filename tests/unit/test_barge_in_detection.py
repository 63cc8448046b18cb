"""The guards around the voice detector while Parley speaks: ``NearEndDetector`` and ``EchoGate``."""

from __future__ import annotations

import numpy as np

from assistant.audio.echo_gate import EchoGate
from assistant.audio.near_end import ARMING_MIN_FRAMES, NearEndDetector

FRAME = 160


def noise(db: float, seed: int = 1, size: int = FRAME) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(size) * 32768 * 10 ** (db / 20)).astype(np.int16)


def feed(detector: NearEndDetector, raw: np.ndarray, clean: np.ndarray, reference: np.ndarray) -> bool:
    return detector.update(raw, clean, reference)


def test_a_voice_the_canceller_lets_through_while_parley_speaks_is_an_onset() -> None:
    detector = NearEndDetector()
    echo, residue, reference = noise(-20, 1), noise(-70, 2), noise(-20, 3)
    for _ in range(ARMING_MIN_FRAMES):  # the canceller removes the echo well: the detector trusts it
        assert not feed(detector, echo, residue, reference)
    assert detector.armed
    person = noise(-25, 4)
    fired = [feed(detector, echo + person, person, reference) for _ in range(6)]
    assert fired.count(True) == 1 and fired.index(True) == 3  # the fourth active frame (40 ms)


def test_nothing_fires_before_the_canceller_proved_itself_or_when_nothing_plays() -> None:
    detector = NearEndDetector()
    echo, reference = noise(-20, 1), noise(-20, 3)
    assert not any(feed(detector, echo, echo, reference) for _ in range(300)), "the echo passes: not armed"
    quiet = NearEndDetector()
    person = noise(-25, 4)
    silence = np.zeros(FRAME, dtype=np.int16)
    assert not any(feed(quiet, person, person, silence) for _ in range(100)), "nothing plays: the VAD decides"


def test_a_quiet_residue_is_not_an_onset() -> None:
    detector = NearEndDetector()
    echo, reference = noise(-20, 1), noise(-20, 3)
    for _ in range(ARMING_MIN_FRAMES):
        feed(detector, echo, noise(-70, 2), reference)
    assert not any(feed(detector, echo, noise(-55, 5), reference) for _ in range(50))


class Certain:
    """A frame scorer sure that everything is speech."""

    def probability(self, frame: np.ndarray) -> float:
        return 0.9

    def reset(self) -> None:
        pass


def test_the_gate_passes_the_person_and_stops_the_residue_while_parley_plays() -> None:
    gate = EchoGate(Certain())
    reference = noise(-20, 3)
    echo, person = noise(-20, 1, 512), noise(-25, 4, 512)
    for i in range(0, 512, FRAME):
        gate.note(echo[i : i + FRAME], reference)
    assert gate.probability(noise(-70, 2, 512)) == 0.0  # 50 dB removed: only residue
    for i in range(0, 512, FRAME):
        gate.note((echo + person)[i : i + FRAME], reference)
    assert gate.probability(person) == 0.9


def test_the_gate_changes_nothing_when_nothing_plays_and_everything_when_distrusted() -> None:
    gate = EchoGate(Certain())
    for _ in range(64):  # 20 scorer frames of raw audio, long after anything played
        gate.note(noise(-60, 1), None)
    scores = [gate.probability(noise(-90, 2, 512)) for _ in range(20)]
    assert scores[-1] == 0.9
    distrusting = EchoGate(Certain())
    for _ in range(4):
        distrusting.note(noise(-20, 1), noise(-20, 3), distrust=True)
    assert distrusting.probability(noise(-20, 4, 512)) == 0.0
