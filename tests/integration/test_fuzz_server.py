"""Protocol fuzzing with hypothesis (issue 6): random JSON, wrong types, huge numbers, unknown
message types, bad UTF-8, truncated and oversized binary frames, all against the real server.

The server answers each with an ``Error`` (or, for frames beyond the hard limit or broken
UTF-8, closes that one connection cleanly); it never crashes, every frame it sends is a valid
message, and a bystander session opened before the fuzzing still works after it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from backend import protocol as p
from backend.limits import ConnectionLimits
from tests.fakes.engines import ScriptedLLM, ToneTTS
from tests.fakes.live_server import TOKEN, ServerThread

T = 10.0
RELAXED = ConnectionLimits(messages_per_s=100_000, burst=100_000)
CLEAN_CLOSES = {1007, 1008, 1009}  # bad UTF-8, policy, too big
ERROR_CODES = {
    p.ERR_MALFORMED, p.ERR_UNKNOWN_TYPE, p.ERR_TOO_LARGE, p.ERR_STATE, p.ERR_BUSY, p.ERR_PROVIDER,
    p.ERR_CONFIG, p.ERR_NOT_FOUND, p.ERR_STORE, p.ERR_RATE_LIMITED,
}
FUZZ = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# ---- strategies ---------------------------------------------------------------------------------------

scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=40)
    | st.integers(-(10**40), 10**40).map(lambda n: n * 10**30)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
FIELD_NAMES = sorted({f.name for cls in p.MESSAGE_TYPES.values() for f in fields(cls)})


@st.composite
def message_like(draw: st.DrawFn) -> str:
    """A known (or unknown) type with its own fields, other fields, and values of any type."""
    kind = draw(st.sampled_from(sorted(p.MESSAGE_TYPES)) | st.text(max_size=20))
    names = draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=6, unique=True))
    body: dict[str, Any] = {name: draw(json_values) for name in names}
    body["type"] = kind
    return json.dumps(body)


@st.composite
def special_text(draw: st.DrawFn) -> str:
    choice = draw(st.integers(0, 4))
    if choice == 0:
        return "[" * draw(st.integers(100, 5000))  # deep nesting
    if choice == 1:
        return '{"type": "ask", "turn_id": 1, "text": "' + "x" * draw(st.integers(60_000, 300_000)) + '"}'
    if choice == 2:
        return '{"type": "ask", "turn_id": ' + "9" * draw(st.integers(4000, 20_000)) + ', "text": "hi"}'
    if choice == 3:
        return json.dumps({"type": "ask", "turn_id": draw(st.integers(2**32, 2**64)), "text": "hi"})
    return json.dumps({"type": "hello", "version": "1.0", "token": TOKEN})  # a second hello


text_frames = (
    st.text(max_size=200) | json_values.map(json.dumps) | message_like() | special_text()
)


@st.composite
def binary_frames(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 4))
    if choice == 0:
        return draw(st.binary(max_size=64))
    header = p.AudioFrame(turn_id=draw(st.integers(0, p.MAX_TURN_ID)), seq=draw(st.integers(0, 2**32 - 1)), pcm=b"")
    head = header.to_wire()
    if choice == 1:
        return head[: draw(st.integers(0, len(head) - 1))]  # truncated header
    if choice == 2:
        return head + draw(st.binary(max_size=2000))  # odd and even payloads
    if choice == 3:
        return head + bytes(draw(st.integers(p.MAX_BINARY_FRAME_BYTES, p.MAX_BINARY_FRAME_BYTES + 100_000)))
    return head + bytes(draw(st.integers(5 * p.MAX_BINARY_FRAME_BYTES, 6 * p.MAX_BINARY_FRAME_BYTES)))


# ---- the server, a bystander, and the fuzzing connection --------------------------------------------


class Fuzzer:
    """One connection to fuzz through; reopened when the server closed it (cleanly)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: ClientConnection | None = None
        self.closes: list[int] = []
        self.errors: list[str] = []

    def connection(self) -> ClientConnection:
        if self.ws is None:
            self.ws = connect(self.url, max_size=None, open_timeout=T).__enter__()
            self.ws.send(p.Hello(version=p.PROTOCOL_VERSION, token=TOKEN).to_wire())
            assert isinstance(p.decode(self.ws.recv(T)), p.Welcome)
        return self.ws

    def send_and_check(self, frame: str | bytes, *, text: bool | None = None) -> None:
        """Sends the frame, then a probe; every answer must be a valid message, until the probe's."""
        ws = self.connection()
        try:
            ws.send(frame, text=text)
            ws.send(p.ListConversations().to_wire())
            while True:
                raw = ws.recv(T)
                if isinstance(raw, bytes):
                    p.AudioFrame.from_wire(raw)  # the audio of a fuzzed question: must parse
                    continue
                message = p.decode(raw)  # raises on anything invalid from the server
                if isinstance(message, p.Error):
                    assert message.code in ERROR_CODES, message
                    self.errors.append(message.code)
                if isinstance(message, p.ConversationList):
                    return
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
            assert code in CLEAN_CLOSES, f"closed with {code}"
            self.closes.append(code)
            self.ws = None

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(ScriptedLLM(["Fine", " thanks."]), ToneTTS(seconds_per_word=0.02), limits=RELAXED) as running:
        yield running


@pytest.fixture(scope="module")
def bystander(server: ServerThread) -> Iterator[ClientConnection]:
    with connect(server.url, open_timeout=T) as ws:
        ws.send(p.Hello(version=p.PROTOCOL_VERSION, token=TOKEN).to_wire())
        assert isinstance(p.decode(ws.recv(T)), p.Welcome)
        yield ws


@pytest.fixture(scope="module")
def fuzzer(server: ServerThread, bystander: ClientConnection) -> Iterator[Fuzzer]:
    fuzz = Fuzzer(server.url)
    yield fuzz
    fuzz.close()


@FUZZ
@given(frame=text_frames)
def test_random_text_frames_get_errors_not_crashes(fuzzer: Fuzzer, frame: str) -> None:
    fuzzer.send_and_check(frame)


@settings(FUZZ, max_examples=150)
@given(frame=binary_frames())
def test_random_binary_frames_get_errors_or_a_clean_close(fuzzer: Fuzzer, frame: bytes) -> None:
    fuzzer.send_and_check(frame)


@settings(FUZZ, max_examples=40)
@given(frame=st.binary(min_size=1, max_size=40))
def test_text_frames_that_are_not_utf8_close_only_their_connection(fuzzer: Fuzzer, frame: bytes) -> None:
    fuzzer.send_and_check(frame, text=True)


def test_the_bystander_session_still_works_after_the_fuzzing(fuzzer: Fuzzer, bystander: ClientConnection) -> None:
    assert p.ERR_MALFORMED in fuzzer.errors and p.ERR_TOO_LARGE in fuzzer.errors  # the fuzzing reached the server
    assert fuzzer.closes  # and closed some of its connections
    bystander.send(p.Ask(turn_id=1, text="Still with me?").to_wire())
    text, audio = "", 0
    while True:
        raw = bystander.recv(T)
        if isinstance(raw, bytes):
            audio += 1
            continue
        message = p.decode(raw)
        if isinstance(message, p.TextDelta) and message.turn_id == 1:
            text += message.text
        if isinstance(message, p.TurnDone) and message.turn_id == 1:
            assert message.status == "completed" and text == "Fine thanks." and audio > 0
            return
