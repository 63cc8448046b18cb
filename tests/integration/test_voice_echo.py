"""Parley's own voice coming back through the microphone: no barge-in, no question; a person still is heard.

Twenty real piper replies are "played": each block goes to the player's tap as the
output callback hands it over (the echo canceller's reference), and the microphone
receives only that playback, delayed, attenuated, with reflections and noise, fed
through ``VoiceInput`` (the capture path: resampler, echo canceller, Silero VAD,
hands-free decisions) on the same clock. Then the same echo with a person (espeak-ng)
speaking over it: the utterance must start a barge-in and be transcribed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from assistant.audio.playback_tap import PlaybackTap
from assistant.audio.resample import Pcm16, Resampler
from assistant.voice_input import VoiceInput, VoiceSettings
from backend.engines.stt.whisper_local import WhisperLocalSTT
from backend.models.manager import ModelManager
from tests.fakes.voice import RecordingLink, RecordingListener, ScriptedPlayer
from tests.integration.test_whisper_stt import words
from tests.spoken import espeak, silence, voiced_span

pytestmark = pytest.mark.slow

RATE = 16000
VOICE_RATE = 22050
BLOCK = 160
CLOCK_START = 10.0
PLAYER_BLOCK = 1024  # what the output callback hands over at a time (about 46 ms)
WRITE_AHEAD_S = 0.06  # the output callback fills blocks this long before they sound
REPLIES = (
    "The weather tomorrow looks mild, with light clouds in the morning.",
    "Paris is the capital of France, and it sits on the river Seine.",
    "A rainbow forms when sunlight is bent and reflected inside raindrops.",
    "To make good tea, warm the pot first and use water that has just boiled.",
    "The moon is about three hundred and eighty thousand kilometres away.",
    "Bees make honey from nectar, which they store and dry in wax cells.",
    "Regular exercise strengthens your heart and helps you sleep better.",
    "Seasons happen because the earth's axis is tilted as it circles the sun.",
    "Vaccines teach the immune system to recognise a germ before it strikes.",
    "A refrigerator moves heat out of its box with a circulating refrigerant.",
    "Start cooking with simple recipes, like pasta, soup or an omelette.",
    "Save on groceries by planning meals and buying seasonal vegetables.",
    "Sleep better by keeping a regular bedtime and a dark, quiet bedroom.",
    "For a weekend hike, pack water, snacks, a map and a warm layer.",
    "The sky looks blue because air scatters blue light more than red.",
    "Sure, I can set a timer for ten minutes starting now.",
    "Here is a fun fact: octopuses have three hearts and blue blood.",
    "The train to the city leaves every fifteen minutes from platform two.",
    "Your meeting with Anna is tomorrow at half past nine.",
    "I hope that helps. Is there anything else you would like to know?",
)


@dataclass(frozen=True)
class Room:
    delay_ms: int
    gain_db: float


NEAR = Room(30, -10.0)  # speakers close to the microphone
ACROSS_THE_DESK = Room(90, -16.0)


@pytest.fixture(scope="module")
def replies(tmp_path_factory: pytest.TempPathFactory) -> list[Pcm16]:
    """The replies in the packaged piper voice, at its own 22050 Hz."""
    from piper import PiperVoice

    onnx, config = ModelManager(tmp_path_factory.mktemp("voice-data")).voice_paths("joe")
    voice = PiperVoice.load(onnx, config_path=config)
    out = []
    for text in REPLIES:
        chunks = list(voice.synthesize(text))
        assert chunks[0].sample_rate == VOICE_RATE
        out.append(np.concatenate([c.audio_int16_array for c in chunks]))
    return out


def room_response(room: Room) -> np.ndarray:
    """The room's echo path: a direct path after ``delay_ms``, then 50 ms of decaying reflections."""
    rng = np.random.default_rng(room.delay_ms)  # a room keeps its reflections from one reply to the next
    delay = room.delay_ms * RATE // 1000
    tail = 50 * RATE // 1000
    response = np.zeros(delay + tail)
    gain = 10 ** (room.gain_db / 20)
    response[delay] = gain
    response[delay + 1 :] = gain * 0.25 * rng.standard_normal(tail - 1) * np.exp(-np.arange(1, tail) / (0.012 * RATE))
    return response


