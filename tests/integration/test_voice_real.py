"""Speaking to the real backend through the virtual sound card: spoken questions and barge-in.

Spoken questions (espeak-ng WAV files) are played into a PulseAudio null sink with
``paplay`` while the app's capture path records the sink's monitor as its microphone
(``Microphone`` -> ``VoiceInput`` hands-free, echo cancellation on). The replies play
through the app's ``AudioPlayer`` into the same sink, so the microphone hears
Parley's own voice too, as from speakers: it must not barge in on itself. The sink
is private to the test (``virtual_room``): other programs playing into the shared
virtual card would be voices in the room.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from assistant.audio.player import AudioPlayer
from assistant.bench.virtual_room import virtual_room
from assistant.headless_voice import HeadlessVoiceClient, VoiceTurnRecord
from assistant.net.backend_connection import BackendConnection
from assistant.voice_input import VoiceInput, VoiceSettings
from backend import protocol as p
from tests.fakes.voice import RecordingListener
from tests.integration.test_real_backend import TOKEN, backend_process
from tests.integration.test_whisper_stt import word_error_rate
from tests.spoken import spoken_wav

pytestmark = [pytest.mark.slow, pytest.mark.audio]

T = 120.0
QUESTIONS = (
    "What is the weather like in Paris today?",
    "How far away is the moon from the earth?",
    "I would like to learn how to cook pasta.",
    "Remind me to call my mother tomorrow morning.",
    "Please play some quiet music in the living room.",
)
MAX_WER = 0.15
SHORT_REPLIES = "[llm]\nmax_tokens = 40\n"


class VoiceApp:
    """The app's voice path without a window: player, headless client, hands-free ``VoiceInput``."""

    def __init__(self) -> None:
        self.player = AudioPlayer()
        self.client = HeadlessVoiceClient(self.player)
        self.listener = RecordingListener()
        self.voice = VoiceInput(self.client, self.listener, VoiceSettings(), player=lambda: self.player)

    async def start(self, url: str) -> None:
        self.player.open(22050)
        self.client.connection = BackendConnection(url, TOKEN, self.client)
        await asyncio.wait_for(self.client.connection.connect(), 30)
        status = await self.client.wait_ready(T)
        assert status.stt, status
        assert self.voice.set_hands_free(True), self.listener.problems

    async def close(self) -> None:
        self.voice.close()
        if self.client.connection is not None:
            await self.client.connection.close()
        self.player.close()

    def finished(self, count: int) -> bool:
        """``count`` turns are done and their audio has played out."""
        records = list(self.client.records.values())
        return len(records) >= count and all(r.status for r in records[:count]) and self.player.drained


def test_spoken_questions_are_transcribed_and_answered_aloud(pulseaudio: str, tmp_path: Path) -> None:
    (tmp_path / "none.toml").write_text(SHORT_REPLIES)
    wavs = [spoken_wav(tmp_path / f"q{i}.wav", q) for i, q in enumerate(QUESTIONS)]

    async def scenario() -> list[VoiceTurnRecord]:
        app = VoiceApp()
        with virtual_room() as room:
            async with backend_process(tmp_path) as (url, _):
                try:
                    await app.start(url)
                    for n, wav in enumerate(wavs, 1):
                        await room.play_file(wav)
                        await app.client.wait_for(lambda n=n: app.finished(n), T)  # type: ignore[misc]
                        await asyncio.sleep(0.5)  # the reply's tail leaves the sink before the next question
                finally:
                    await app.close()
        assert app.client.barge_ins == [], "Parley's own voice interrupted it"
        return list(app.client.records.values())

    records = asyncio.run(asyncio.wait_for(scenario(), 600))
    assert len(records) == len(QUESTIONS), [r.transcript for r in records]
    transcripts = [r.transcript or "" for r in records]
    wer = word_error_rate(list(QUESTIONS), transcripts)
    assert wer < MAX_WER, f"WER {wer:.0%}: {transcripts}"
    for record in records:
        assert record.status == "completed", (record.transcript, record.status, record.error)
        assert record.reply.strip() and record.audio_started and record.samples_queued > 22050 * 0.3


def test_speaking_over_a_reply_stops_it_and_keeps_what_was_heard(pulseaudio: str, tmp_path: Path) -> None:
    (tmp_path / "none.toml").write_text("[llm]\nmax_tokens = 120\n")
    interruption = spoken_wav(tmp_path / "stop.wav", "Stop. What time is it?")

    async def scenario() -> tuple[VoiceApp, VoiceTurnRecord, list[p.StoredMessage]]:
        app = VoiceApp()
        with virtual_room() as room:
            async with backend_process(tmp_path) as (url, _):
                try:
                    await app.start(url)
                    first = app.client.ask("Tell me a long story about a dragon who learns to fly.")
                    record = app.client.records[first]
                    await app.client.wait_for(lambda: app.player.played_seconds > 1.5 and app.player.is_playing, T)
                    await room.play_file(interruption)
                    await app.client.wait_for(lambda: bool(app.client.barge_ins), 30)
                    await app.client.wait_for(lambda: not app.player.is_playing, 5)
                    await app.client.wait_for(lambda: len(app.client.records) == 2 and app.finished(2), T)
                    stored = await stored_messages(app.client)
                finally:
                    await app.close()
        return app, record, stored

    app, first, stored = asyncio.run(asyncio.wait_for(scenario(), 400))
    assert first.status == "interrupted"
    heard = app.client.barge_ins[0][1]
    assert 1.4 < heard < 12.0
    replies = [m for m in stored if m.role == "assistant"]
    kept = replies[0]
    assert kept.status == "interrupted"
    assert kept.text and first.reply.startswith(kept.text) and len(kept.text) < len(first.reply)
    second = list(app.client.records.values())[1]
    assert second.transcript is not None and "time" in second.transcript.lower()
    assert second.status == "completed"


async def stored_messages(client: HeadlessVoiceClient) -> list[p.StoredMessage]:
    """The messages of the session's current stored conversation (issue 4's protocol)."""
    assert client.connection is not None
    client.connection.send_request(p.ListConversations())
    await client.wait_for(lambda: any(isinstance(m, p.ConversationList) for m in client.messages), 30)
    listing = next(m for m in client.messages if isinstance(m, p.ConversationList))
    assert listing.current_id is not None
    client.connection.send_request(p.OpenConversation(conversation_id=listing.current_id))
    await client.wait_for(lambda: any(isinstance(m, p.ConversationMessages) and m.last for m in client.messages), 30)
    return [s for m in client.messages if isinstance(m, p.ConversationMessages) for s in m.messages]
