"""The conversation and settings messages: round trips, nested records, and malformed input."""

from __future__ import annotations

import json

import pytest

from backend import protocol as p
from backend.conversation_requests import message_batches
from backend.protocol import MAX_TEXT_FRAME_BYTES

INFO = p.ConversationInfo(conversation_id=3, title="Tides", created_at=1.79e9, updated_at=1.79e9 + 5, message_count=2)
STORED = p.StoredMessage(
    message_id=9,
    role="assistant",
    text="The moon pulls the sea.",
    created_at=1.79e9,
    status="incomplete",
    timings=p.Timings(ttft_s=0.2, ttfa_s=0.4, total_s=1.0, tokens=5),
)
SETTINGS = p.EngineSettings(provider="openai", model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key="sk-x")

ROUND_TRIP = [
    p.ListConversations(),
    p.NewConversation(),
    p.OpenConversation(conversation_id=3),
    p.RenameConversation(conversation_id=3, title="Tides ✓"),
    p.DeleteConversation(conversation_id=3),
    p.RestoreConversation(conversation_id=3),
    p.SearchConversations(query="moon", limit=10),
    p.ExportConversation(conversation_id=3),
    p.Regenerate(turn_id=5, speak=False),
    p.Configure(
        llm=SETTINGS,
        tts=p.EngineSettings(provider="embedded", voice="joe", speed=1.2),
        stt=p.EngineSettings(provider="embedded", model="base"),
        system_prompt="Be brief.",
    ),
    p.ConversationList(conversations=(INFO,), current_id=3, total=1),
    p.ConversationList(),
    p.ConversationOpened(conversation_id=None),
    p.ConversationOpened(conversation_id=3, title="Tides", message_count=1),
    p.ConversationMessages(conversation_id=3, messages=(STORED,), last=False),
    p.SearchResults(
        query="moon",
        hits=(p.SearchHit(conversation_id=3, message_id=9, title="Tides", role="assistant", snippet="…moon…"),),
    ),
    p.ConversationExport(conversation_id=3, title="Tides", markdown="# Tides\n", last=True),
    p.Notice(code="store", message="The database was moved aside."),
]


@pytest.mark.parametrize("message", ROUND_TRIP, ids=lambda m: type(m).__name__)
def test_round_trip(message: p.Message) -> None:
    wire = message.to_wire()
    assert json.loads(wire)["type"] == message.TYPE
    assert p.decode(wire) == message


def test_records_are_not_frames_of_their_own() -> None:
    record = {"conversation_id": 1, "title": "x", "created_at": 1, "updated_at": 1}
    wire = json.dumps({"type": "conversation_info", **record})
    error = p.decode_or_error(wire)
    assert isinstance(error, p.Error) and error.code == p.ERR_UNKNOWN_TYPE


def test_keys_never_show_in_logs() -> None:
    message = p.Configure(llm=SETTINGS, tts=p.EngineSettings("off"), stt=p.EngineSettings("embedded"))
    assert "sk-x" not in repr(message) and "<hidden>" in repr(message)


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"type": "open_conversation"}, "missing field 'conversation_id'"),
        ({"type": "open_conversation", "conversation_id": -1}, "non-negative"),
        ({"type": "conversation_opened", "conversation_id": "3"}, "integer or null"),
        ({"type": "conversation_list", "conversations": {"a": 1}}, "list of objects"),
        ({"type": "conversation_list", "conversations": [1, 2]}, "list of objects"),
        ({"type": "conversation_list", "conversations": [{"conversation_id": 1}]}, "missing field 'title'"),
        (
            {
                "type": "conversation_list",
                "conversations": [{"conversation_id": 1, "title": "t", "created_at": -5, "updated_at": 1}],
            },
            "seconds since 1970",
        ),
        (
            {
                "type": "conversation_messages",
                "conversation_id": 1,
                "messages": [{"message_id": 1, "role": "system", "text": "x", "created_at": 1}],
            },
            "must be one of user, assistant",
        ),
        (
            {
                "type": "conversation_messages",
                "conversation_id": 1,
                "messages": [{"message_id": 1, "role": "user", "text": "x", "created_at": 1, "status": "lost"}],
            },
            "must be one of",
        ),
        (
            {
                "type": "conversation_messages",
                "conversation_id": 1,
                "messages": [{"message_id": 1, "role": "user", "text": "x", "created_at": 1, "timings": 3}],
            },
            "timings must be an object",
        ),
        ({"type": "configure", "llm": "openai", "tts": {}, "stt": {}}, "must be an object"),
        ({"type": "configure", "llm": {"provider": 1}, "tts": {}, "stt": {}}, "must be a string"),
        ({"type": "search_conversations", "query": None}, "must be a string"),
        ({"type": "regenerate", "turn_id": True}, "integer"),
    ],
)
def test_malformed_messages_become_errors(payload: dict[str, object], words: str) -> None:
    error = p.decode_or_error(json.dumps(payload))
    assert isinstance(error, p.Error), error
    assert error.code == p.ERR_MALFORMED
    assert words in error.message


def test_long_conversations_are_sent_in_batches_that_fit_a_frame() -> None:
    messages = [
        p.StoredMessage(message_id=i, role="user" if i % 2 else "assistant", text="é\"\n" * 3000, created_at=1.79e9)
        for i in range(40)
    ]
    huge = p.StoredMessage(message_id=99, role="user", text="\u0001" * 60_000, created_at=1.79e9)
    batches = message_batches([*messages, huge])
    assert len(batches) > 1
    sent = [p.ConversationMessages(conversation_id=1, messages=b, last=False) for b in batches]
    for message in sent:
        wire = message.to_wire()
        assert len(wire.encode()) <= MAX_TEXT_FRAME_BYTES
        assert p.decode(wire) == message
    flat = [m for b in batches for m in b]
    assert [m.message_id for m in flat] == [*range(40), 99]
    assert flat[:40] == messages
    assert flat[-1].text.endswith("export the conversation to read it]")


def test_an_empty_conversation_is_one_empty_batch() -> None:
    assert message_batches([]) == [()]