class Scene:
    """One simulated room: a player that writes its tap ahead of time, and a microphone that hears the room.

    The player works like the real one: it hands the sound card a block at a time, plays
    silence while held, resumes where it paused, and drops the rest of the reply when
    flushed. The microphone hears the echo of exactly what was played, plus noise and,
    when asked, a person.
    """

    def __init__(self, voice: VoiceInput, player: ScriptedPlayer, *, capture_clock_error_s: float = 0.0) -> None:
        self.voice = voice
        self.player = player
        self.clock = CLOCK_START  # a simulated clock: the same timing, sample for sample, in every run
        self.capture_clock_error_s = capture_clock_error_s
        """Added to the capture times the microphone reports (a device's latency misreported)."""

    async def play(self, reply: Pcm16, room: Room, seed: int, person: Pcm16 | None = None, at_s: float = 0.0) -> None:
        """Plays ``reply`` (22050 Hz) after 0.3 s of silence; the person speaks ``at_s`` into it.

        Returns 1 s after the reply has played out (or was dropped) and the person has finished.
        """
        start = self.clock
        response = room_response(room)
        noise = np.random.default_rng(seed)
        pending = reply.copy()
        lead = int(0.3 * VOICE_RATE)
        resampler = Resampler(VOICE_RATE, RATE)
        echo = np.zeros(int((reply.size / VOICE_RATE + 30) * RATE))
        person_at = int((0.3 + at_s) * RATE)
        person_end = person_at + (person.size if person is not None else 0)
        flushes = self.player.flushes
        device = produced = consumed = heard = 0
        end_at: int | None = None
        while end_at is None or heard < end_at:
            now = start + heard / RATE
            while start + device / VOICE_RATE < now + WRITE_AHEAD_S:
                if self.player.flushes != flushes:
                    flushes, pending = self.player.flushes, pending[:0]
                block = np.zeros(PLAYER_BLOCK, dtype=np.int16)
                if device >= lead and not self.player.held and pending.size:
                    taken = pending[:PLAYER_BLOCK]
                    block[: taken.size] = taken
                    pending = pending[taken.size :]
                    consumed += taken.size
                if self.player.tap is not None:
                    self.player.tap.write(block, VOICE_RATE, start + device / VOICE_RATE)
                device += block.size
                sound = resampler.process(block)
                room_echo = np.convolve(sound.astype(np.float64), response)[: echo.size - produced]
                echo[produced : produced + room_echo.size] += room_echo
                produced += sound.size
            self.player.playing = consumed > 0 and pending.size > 0
            self.player.played = consumed / VOICE_RATE
            if end_at is None and device >= lead and pending.size == 0:
                end_at = max(heard + RATE, person_end + int(1.2 * RATE))
            mic = echo[heard : heard + BLOCK] + noise.standard_normal(BLOCK) * 32768 * 10 ** (-55 / 20)
            if person is not None and person_at <= heard < person_end:
                part = person[heard - person_at : heard - person_at + BLOCK]
                mic[: part.size] += part
            captured_at = now + self.capture_clock_error_s
            self.voice.process_block(np.clip(np.rint(mic), -32768, 32767).astype(np.int16), captured_at)
            heard += BLOCK
            if heard % (BLOCK * 4) == 0:
                await asyncio.sleep(0)
        self.clock = start + heard / RATE
        await asyncio.sleep(0.02)


def hands_free() -> tuple[VoiceInput, RecordingLink, ScriptedPlayer]:
    link, player = RecordingLink(), ScriptedPlayer()
    tap = PlaybackTap(clock=lambda: 0.0)
    voice = VoiceInput(link, RecordingListener(), VoiceSettings(), player=lambda: player, tap=tap)
    voice.attach_loop(asyncio.get_running_loop())
    voice.open_pipeline(RATE)
    assert voice.set_hands_free(True)
    assert player.tap is not None, "voice input gives the player its tap"
    return voice, link, player


@pytest.mark.parametrize("room", [NEAR, ACROSS_THE_DESK], ids=["near", "across-the-desk"])
def test_twenty_replies_of_echo_trigger_nothing(replies: list[Pcm16], room: Room) -> None:
    async def scenario() -> None:
        voice, link, player = hands_free()
        scene = Scene(voice, player)
        for n, reply in enumerate(replies):
            await scene.play(reply, room, seed=n)
            assert player.flushes == 0 and link.barge_ins == [], f"barge-in on reply {n}"
            player.held = False  # a brief pause for a burst of echo is allowed: it resumes (below)
            assert link.utterances == [], f"an utterance (and so a transcript) from reply {n}"
        print(f"{room}: {voice.holds} brief pause(s) for bursts of echo, none confirmed as speech")

    asyncio.run(asyncio.wait_for(scenario(), 240))


def test_an_echo_that_arrives_before_its_reference_is_realigned_and_triggers_nothing(replies: list[Pcm16]) -> None:
    """The microphone's capture times are 80 ms early (its latency misreported): the echo reaches the canceller
    before the reference it is the echo of, which no canceller can remove. The echo model finds it ahead and
    the reference is moved back behind it."""

    async def scenario() -> None:
        voice, link, player = hands_free()
        scene = Scene(voice, player, capture_clock_error_s=-0.08)
        for n, reply in enumerate(replies[:10]):
            await scene.play(reply, NEAR, seed=n)
            player.held = False
            assert link.barge_ins == [] and link.utterances == [], f"the echo of reply {n} was taken for a voice"
        delay = voice.echo_delay_s  # on the capture clock: the room's 30 ms, minus the clock's 80 ms error
        assert delay is not None and abs(delay - (NEAR.delay_ms / 1000 - 0.08)) < 0.005, delay

    asyncio.run(asyncio.wait_for(scenario(), 240))


