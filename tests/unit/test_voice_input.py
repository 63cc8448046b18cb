"""``VoiceInput``'s decisions, fed spoken audio block by block as the microphone worker feeds it.

Real Silero VAD and the real capture pipeline; the connection, player and window are
hand-written recorders (tests/fakes/voice.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import numpy as np
import pytest

from assistant.voice_input import NOTHING_HEARD, PAUSE_MS, TOO_LONG, VoiceInput, VoiceSettings
from backend.protocol import MAX_UTTERANCE_S
from tests.fakes.voice import RecordingLink, RecordingListener, ScriptedPlayer
from tests.spoken import espeak, silence, voiced_span

BLOCK = 160  # 10 ms, as the microphone delivers it


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))


def voiced(audio: np.ndarray) -> np.ndarray:
    start, end = voiced_span(audio)
    return audio[start:end]


def make(
    *, link: RecordingLink | None = None, player: ScriptedPlayer | None = None, **settings: object
) -> tuple[VoiceInput, RecordingLink, RecordingListener]:
    link = link or RecordingLink()
    listener = RecordingListener()
    voice = VoiceInput(link, listener, VoiceSettings(**settings), player=lambda: player)  # type: ignore[arg-type]
    voice.attach_loop(asyncio.get_running_loop())
    voice.open_pipeline(16000)
    return voice, link, listener


class Feeder:
    """Feeds audio in 10 ms blocks on a simulated capture clock, letting the loop decide in between."""

    def __init__(self, voice: VoiceInput) -> None:
        self.voice = voice
        self.clock = time.monotonic()

    async def feed(self, audio: np.ndarray, on_block: Callable[[float], None] | None = None) -> None:
        for i in range(0, audio.size - audio.size % BLOCK, BLOCK):
            if on_block is not None:
                on_block(i / 16000)
            self.voice.process_block(audio[i : i + BLOCK], self.clock)
            self.clock += BLOCK / 16000
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)


def test_hands_free_turns_an_utterance_into_a_voice_turn() -> None:
    async def scenario() -> None:
        voice, link, listener = make()
        assert voice.set_hands_free(True)
        speech = espeak("How far away is the moon from the earth?")
        await Feeder(voice).feed(np.concatenate([silence(0.5), speech, silence(1.0)]))
        assert len(link.utterances) == 1
        utterance = link.utterances[0]
        assert utterance.ended and not utterance.cancelled
        assert utterance.pauses >= 1  # the backend heard the pause before the end
        sent = utterance.pcm()
        assert speech.size <= sent.size <= speech.size + 16000  # pre-roll and the end silence
        assert listener.states == ["listening", "hearing", "listening"]
        assert listener.levels and max(listener.levels) > -40

    run(scenario)


def test_a_short_pause_is_resumed_and_a_long_one_splits_two_utterances() -> None:
    async def scenario() -> None:
        voice, link, _ = make(end_silence_ms=600)
        voice.set_hands_free(True)
        first, second = voiced(espeak("Tell me a story")), voiced(espeak("about a brave little cat"))
        feeder = Feeder(voice)
        await feeder.feed(np.concatenate([silence(0.3), first, silence(PAUSE_MS / 1000 + 0.2), second, silence(1)]))
        assert len(link.utterances) == 1
        assert link.utterances[0].pauses >= 2 and link.utterances[0].resumes >= 1
        await feeder.feed(np.concatenate([first, silence(1.2), second, silence(1)]))
        assert len(link.utterances) == 3 and all(u.ended for u in link.utterances)

    run(scenario)


def test_silence_and_noise_start_nothing() -> None:
    async def scenario() -> None:
        voice, link, listener = make()
        voice.set_hands_free(True)
        noise = (np.random.default_rng(5).standard_normal(16000 * 3) * 600).astype(np.int16)
        await Feeder(voice).feed(np.concatenate([silence(1.0), noise]))
        assert link.utterances == []
        assert listener.states == ["listening"]

    run(scenario)


def test_push_to_talk_streams_from_press_to_release_with_a_pre_roll() -> None:
    async def scenario() -> None:
        voice, link, listener = make()
        feeder = Feeder(voice)
        speech = espeak("Please play some quiet music.")
        await feeder.feed(silence(0.5))  # heard before the press: only the pre-roll is sent
        assert voice.press()
        await feeder.feed(np.concatenate([speech, silence(0.2)]))
        voice.release()
        utterance = link.utterances[0]
        assert utterance.ended
        sent = utterance.pcm()
        assert speech.size + 0.2 * 16000 <= sent.size <= speech.size + 0.55 * 16000
        assert listener.states == ["recording", "off"]

    run(scenario)


def test_push_to_talk_without_speech_is_dropped_with_a_message() -> None:
    async def scenario() -> None:
        voice, link, listener = make()
        voice.press()
        await Feeder(voice).feed(silence(1.0))
        voice.release()
        assert link.utterances[0].cancelled and not link.utterances[0].ended
        assert listener.problems == [NOTHING_HEARD]

    run(scenario)


def test_speaking_over_the_reply_stops_it_before_the_loop_decides() -> None:
    async def scenario() -> None:
        player = ScriptedPlayer()
        voice, link, listener = make(player=player, echo_cancellation=False)
        voice.set_hands_free(True)
        player.playing = True
        flushed_in_worker: list[bool] = []

        def tick(t: float) -> None:
            player.played = t

        def probe(step: object) -> None:
            flushed_in_worker.append(player.flushes > 0 and not link.barge_ins)

        voice.on_step = probe  # type: ignore[assignment]
        await Feeder(voice).feed(np.concatenate([silence(0.7), espeak("Stop, stop please."), silence(1)]), tick)
        assert player.flushes == 1
        assert any(flushed_in_worker), "the worker silenced the player before the loop heard of it"
        assert len(link.barge_ins) == 1 and 0.7 < link.barge_ins[0] < 1.2
        assert listener.barge_ins == link.barge_ins
        assert len(link.utterances) == 1 and link.utterances[0].ended  # the new question goes on

    run(scenario)


def test_push_to_talk_interrupts_a_reply_being_heard() -> None:
    async def scenario() -> None:
        player = ScriptedPlayer()
        player.playing, player.played = True, 2.5
        voice, link, _ = make(player=player)
        assert voice.press()
        assert player.flushes == 1 and link.barge_ins == [2.5]
        voice.release()

    run(scenario)


def test_without_a_connection_the_press_explains_why() -> None:
    async def scenario() -> None:
        voice, _, listener = make(link=RecordingLink(connected=False))
        assert not voice.press()
        assert "not connected" in listener.problems[0]

    run(scenario)


@pytest.mark.audio
def test_a_missing_microphone_is_a_clear_message(pulseaudio: str) -> None:
    async def scenario() -> None:
        listener = RecordingListener()
        voice = VoiceInput(RecordingLink(), listener, VoiceSettings(input_device="no such microphone"))
        assert not voice.set_hands_free(True)
        assert voice.state == "off" and not voice.microphone_open
        assert "no such microphone" in listener.problems[0] and "type" in listener.problems[0]

    run(scenario)


def test_push_to_talk_held_past_the_limit_is_sent_at_the_limit() -> None:
    async def scenario() -> None:
        voice, link, listener = make()
        voice.press()
        speech = espeak("Tell me a story about a brave little cat who climbs a very tall tree.")
        await Feeder(voice).feed(np.concatenate([speech] * (int(31 * 16000 / speech.size) + 1)))
        utterance = link.utterances[0]
        assert utterance.ended and voice.state == "off"
        assert utterance.pcm().size == int(MAX_UTTERANCE_S * 16000)
        assert listener.problems == [TOO_LONG]
        voice.release()  # the person lets go later: nothing more happens
        assert len(link.utterances) == 1

    run(scenario)
