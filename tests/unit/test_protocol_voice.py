"""The voice messages of the protocol: utterances, transcripts with their timing, interrupts."""

from __future__ import annotations

import json

import pytest

from backend import protocol as p


@pytest.mark.parametrize(
    "message",
    [
        p.UtteranceStart(turn_id=3),
        p.UtteranceStart(turn_id=4, sample_rate=16000, speak=False, pipeline="sequential"),
        p.UtterancePause(turn_id=3),
        p.UtteranceResume(turn_id=3),
        p.UtteranceEnd(turn_id=3),
        p.Transcript(turn_id=3, text="How far is the moon?", final=True, stt_s=0.12),
        p.Transcript(turn_id=3, text="How far", final=False),
        p.Interrupt(turn_id=2, heard_s=1.75),
        p.Status(state="ready", llm="l", tts="t", stt="whisper-tiny.en (embedded)"),
        p.TurnDone(turn_id=3, status="interrupted", text="Paris", timings=p.Timings(stt_s=0.1)),
    ],
)
def test_round_trip(message: p.Message) -> None:
    assert p.decode(message.to_wire()) == message


def test_messages_from_older_peers_still_decode() -> None:
    transcript = p.decode('{"type":"transcript","turn_id":1,"text":"hi","final":true}')
    assert isinstance(transcript, p.Transcript) and transcript.stt_s == 0.0
    status = p.decode('{"type":"status","state":"ready","llm":"a","tts":"b"}')
    assert isinstance(status, p.Status) and status.stt == ""


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "utterance_start"},
        {"type": "utterance_start", "turn_id": 1, "sample_rate": "16k"},
        {"type": "utterance_start", "turn_id": 1, "pipeline": "eventually"},
        {"type": "utterance_end", "turn_id": -1},
        {"type": "interrupt", "turn_id": 1, "heard_s": "a while"},
    ],
)
def test_malformed_voice_messages_are_errors(payload: dict[str, object]) -> None:
    decoded = p.decode_or_error(json.dumps(payload))
    assert isinstance(decoded, p.Error) and decoded.code == p.ERR_MALFORMED


def test_microphone_audio_travels_in_the_same_binary_frames_as_speech() -> None:
    frame = p.AudioFrame(turn_id=7, seq=3, pcm=b"\x01\x00" * 512)
    assert p.AudioFrame.from_wire(frame.to_wire()) == frame
    assert p.MAX_UTTERANCE_S * p.VOICE_SAMPLE_RATE * 2 > p.MAX_BINARY_FRAME_BYTES  # many frames per utterance