def test_without_echo_cancellation_the_same_echo_barges_in(replies: list[Pcm16]) -> None:
    """The check above can fail: the echo alone is heard as speech when nothing cancels it."""

    async def scenario() -> None:
        link, player = RecordingLink(), ScriptedPlayer()
        voice = VoiceInput(link, RecordingListener(), VoiceSettings(echo_cancellation=False), player=lambda: player)
        voice.attach_loop(asyncio.get_running_loop())
        voice.open_pipeline(RATE)
        voice.set_hands_free(True)
        scene = Scene(voice, player)
        await scene.play(replies[0], NEAR, seed=0)
        assert link.utterances, "the echo of a reply is speech to the VAD"

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_person_speaking_over_the_echo_barges_in_and_is_understood(
    replies: list[Pcm16], tiny: WhisperLocalSTT, tmp_path: Path
) -> None:
    question = "What about the weekend?"
    person = np.concatenate([espeak(question), silence(0.2)])

    async def scenario() -> str:
        voice, link, player = hands_free()
        scene = Scene(voice, player)
        await scene.play(replies[1], NEAR, seed=1)  # the canceller has heard a reply before
        await scene.play(replies[2], NEAR, seed=2, person=person, at_s=1.5)
        assert player.flushes == 1, "the person's speech stopped the reply"
        assert len(link.barge_ins) == 1 and 1.4 < link.barge_ins[0] < 2.5, link.barge_ins
        assert len(link.utterances) == 1 and link.utterances[0].ended
        return await asyncio.wait_for(tiny.transcribe(link.utterances[0].pcm()), 60)

    text = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert "weekend" in "".join(words(text)), text  # the start overlapped the reply: its first word may suffer


def test_after_a_barge_in_the_next_replies_echo_triggers_nothing(replies: list[Pcm16]) -> None:
    person = np.concatenate([espeak("Wait, stop please."), silence(0.2)])

    async def scenario() -> None:
        voice, link, player = hands_free()
        scene = Scene(voice, player)
        await scene.play(replies[1], NEAR, seed=1)
        await scene.play(replies[2], NEAR, seed=2, person=person, at_s=1.5)
        assert player.flushes == 1 and len(link.barge_ins) == 1 and len(link.utterances) == 1
        for n, reply in enumerate(replies[3:12], 3):
            await scene.play(reply, NEAR, seed=n)
            player.held = False
            assert len(link.barge_ins) == 1 and len(link.utterances) == 1, f"echo of reply {n} after the barge-in"

    asyncio.run(asyncio.wait_for(scenario(), 240))


def test_a_voice_over_the_echo_pauses_the_reply_within_a_few_frames_and_keeps_its_first_word(
    replies: list[Pcm16],
) -> None:
    """The echo model hears the person from their first syllable on, while the canceller's suppressor still
    hides it; the utterance takes the model's residue there, so the start of the interruption is not lost."""
    person = np.concatenate([espeak("Stop, wait a moment."), silence(0.2)])
    voiced_from, _ = voiced_span(person)
    at_s = 2.5
    assert replies[3].size / VOICE_RATE > at_s + 1.0, "the reply still sounds when the person speaks"
    paused_at: list[float] = []

    async def scenario() -> Pcm16:
        voice, link, player = hands_free()
        voice.on_step = lambda step: paused_at.append(step.result.captured_at) if step.held_at is not None else None
        scene = Scene(voice, player)
        await scene.play(replies[1], NEAR, seed=1)
        start = scene.clock
        await scene.play(replies[3], NEAR, seed=3, person=person, at_s=at_s)
        assert player.flushes == 1 and len(link.utterances) == 1
        onset = start + 0.3 + at_s + voiced_from / RATE
        assert paused_at and paused_at[0] - onset < 0.05, f"paused {1000 * (paused_at[0] - onset):.0f} ms after"
        return link.utterances[0].pcm()

    heard = asyncio.run(asyncio.wait_for(scenario(), 120)).astype(np.float64)
    spoken = person.astype(np.float64)
    correlation = np.correlate(heard, spoken[voiced_from : voiced_from + RATE // 2], mode="valid")
    at = int(np.argmax(np.abs(correlation)))
    first_word = slice(voiced_from, voiced_from + int(0.2 * RATE))
    kept_db = level(heard[at : at + int(0.2 * RATE)]) - level(spoken[first_word])
    assert kept_db > -6, f"the first 200 ms of the interruption came through {kept_db:.0f} dB down"


def level(samples: np.ndarray) -> float:
    return 10 * float(np.log10(np.mean(np.square(samples)) + 1.0))
