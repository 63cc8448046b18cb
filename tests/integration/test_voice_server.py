"""Spoken questions over the real websocket server: real Whisper tiny.en, scripted LLM, tone voice.

The audio is espeak-ng speech sent as the app sends it (binary frames of 32 ms);
the server transcribes it, answers, and on barge-in keeps only what was heard.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect

from assistant.headless_voice import HeadlessVoiceClient
from assistant.net.backend_connection import BackendConnection
from backend import protocol as p
from backend.engine_hub import EngineHub
from backend.engines.stt.base import STTEngine
from backend.engines.stt.whisper_local import WhisperLocalSTT
from backend.models.whisper_models import WhisperModels
from backend.server import ParleyServer
from tests.fakes.engines import ScriptedLLM, ToneTTS
from tests.fakes.stt import BrokenSTT
from tests.integration.conftest import WhisperSettings
from tests.integration.test_whisper_stt import word_error_rate
from tests.spoken import espeak, silence

pytestmark = pytest.mark.slow

TOKEN = "voice-token"
T = 30.0
FRAME = 512
QUESTION = "How far away is the moon from the earth?"
LONG_REPLY = [f"Sentence number {i} is here, and it keeps going for a while. " for i in range(12)]


@asynccontextmanager
async def voice_server(
    tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM, stt: STTEngine | None = None
) -> AsyncIterator[str]:
    """A real server with scripted text, tone speech and Whisper tiny.en (or ``stt``) on 127.0.0.1."""
    if stt is None:
        stt = WhisperLocalSTT(WhisperSettings(), WhisperModels(tmp_path_factory.mktemp("stt")))
    hub = EngineHub(llm, ToneTTS(sample_rate=16000, seconds_per_word=0.1), stt)
    server = ParleyServer(hub, TOKEN, "Be brief.", 4096)
    url = await server.start("127.0.0.1", 0)
    hub.start_loading()
    try:
        yield url
    finally:
        await asyncio.wait_for(server.aclose(), T)
        await asyncio.wait_for(hub.aclose(), T)


async def ready(ws: ClientConnection) -> p.Welcome:
    await ws.send(p.Hello(version=p.PROTOCOL_VERSION, token=TOKEN, client="tests").to_wire())
    welcome = p.decode(await asyncio.wait_for(ws.recv(), T))
    assert isinstance(welcome, p.Welcome)
    while True:
        message = await next_message(ws)
        if isinstance(message, p.Status) and message.state != "loading":
            assert message.state == "ready" and message.stt == "whisper-tiny.en (embedded)", message
            return welcome


async def next_message(ws: ClientConnection) -> p.Message:
    while True:
        raw = await asyncio.wait_for(ws.recv(), T)
        if isinstance(raw, str):
            return p.decode(raw)


async def until(ws: ClientConnection, kind: type[p.Message]) -> list[p.Message]:
    seen: list[p.Message] = []
    while not seen or not isinstance(seen[-1], kind):
        seen.append(await next_message(ws))
    return seen


async def send_audio(ws: ClientConnection, turn_id: int, audio: np.ndarray, first_seq: int = 0) -> int:
    seq = first_seq
    for i in range(0, audio.size, FRAME):
        await ws.send(p.AudioFrame(turn_id, seq, audio[i : i + FRAME].astype("<i2").tobytes()).to_wire())
        seq += 1
    return seq


def run(scenario: Callable[[], Awaitable[None]], timeout: float = 120) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout))


def spoken(text: str) -> np.ndarray:
    return np.concatenate([silence(0.2), espeak(text), silence(0.3)])


def test_an_utterance_becomes_a_question_and_is_answered(tmp_path_factory: pytest.TempPathFactory) -> None:
    llm = ScriptedLLM(["About", " 384,000 km."])

    async def scenario() -> None:
        async with voice_server(tmp_path_factory, llm) as url, connect(url) as ws:
            welcome = await ready(ws)
            assert p.CAPABILITY_VOICE in welcome.capabilities
            await ws.send(p.UtteranceStart(turn_id=1).to_wire())
            await send_audio(ws, 1, spoken(QUESTION))
            await ws.send(p.UtteranceEnd(turn_id=1).to_wire())
            seen = await until(ws, p.TurnDone)
        finals = [m for m in seen if isinstance(m, p.Transcript) and m.final]
        assert len(finals) == 1 and word_error_rate([QUESTION], [finals[0].text]) < 0.15, finals
        assert finals[0].stt_s > 0
        started = [m for m in seen if isinstance(m, p.TurnStarted)]
        assert started and started[0].text == finals[0].text
        assert seen.index(finals[0]) < seen.index(started[0])
        done = seen[-1]
        assert isinstance(done, p.TurnDone) and done.status == "completed" and done.text == "About 384,000 km."
        assert llm.seen[-1][-1].content == finals[0].text

    run(scenario)


def test_partial_transcripts_arrive_while_audio_trickles_in(tmp_path_factory: pytest.TempPathFactory) -> None:
    async def scenario() -> None:
        async with voice_server(tmp_path_factory, ScriptedLLM(["Sure."])) as url, connect(url) as ws:
            await ready(ws)
            await ws.send(p.UtteranceStart(turn_id=4).to_wire())
            audio = spoken("Remind me to call my mother tomorrow morning, and then water the plants.")
            for i in range(0, audio.size, FRAME * 8):  # about 4x real time
                await send_audio(ws, 4, audio[i : i + FRAME * 8], first_seq=i // FRAME)
                await asyncio.sleep(0.06)
            await ws.send(p.UtteranceEnd(turn_id=4).to_wire())
            seen = await until(ws, p.TurnDone)
        partials = [m.text for m in seen if isinstance(m, p.Transcript) and not m.final]
        final = next(m.text for m in seen if isinstance(m, p.Transcript) and m.final)
        assert partials, "partial transcripts expected while the audio arrived"
        assert partials[0].lower().startswith("remind")
        assert "plants" in final.lower()

    run(scenario)


def test_a_pause_starts_the_reply_early_and_the_end_uses_it(tmp_path_factory: pytest.TempPathFactory) -> None:
    llm = ScriptedLLM(["Paris", " is", " the", " capital."])

    async def scenario() -> None:
        async with voice_server(tmp_path_factory, llm) as url, connect(url) as ws:
            await ready(ws)
            await ws.send(p.UtteranceStart(turn_id=2).to_wire())
            await send_audio(ws, 2, spoken(QUESTION))
            await ws.send(p.UtterancePause(turn_id=2).to_wire())
            deadline = asyncio.get_running_loop().time() + T
            while not llm.seen:  # the model is asked before the utterance ends
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.02)
            await ws.send(p.UtteranceEnd(turn_id=2).to_wire())
            seen = await until(ws, p.TurnDone)
        assert len(llm.seen) == 1, "the prefetched reply was used, not a second one"
        done = seen[-1]
        assert isinstance(done, p.TurnDone) and done.status == "completed"
        assert done.text == "Paris is the capital."

    run(scenario)


def test_speech_after_a_pause_drops_the_early_work(tmp_path_factory: pytest.TempPathFactory) -> None:
    llm = ScriptedLLM(["Okay."])

    async def scenario() -> None:
        async with voice_server(tmp_path_factory, llm) as url, connect(url) as ws:
            await ready(ws)
            await ws.send(p.UtteranceStart(turn_id=3).to_wire())
            seq = await send_audio(ws, 3, spoken("What is the weather like"))
            await ws.send(p.UtterancePause(turn_id=3).to_wire())
            await asyncio.sleep(0.8)  # the early transcript and reply are under way
            await ws.send(p.UtteranceResume(turn_id=3).to_wire())
            await send_audio(ws, 3, spoken("in Paris today?"), first_seq=seq)
            await ws.send(p.UtteranceEnd(turn_id=3).to_wire())
            seen = await until(ws, p.TurnDone)
        final = next(m.text for m in seen if isinstance(m, p.Transcript) and m.final)
        assert "paris" in final.lower() and "weather" in final.lower()
        assert llm.seen[-1][-1].content == final
        assert all("paris" not in messages[-1].content.lower() for messages in llm.seen[:-1])

    run(scenario)


def test_silence_is_no_question(tmp_path_factory: pytest.TempPathFactory) -> None:
    llm = ScriptedLLM(["never"])

    async def scenario() -> None:
        async with voice_server(tmp_path_factory, llm) as url, connect(url) as ws:
            await ready(ws)
            await ws.send(p.UtteranceStart(turn_id=5).to_wire())
            await send_audio(ws, 5, silence(1.5))
            await ws.send(p.UtteranceEnd(turn_id=5).to_wire())
            seen = await until(ws, p.TurnDone)
        assert [m.text for m in seen if isinstance(m, p.Transcript) and m.final] == [""]
        done = seen[-1]
        assert isinstance(done, p.TurnDone) and done.status == "cancelled" and done.error == p.NO_SPEECH_MESSAGE
        assert not llm.seen

    run(scenario)


def test_bad_voice_input_gets_clear_errors(tmp_path_factory: pytest.TempPathFactory) -> None:
    async def scenario() -> None:
        async with voice_server(tmp_path_factory, ScriptedLLM(["Hi."])) as url, connect(url) as ws:
            await ready(ws)
            await ws.send(p.AudioFrame(9, 0, b"\0\0" * 100).to_wire())
            error = await next_message(ws)
            assert isinstance(error, p.Error) and error.code == p.ERR_STATE
            assert "outside of an utterance" in error.message

            await ws.send(p.UtteranceStart(turn_id=6, sample_rate=44100).to_wire())
            seen = await until(ws, p.TurnDone)
            assert isinstance(seen[0], p.Error) and "16000 Hz" in seen[0].message
            assert isinstance(seen[-1], p.TurnDone) and seen[-1].status == "error"

            await ws.send(p.UtteranceStart(turn_id=7).to_wire())
            one_second = silence(1.0).tobytes()
            for seq in range(int(p.MAX_UTTERANCE_S) + 2):
                await ws.send(p.AudioFrame(7, seq, one_second[: 16000 * 2 // 2]).to_wire())
                await ws.send(p.AudioFrame(7, seq, one_second[16000 * 2 // 2 :]).to_wire())
            error = await next_message(ws)
            assert isinstance(error, p.Error) and error.code == p.ERR_TOO_LARGE and error.turn_id == 7
            await ws.send(p.Cancel(turn_id=7).to_wire())
            seen = await until(ws, p.TurnDone)
            assert not any(isinstance(m, p.Error) for m in seen), "the limit is reported once"
            assert isinstance(seen[-1], p.TurnDone) and seen[-1].turn_id == 7 and seen[-1].status == "cancelled"

    run(scenario)


async def audio_seconds_until(ws: ClientConnection, seconds: float) -> list[p.Message]:
    """Reads the reply until ``seconds`` of its audio arrived; returns the messages seen."""
    seen: list[p.Message] = []
    samples = 0
    while samples < seconds * 16000:
        raw = await asyncio.wait_for(ws.recv(), T)
        if isinstance(raw, bytes):
            samples += len(p.AudioFrame.from_wire(raw).pcm) // 2
        else:
            seen.append(p.decode(raw))
    return seen


def test_barge_in_keeps_only_what_was_heard(tmp_path_factory: pytest.TempPathFactory) -> None:
    llm = ScriptedLLM(LONG_REPLY, delay_s=0.01)
    full = "".join(LONG_REPLY)

    async def scenario() -> None:
        async with voice_server(tmp_path_factory, llm) as url, connect(url) as ws:
            await ready(ws)
            await ws.send(p.Ask(turn_id=1, text="Talk to me.").to_wire())
            await audio_seconds_until(ws, 2.0)
            await ws.send(p.Interrupt(turn_id=1, heard_s=1.5).to_wire())
            done = (await until(ws, p.TurnDone))[-1]
            assert isinstance(done, p.TurnDone) and done.status == "interrupted"
            # 1.5 s of 0.1 s per word: the first clause (3 words... ) and some words of the next
            assert 0 < len(done.text) < len(full) and full.startswith(done.text)
            assert len(done.text.split()) <= 15
            await ws.send(p.Ask(turn_id=2, text="And then?").to_wire())
            await until(ws, p.TurnDone)
        history = llm.seen[-1]
        assert history[-2].role == "assistant" and history[-2].content == done.text

    run(scenario)


def test_barge_in_after_the_reply_was_written_still_cuts_it(tmp_path_factory: pytest.TempPathFactory) -> None:
    llm = ScriptedLLM(["One two three four five six seven eight nine ten."])

    async def scenario() -> None:
        async with voice_server(tmp_path_factory, llm) as url, connect(url) as ws:
            await ready(ws)
            await ws.send(p.Ask(turn_id=1, text="Count.").to_wire())
            done = (await until(ws, p.TurnDone))[-1]
            assert isinstance(done, p.TurnDone) and done.status == "completed"
            await ws.send(p.Interrupt(turn_id=1, heard_s=0.45).to_wire())  # the audio was still playing
            cut = (await until(ws, p.TurnDone))[-1]
            assert isinstance(cut, p.TurnDone) and cut.turn_id == 1 and cut.status == "interrupted"
            assert cut.text and done.text.startswith(cut.text) and len(cut.text) < len(done.text)
            await ws.send(p.Ask(turn_id=2, text="Again.").to_wire())
            await until(ws, p.TurnDone)
        assert llm.seen[-1][-2].content == cut.text

    run(scenario)


def test_a_recognizer_that_fails_to_load_turns_voice_off_and_text_on(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    async def scenario() -> None:
        llm = ScriptedLLM(["Still", " here."])
        async with voice_server(tmp_path_factory, llm, BrokenSTT()) as url, connect(url) as ws:
            await ws.send(p.Hello(version=p.PROTOCOL_VERSION, token=TOKEN, client="tests").to_wire())
            assert isinstance(p.decode(await asyncio.wait_for(ws.recv(), T)), p.Welcome)
            status = await next_message(ws)
            while isinstance(status, p.Status) and status.state == "loading":
                status = await next_message(ws)
            assert isinstance(status, p.Status) and status.state == "ready" and status.stt == ""
            assert "speech model is not installed" in status.detail
            await ws.send(p.UtteranceStart(turn_id=1).to_wire())
            seen = await until(ws, p.TurnDone)
            assert isinstance(seen[0], p.Error) and "Voice input is unavailable" in seen[0].message
            await ws.send(p.Ask(turn_id=2, text="Hello?").to_wire())
            done = (await until(ws, p.TurnDone))[-1]
            assert isinstance(done, p.TurnDone) and done.status == "completed" and done.text == "Still here."

    run(scenario)


def test_the_apps_connection_streams_an_utterance_and_gets_its_answer(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    async def scenario() -> None:
        async with voice_server(tmp_path_factory, ScriptedLLM(["About", " 384,000", " km."])) as url:
            client = HeadlessVoiceClient(None)
            connection = BackendConnection(url, TOKEN, client)
            client.connection = connection
            await connection.connect(T)
            try:
                await client.wait_ready(T)
                turn = client.begin_utterance()
                audio = spoken(QUESTION)
                for i in range(0, audio.size, FRAME):
                    client.utterance_audio(turn, audio[i : i + FRAME].tobytes())
                client.pause_utterance(turn)
                client.end_utterance(turn)
                record = client.records[turn]
                await client.wait_for(lambda: bool(record.status), T)
            finally:
                await connection.close()
        assert record.status == "completed" and record.reply == "About 384,000 km."
        assert record.transcript is not None and word_error_rate([QUESTION], [record.transcript]) < 0.15
        assert record.stt_s > 0 and record.transcript_at is not None and record.ended_at is not None

    run(scenario)
