"""The conversation store: SQLite in WAL mode in the data directory.

One connection, owned by one worker thread: every call runs there, in the order
it was made, so writes never interleave. ``submit_*`` methods queue a write and
return at once (the order still holds); the ``async`` methods wait for their
result. A write that was queued always runs, even when the coroutine that queued
or awaited it is cancelled.

A reply is written while it streams (status ``streaming``); a process that dies
mid-reply leaves it there, and the next ``open`` marks it ``incomplete``.
A damaged database file is moved aside (``<name>.corrupt-<time>``) and a fresh
one started; a database written by a newer Parley is left untouched and the
store runs in memory. Either way ``notice`` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Final, TypeVar

from backend.protocol import (
    ConversationInfo,
    MessageRole,
    MessageStatus,
    SearchHit,
    StoredMessage,
    Timings,
)

log = logging.getLogger("parley.store")

T = TypeVar("T")

DB_NAME: Final = "conversations.sqlite3"
SCHEMA_VERSION: Final = 1
TITLE_CHARS: Final = 60
MAX_TITLE_CHARS: Final = 200
SNIPPET_CHARS: Final = 140
CLOSE_TIMEOUT_S: Final = 10.0
_MEMORY_ONLY: Final = "conversations are kept in memory only (they will be gone when Parley closes)."

_MIGRATIONS: Final[tuple[str, ...]] = (
    # version 1
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        deleted_at REAL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        text TEXT NOT NULL,
        created_at REAL NOT NULL,
        status TEXT NOT NULL,
        ttft_s REAL,
        ttfa_s REAL,
        total_s REAL,
        timings TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
    CREATE INDEX conversations_by_update ON conversations (updated_at);
    """,
)


class StoreError(Exception):
    """The store could not do what was asked; ``str(exc)`` says why."""


