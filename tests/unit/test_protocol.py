"""Protocol round trips, and malformed input answered by a typed Error."""

from __future__ import annotations

import json

import pytest

from backend import protocol as p

ROUND_TRIP = [
    p.Hello(version=p.PROTOCOL_VERSION, token="t0k", client="tests", capabilities=("text", "audio")),
    p.Ask(turn_id=1, text="What is the capital of France?"),
    p.Ask(turn_id=2, text="hi", speak=False, pipeline="sequential"),
    p.Cancel(turn_id=7),
    p.Interrupt(turn_id=7, heard_s=1.25),
    p.ResetConversation(),
    p.Welcome(version="1.0", server="parley-backend", capabilities=("text",)),
    p.Status(state="loading", detail="Assembling the model", progress=0.5),
    p.Status(state="ready", llm="qwen", tts="joe"),
    p.TurnStarted(turn_id=3, text="q"),
    p.Transcript(turn_id=3, text="partial words", final=False),
    p.TextDelta(turn_id=3, text="Héllo, wörld ✓"),
    p.AudioStart(turn_id=3, sample_rate=22050),
    p.AudioEnd(turn_id=3, frames=12),
    p.TurnDone(
        turn_id=3,
        status="completed",
        text="Paris.",
        timings=p.Timings(ttft_s=0.2, ttfa_s=0.5, total_s=2.0, tokens=9, llm_s=1.0, audio_s=1.5, synth_s=0.1),
    ),
    p.TurnDone(turn_id=4, status="error", error="boom"),
    p.Error(code="provider", message="The model server is down.", turn_id=4),
    p.Error(code="malformed", message="x"),
]


@pytest.mark.parametrize("message", ROUND_TRIP, ids=lambda m: type(m).__name__)
def test_round_trip(message: p.Message) -> None:
    wire = message.to_wire()
    assert json.loads(wire)["type"] == message.TYPE
    assert p.decode(wire) == message


def test_audio_frame_round_trip() -> None:
    frame = p.AudioFrame(turn_id=2**32 - 1, seq=123456, pcm=bytes(range(256)) * 4)
    wire = frame.to_wire()
    assert len(wire) == p.AUDIO_HEADER_BYTES + 1024
    assert p.AudioFrame.from_wire(wire) == frame


def test_hello_repr_hides_token() -> None:
    assert "s3cret" not in repr(p.Hello(version="1.0", token="s3cret"))


MALFORMED = [
    ("not json", "{", p.ERR_MALFORMED),
    ("a list", "[1, 2]", p.ERR_MALFORMED),
    ("a string", '"ask"', p.ERR_MALFORMED),
    ("no type", '{"turn_id": 1}', p.ERR_MALFORMED),
    ("type not a string", '{"type": 5}', p.ERR_MALFORMED),
    ("unknown type", '{"type": "launch_missiles"}', p.ERR_UNKNOWN_TYPE),
    ("missing field", '{"type": "ask", "turn_id": 1}', p.ERR_MALFORMED),
    ("wrong type", '{"type": "ask", "turn_id": "1", "text": "x"}', p.ERR_MALFORMED),
    ("bool as int", '{"type": "ask", "turn_id": true, "text": "x"}', p.ERR_MALFORMED),
    ("negative turn", '{"type": "cancel", "turn_id": -1}', p.ERR_MALFORMED),
    ("huge turn", '{"type": "cancel", "turn_id": 99999999999999999999}', p.ERR_MALFORMED),
    ("float turn", '{"type": "cancel", "turn_id": 1.5}', p.ERR_MALFORMED),
    ("bad literal", '{"type": "ask", "turn_id": 1, "text": "x", "pipeline": "warp"}', p.ERR_MALFORMED),
    ("nan", '{"type": "interrupt", "turn_id": 1, "heard_s": NaN}', p.ERR_MALFORMED),
    ("inf", '{"type": "interrupt", "turn_id": 1, "heard_s": 1e400}', p.ERR_MALFORMED),
    ("caps not list", '{"type": "hello", "version": "1.0", "token": "x", "capabilities": "all"}', p.ERR_MALFORMED),
    ("bad timings", '{"type": "turn_done", "turn_id": 1, "status": "completed", "timings": [1]}', p.ERR_MALFORMED),
    ("deep nesting", "[" * 100000 + "]" * 100000, p.ERR_TOO_LARGE),
    ("oversized", json.dumps({"type": "ask", "turn_id": 1, "text": "x" * p.MAX_TEXT_FRAME_BYTES}), p.ERR_TOO_LARGE),
]


@pytest.mark.parametrize(("raw", "code"), [(raw, code) for _, raw, code in MALFORMED], ids=[n for n, _, _ in MALFORMED])
def test_malformed_becomes_error(raw: str, code: str) -> None:
    result = p.decode_or_error(raw)
    assert isinstance(result, p.Error)
    assert result.code == code
    assert result.message


def test_nested_json_within_size_is_an_error_not_a_crash() -> None:
    result = p.decode_or_error("[" * 5000 + "]" * 5000)
    assert isinstance(result, p.Error)


@pytest.mark.parametrize(
    "raw",
    [b"", b"PA", b"XX\x01\x00" + bytes(8), b"PA\x02\x00" + bytes(8), b"PA\x01\x00" + bytes(8) + b"\x01"],
    ids=["empty", "short", "bad magic", "bad version", "odd payload"],
)
def test_bad_audio_frames(raw: bytes) -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.AudioFrame.from_wire(raw)
    assert info.value.code == p.ERR_MALFORMED


def test_oversized_audio_frame() -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.AudioFrame.from_wire(b"PA\x01\x00" + bytes(8) + bytes(p.MAX_BINARY_FRAME_BYTES))
    assert info.value.code == p.ERR_TOO_LARGE


def test_version_major() -> None:
    assert p.major("1.0") == 1
    assert p.major("12.3") == 12
    assert p.major("x.1") is None
