"""The conversation store: WAL mode, ordering, search, recovery of cut replies, damaged files."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from backend import store as store_module
from backend.export import to_markdown
from backend.protocol import Timings
from backend.store import ConversationStore, StoreError, snippet, title_from

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def test_the_database_is_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "data" / "conversations.sqlite3"

    async def scenario() -> None:
        store = await ConversationStore.open(path)
        try:
            assert store.path == path and store.notice == ""
            await store.create_conversation("Hello")
        finally:
            await store.aclose()

    run(scenario())
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == store_module.SCHEMA_VERSION
        assert conn.execute("SELECT title FROM conversations").fetchall() == [("Hello",)]


def test_conversations_are_listed_newest_first_with_their_messages(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await ConversationStore.open(tmp_path / "c.sqlite3")
        try:
            first = await store.create_conversation("First")
            second = await store.create_conversation("Second")
            await store.add_message(first.conversation_id, "user", "a later question")
            listed, total = await store.list_conversations()
            assert [c.title for c in listed] == ["First", "Second"] and total == 2
            assert listed[0].message_count == 1
            reply = await store.add_message(first.conversation_id, "assistant", "", "streaming")
            store.submit_reply(reply, "The answer.", "completed", Timings(ttft_s=0.1, ttfa_s=0.3, total_s=1.0))
            messages = await store.messages(first.conversation_id)
            assert [(m.role, m.text, m.status) for m in messages] == [
                ("user", "a later question", "completed"),
                ("assistant", "The answer.", "completed"),
            ]
            assert messages[1].timings.ttfa_s == 0.3
            assert await store.messages(second.conversation_id) == []
        finally:
            await store.aclose()

    run(scenario())


def test_rename_delete_and_restore(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await ConversationStore.open(tmp_path / "c.sqlite3")
        try:
            info = await store.create_conversation("Old title")
            assert await store.rename(info.conversation_id, "  New   title ")
            assert (await store.conversation(info.conversation_id)).title == "New title"  # type: ignore[union-attr]
            with pytest.raises(StoreError):
                await store.rename(info.conversation_id, "   ")
            assert await store.delete(info.conversation_id)
            assert await store.conversation(info.conversation_id) is None
            assert (await store.list_conversations())[1] == 0
            assert not await store.delete(info.conversation_id)
            assert await store.restore(info.conversation_id)
            assert (await store.list_conversations())[1] == 1
            assert not await store.rename(12345, "nothing there")
        finally:
            await store.aclose()

    run(scenario())


def test_deleted_conversations_are_purged_at_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"

    async def delete_one() -> int:
        store = await ConversationStore.open(path)
        info = await store.create_conversation("Gone soon")
        await store.add_message(info.conversation_id, "user", "words")
        await store.delete(info.conversation_id)
        await store.aclose()
        return info.conversation_id

    conversation_id = run(delete_one())

    async def reopen() -> None:
        store = await ConversationStore.open(path)
        try:
            assert not await store.restore(conversation_id)
            assert await store.messages(conversation_id) == []  # cascaded
        finally:
            await store.aclose()

    run(reopen())


def test_search_finds_words_in_messages_and_escapes_wildcards(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await ConversationStore.open(tmp_path / "c.sqlite3")
        try:
            trip = await store.create_conversation("Trip")
            await store.add_message(trip.conversation_id, "user", "Which trains go to Lyon?")
            await store.add_message(trip.conversation_id, "assistant", "The TGV goes to LYON every hour.")
            cooking = await store.create_conversation("Cooking")
            await store.add_message(cooking.conversation_id, "user", "100% butter or 50_50?")
            hits = await store.search("lyon")
            assert [(h.title, h.role) for h in hits] == [("Trip", "assistant"), ("Trip", "user")]
            assert "LYON" in hits[0].snippet
            assert [h.title for h in await store.search("100%")] == ["Cooking"]
            assert await store.search("0%b") == []  # % is not a wildcard
            assert await store.search("   ") == []
            await store.delete(trip.conversation_id)
            assert await store.search("lyon") == []
        finally:
            await store.aclose()

    run(scenario())


def test_a_reply_left_streaming_is_kept_and_marked_incomplete_at_the_next_start(tmp_path: Path) -> None:
    """What a process killed mid-reply leaves behind (the real kill: tests/integration/test_crash_recovery.py)."""
    path = tmp_path / "c.sqlite3"
    store = ConversationStore.open_sync(path)
    info = store.call_sync(lambda db: db.create_conversation("Cut"))
    store.call_sync(lambda db: db.add_message(info.conversation_id, "user", "Tell me a story", "completed"))
    reply = store.call_sync(lambda db: db.add_message(info.conversation_id, "assistant", "", "streaming"))
    store.submit_reply(reply, "Once upon a time", "streaming")
    store.close_sync()

    async def reopen() -> None:
        again = await ConversationStore.open(path)
        try:
            assert again.recovered_replies == 1
            messages = await again.messages(info.conversation_id)
            assert (messages[-1].text, messages[-1].status) == ("Once upon a time", "incomplete")
        finally:
            await again.aclose()

    run(reopen())


def test_a_damaged_file_is_moved_aside_and_a_new_one_started(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    path.write_bytes(b"this is not a database at all" * 100)

    async def scenario() -> None:
        store = await ConversationStore.open(path)
        try:
            assert "damaged" in store.notice and ".corrupt-" in store.notice
            assert store.path == path
            await store.create_conversation("Fresh start")
            assert (await store.list_conversations())[1] == 1
        finally:
            await store.aclose()

    run(scenario())
    aside = list(tmp_path.glob("conversations.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")


def test_a_database_from_a_newer_parley_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (99)")
    before = path.read_bytes()

    async def scenario() -> None:
        store = await ConversationStore.open(path)
        try:
            assert "newer version" in store.notice and store.path is None
            await store.create_conversation("In memory")
        finally:
            await store.aclose()

    run(scenario())
    assert path.read_bytes() == before


def test_a_closed_store_refuses_calls_and_closing_twice_is_fine(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await ConversationStore.open(None)
        await store.aclose()
        await store.aclose()
        with pytest.raises(StoreError):
            await store.list_conversations()
        store.submit_reply(1, "dropped", "completed")  # logged, not raised

    run(scenario())


def test_titles_and_snippets() -> None:
    assert title_from("  What is\nthe capital   of France? ") == "What is the capital of France?"
    long = title_from("Could you please explain to me in great detail how the tides work on the coast of Brittany")
    assert long.endswith("…") and len(long) <= store_module.TITLE_CHARS + 1 and " " in long
    assert title_from("   ") == "New conversation"
    text = "word " * 100 + "NEEDLE " + "word " * 100
    cut = snippet(text, "needle")
    assert "NEEDLE" in cut and cut.startswith("…") and cut.endswith("…") and len(cut) <= store_module.SNIPPET_CHARS + 2


def test_markdown_export_quotes_the_person_and_marks_cut_replies(tmp_path: Path) -> None:
    async def scenario() -> str:
        store = await ConversationStore.open(None)
        try:
            info = await store.create_conversation("Export me")
            await store.add_message(info.conversation_id, "user", "# not a heading\nsecond line")
            await store.add_message(info.conversation_id, "assistant", "**Bold** answer.", "completed")
            await store.add_message(info.conversation_id, "user", "And then?")
            await store.add_message(info.conversation_id, "assistant", "Half", "cancelled")
            messages = await store.messages(info.conversation_id)
            return to_markdown(info, messages)
        finally:
            await store.aclose()

    markdown = run(scenario())
    assert markdown.startswith("# Export me\n")
    assert "> # not a heading\n> second line" in markdown
    assert "**Bold** answer." in markdown
    assert markdown.count("## You (") == 2 and markdown.count("## Parley (") == 2
    assert "*The reply was stopped here.*" in markdown