def title_from(question: str) -> str:
    """A conversation title from its first question: the first line, shortened at a word."""
    line = " ".join(question.split())
    if len(line) <= TITLE_CHARS:
        return line or "New conversation"
    cut = line.rfind(" ", 0, TITLE_CHARS)
    return line[: cut if cut > TITLE_CHARS // 2 else TITLE_CHARS].rstrip(" ,;:.") + "…"


def clean_title(title: str) -> str:
    return " ".join(title.split())[:MAX_TITLE_CHARS]


def snippet(text: str, query: str, width: int = SNIPPET_CHARS) -> str:
    """The part of ``text`` around the first match of ``query``, on one line."""
    flat = " ".join(text.split())
    at = flat.lower().find(query.lower())
    if at < 0 or len(flat) <= width:
        return flat[:width] + ("…" if len(flat) > width else "")
    start = max(0, at - width // 3)
    end = min(len(flat), start + width)
    return ("…" if start else "") + flat[start:end] + ("…" if end < len(flat) else "")


def _like_pattern(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _Database:
    """The SQLite side; every method runs on the store's worker thread."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.notice = ""
        self.recovered_replies = 0
        self.conn = self._connect()

    # ---- opening -------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.path is None:
            return self._prepare(sqlite3.connect(":memory:"))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._prepare(sqlite3.connect(self.path))
        except _NewerSchema as exc:
            self.notice = (
                f"The conversation database {self.path} was written by a newer version of Parley "
                f"(schema {exc.version}); it was left untouched and {_MEMORY_ONLY}"
            )
        except sqlite3.DatabaseError as exc:
            aside = self._move_aside()
            self.notice = (
                f"The conversation database was damaged ({exc}); it was moved to {aside} "
                "and a new one was started."
            )
            try:
                return self._prepare(sqlite3.connect(self.path))
            except sqlite3.DatabaseError as again:
                self.notice += f" The new one could not be opened either ({again}); {_MEMORY_ONLY}"
        except OSError as exc:
            self.notice = f"Cannot open the conversation database {self.path} ({exc}); {_MEMORY_ONLY}"
        log.warning("%s", self.notice)
        self.path = None
        return self._prepare(sqlite3.connect(":memory:"))

    def _prepare(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            check = conn.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check[0] if check else 'no answer'}")
            self._check_version(conn)  # before anything writes to a newer database
            if self.path is not None:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    log.warning("SQLite refused WAL mode (%s)", mode)
                conn.execute("PRAGMA synchronous = NORMAL")  # with WAL: safe when the process dies
            self._migrate(conn)
            self.recovered_replies = conn.execute(
                "UPDATE messages SET status = 'incomplete' WHERE status = 'streaming'"
            ).rowcount
            conn.execute("DELETE FROM conversations WHERE deleted_at IS NOT NULL")  # the bin empties at start
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _version(conn: sqlite3.Connection) -> int:
        table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
        if table is None:
            return 0
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _check_version(self, conn: sqlite3.Connection) -> None:
        version = self._version(conn)
        if version > SCHEMA_VERSION:
            raise _NewerSchema(version)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        version = self._version(conn)
        for number in range(version + 1, SCHEMA_VERSION + 1):
            with conn:  # one transaction per migration
                for statement in _MIGRATIONS[number - 1].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
            log.info("conversation database migrated to schema %d", number)

    def _move_aside(self) -> Path:
        assert self.path is not None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                with contextlib.suppress(OSError):
                    source.replace(Path(f"{aside}{suffix}"))
        return aside

    def close(self) -> None:
        self.conn.close()

    # ---- conversations -----------------------------------------------------------

    def create_conversation(self, title: str) -> ConversationInfo:
        now = time.time()
        with self.conn:
            cursor = self.conn.execute(
                "INSERT INTO conversations (title, created_at, updated_at) VALUES (?, ?, ?)",
                (clean_title(title) or "New conversation", now, now),
            )
        conversation = self.conversation(int(cursor.lastrowid or 0))
        assert conversation is not None
        return conversation

    def conversation(self, conversation_id: int) -> ConversationInfo | None:
        row = self.conn.execute(
            "SELECT c.id, c.title, c.created_at, c.updated_at, "
            "(SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) "
            "FROM conversations c WHERE c.id = ? AND c.deleted_at IS NULL",
            (conversation_id,),
        ).fetchone()
        return _info(row) if row else None

    def list_conversations(self, limit: int) -> tuple[list[ConversationInfo], int]:
        rows = self.conn.execute(
            "SELECT c.id, c.title, c.created_at, c.updated_at, "
            "(SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) "
            "FROM conversations c WHERE c.deleted_at IS NULL ORDER BY c.updated_at DESC, c.id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        total = self.conn.execute("SELECT COUNT(*) FROM conversations WHERE deleted_at IS NULL").fetchone()[0]
        return [_info(row) for row in rows], int(total)

    def rename(self, conversation_id: int, title: str) -> bool:
        title = clean_title(title)
        if not title:
            raise StoreError("A conversation needs a title.")
        with self.conn:
            changed = self.conn.execute(
                "UPDATE conversations SET title = ? WHERE id = ? AND deleted_at IS NULL", (title, conversation_id)
            ).rowcount
        return changed > 0

    def delete(self, conversation_id: int) -> bool:
        with self.conn:
            changed = self.conn.execute(
                "UPDATE conversations SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                (time.time(), conversation_id),
            ).rowcount
        return changed > 0

    def restore(self, conversation_id: int) -> bool:
        with self.conn:
            changed = self.conn.execute(
                "UPDATE conversations SET deleted_at = NULL WHERE id = ? AND deleted_at IS NOT NULL",
                (conversation_id,),
            ).rowcount
        return changed > 0

    # ---- messages --------------------------------------------------------------------

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        rows = self.conn.execute(
            "SELECT id, role, text, created_at, status, timings FROM messages WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        ).fetchall()
        return [_message(row) for row in rows]

    def add_message(self, conversation_id: int, role: MessageRole, text: str, status: MessageStatus) -> int:
        now = time.time()
        with self.conn:
            cursor = self.conn.execute(
                "INSERT INTO messages (conversation_id, role, text, created_at, status) VALUES (?, ?, ?, ?, ?)",
                (conversation_id, role, text, now, status),
            )
            self.conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
        return int(cursor.lastrowid or 0)

    def update_reply(
        self, message_id: int, text: str, status: MessageStatus, timings: Timings | None = None
    ) -> None:
        with self.conn:
            if timings is None:
                self.conn.execute("UPDATE messages SET text = ?, status = ? WHERE id = ?", (text, status, message_id))
            else:
                self.conn.execute(
                    "UPDATE messages SET text = ?, status = ?, ttft_s = ?, ttfa_s = ?, total_s = ?, timings = ? "
                    "WHERE id = ?",
                    (
                        text,
                        status,
                        timings.ttft_s,
                        timings.ttfa_s,
                        timings.total_s,
                        json.dumps(asdict(timings)),
                        message_id,
                    ),
                )

    def delete_message(self, message_id: int) -> None:
        with self.conn:
            self.conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def search(self, query: str, limit: int) -> list[SearchHit]:
        query = " ".join(query.split())
        if not query:
            return []
        rows = self.conn.execute(
            "SELECT m.conversation_id, m.id, c.title, m.role, m.text FROM messages m "
            "JOIN conversations c ON c.id = m.conversation_id "
            "WHERE c.deleted_at IS NULL AND m.text LIKE ? ESCAPE '\\' ORDER BY m.id DESC LIMIT ?",
            (_like_pattern(query), limit),
        ).fetchall()
        return [
            SearchHit(conversation_id=cid, message_id=mid, title=title, role=role, snippet=snippet(text, query))
            for cid, mid, title, role, text in rows
        ]

    def journal_mode(self) -> str:
        return str(self.conn.execute("PRAGMA journal_mode").fetchone()[0])


class _NewerSchema(Exception):
    def __init__(self, version: int) -> None:
        super().__init__(f"schema {version}")
        self.version = version


def _info(row: tuple[int, str, float, float, int]) -> ConversationInfo:
    cid, title, created, updated, count = row
    return ConversationInfo(
        conversation_id=cid, title=title, created_at=created, updated_at=updated, message_count=count
    )


def _message(row: tuple[int, str, str, float, str, str]) -> StoredMessage:
    mid, role, text, created, status, timings_json = row
    try:
        timings = Timings.from_value(json.loads(timings_json or "{}"))
    except (ValueError, TypeError):
        timings = Timings()
    known_role: MessageRole = "user" if role == "user" else "assistant"
    known_status: MessageStatus = status if status in _STATUSES else "incomplete"  # type: ignore[assignment]
    return StoredMessage(
        message_id=mid, role=known_role, text=text, created_at=created, status=known_status, timings=timings
    )


_STATUSES: Final = frozenset({"completed", "streaming", "cancelled", "interrupted", "error", "incomplete"})


class ConversationStore:
    """The conversations of one data directory (or of memory only, with ``path=None``)."""

    def __init__(self, database: _Database, executor: ThreadPoolExecutor) -> None:
        self._db = database
        self._executor = executor
        self._closed = False
        self._lock = threading.Lock()

    @classmethod
    async def open(cls, path: Path | None) -> ConversationStore:
        """Opens (creating, migrating or recovering) the database at ``path``; never raises for a bad file."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-store")
        loop = asyncio.get_running_loop()
        database = await loop.run_in_executor(executor, _Database, path)
        store = cls(database, executor)
        if database.recovered_replies:
            log.info("%d reply(ies) cut by a stop of the backend were marked incomplete", database.recovered_replies)
        return store

    @classmethod
    def open_sync(cls, path: Path | None) -> ConversationStore:
        """Like ``open``, for code without an event loop (tests, tools)."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-store")
        return cls(executor.submit(_Database, path).result(), executor)

    @property
    def notice(self) -> str:
        """Set when the database could not be used as it was (moved aside, newer, unreadable)."""
        return self._db.notice

    @property
    def path(self) -> Path | None:
        """The database file, or None when conversations live in memory only."""
        return self._db.path

    @property
    def recovered_replies(self) -> int:
        return self._db.recovered_replies

    # ---- calls -------------------------------------------------------------------

    def _submit(self, fn: Callable[[], T]) -> Future[T]:
        with self._lock:
            if self._closed:
                raise StoreError("The conversation store is closed.")
            future: Future[T] = self._executor.submit(fn)
        future.add_done_callback(_log_failure)
        return future

    async def _call(self, fn: Callable[[], T]) -> T:
        """Runs ``fn`` on the store thread; if cancelled, ``fn`` still runs to its end."""
        try:
            return await asyncio.wrap_future(self._submit(fn))
        except sqlite3.Error as exc:
            raise StoreError(f"The conversation store failed: {exc}") from exc

    def call_sync(self, fn: Callable[[_Database], T]) -> T:
        """Runs ``fn(database)`` on the store thread and waits (tests, tools)."""
        return self._submit(lambda: fn(self._db)).result(CLOSE_TIMEOUT_S)

    async def create_conversation(self, title: str) -> ConversationInfo:
        return await self._call(lambda: self._db.create_conversation(title))

    async def conversation(self, conversation_id: int) -> ConversationInfo | None:
        return await self._call(lambda: self._db.conversation(conversation_id))

    async def list_conversations(self, limit: int = 200) -> tuple[list[ConversationInfo], int]:
        return await self._call(lambda: self._db.list_conversations(limit))

    async def rename(self, conversation_id: int, title: str) -> bool:
        return await self._call(lambda: self._db.rename(conversation_id, title))

    async def delete(self, conversation_id: int) -> bool:
        return await self._call(lambda: self._db.delete(conversation_id))

    async def restore(self, conversation_id: int) -> bool:
        return await self._call(lambda: self._db.restore(conversation_id))

    async def messages(self, conversation_id: int) -> list[StoredMessage]:
        return await self._call(lambda: self._db.messages(conversation_id))

    async def add_message(
        self, conversation_id: int, role: MessageRole, text: str, status: MessageStatus = "completed"
    ) -> int:
        return await self._call(lambda: self._db.add_message(conversation_id, role, text, status))

    async def delete_message(self, message_id: int) -> None:
        await self._call(lambda: self._db.delete_message(message_id))

    async def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        return await self._call(lambda: self._db.search(query, limit))

    def submit_reply(
        self, message_id: int, text: str, status: MessageStatus, timings: Timings | None = None
    ) -> None:
        """Queues a write of a reply's text and status (in call order); returns at once."""
        try:
            self._submit(lambda: self._db.update_reply(message_id, text, status, timings))
        except StoreError:
            log.warning("reply %d not stored: the store is closed", message_id)

    async def flush(self) -> None:
        """Waits until every write queued so far is done."""
        await self._call(lambda: None)

    async def aclose(self) -> None:
        """Finishes the queued writes (bounded) and closes the database; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        closing = self._executor.submit(self._db.close)
        try:
            await asyncio.wait_for(asyncio.wrap_future(closing), CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.error("the conversation store did not close within %.0f s", CLOSE_TIMEOUT_S)
        self._executor.shutdown(wait=False)

    def close_sync(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._executor.submit(self._db.close).result(CLOSE_TIMEOUT_S)
        self._executor.shutdown(wait=True)


def _log_failure(future: Future[T]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a conversation store call failed", exc_info=future.exception())


def default_path(data_dir: Path) -> Path:
    return data_dir / DB_NAME
