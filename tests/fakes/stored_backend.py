"""The real backend server (sessions, store, settings) with canned engines, in a background thread.

For app tests that need stored conversations without loading models: the
protocol, the SQLite store and the engine swaps are the product's own; only the
LLM and the voice are hand-written fakes.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

from backend.config import Config
from backend.engine_hub import EngineHub
from backend.engines.base import ChatMessage, ProgressCallback
from backend.protocol import Timings
from backend.reconfigure import EngineConfigurator
from backend.server import ParleyServer
from backend.store import ConversationStore
from tests.fakes.engines import ToneTTS

TOKEN = "stored-backend-token"


class CannedLLM:
    """Answers with the first canned reply whose key is in the question, word by word."""

    def __init__(self, replies: dict[str, str], default: str, delay_s: float = 0.005, name: str = "canned") -> None:
        self.replies = replies
        self.default = default
        self.delay_s = delay_s
        self._name = name
        self.seen: list[list[ChatMessage]] = []

    @property
    def name(self) -> str:
        return self._name

    async def load(self, progress: ProgressCallback) -> None:
        progress("Loading the canned model", 1.0)

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[str, None]:
        self.seen.append(list(messages))
        question = messages[-1].content.lower()
        reply = next((text for key, text in self.replies.items() if key in question), self.default)
        for i, word in enumerate(reply.split(" ")):
            await asyncio.sleep(self.delay_s)
            yield word if i == 0 else f" {word}"

    async def aclose(self) -> None:
        pass


def seed(path: Path, conversations: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> list[int]:
    """Writes conversations of (question, reply) pairs into the store at ``path``; returns their ids."""
    store = ConversationStore.open_sync(path)
    try:
        return [store.call_sync(functools.partial(_seed_one, title, pairs)) for title, pairs in conversations]
    finally:
        store.close_sync()


def _seed_one(title: str, pairs: Sequence[tuple[str, str]], db: Any) -> int:
    info = db.create_conversation(title)
    for i, (question, reply) in enumerate(pairs):
        db.add_message(info.conversation_id, "user", question, "completed")
        reply_id = db.add_message(info.conversation_id, "assistant", "", "streaming")
        timings = Timings(ttft_s=0.18 + 0.01 * i, ttfa_s=0.41 + 0.02 * i, total_s=2.4, llm_s=1.6, audio_s=3.1)
        db.update_reply(reply_id, reply, "completed", timings)
    return int(info.conversation_id)


class StoredBackendThread:
    """Runs ``ParleyServer`` with a store at ``data_dir`` on its own loop in a daemon thread."""

    def __init__(self, data_dir: Path, llm: Any | None = None) -> None:
        self.data_dir = data_dir
        self.llm = llm or CannedLLM({}, "Here is a short answer. It is written for the test.")
        self.built: list[Any] = []
        self.url = ""
        self.store: ConversationStore | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stored-backend", daemon=True)
        self._server: ParleyServer | None = None
        self._hub: EngineHub | None = None
        self._configurator: EngineConfigurator | None = None

    def __enter__(self) -> StoredBackendThread:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(20.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        """Runs a coroutine on the backend's loop (e.g. a store query) and returns its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self) -> str:
        hub = EngineHub(self.llm, None)
        store = await ConversationStore.open(self.data_dir / "conversations.sqlite3")

        def build_llm(section: Any) -> CannedLLM:
            engine = CannedLLM({}, f"Now answering with {section.model}.", name=section.model)
            self.built.append(engine)
            return engine

        def build_tts(section: Any) -> ToneTTS | None:
            return None if section.provider == "off" else ToneTTS()

        configurator = EngineConfigurator(
            hub,
            Config(),
            {"llm": build_llm, "tts": build_tts},
            on_system_prompt=lambda prompt: server.set_system_prompt(prompt),
        )
        server = ParleyServer(hub, TOKEN, "Be brief.", 4096, store=store, configurator=configurator)
        url = await server.start("127.0.0.1", 0)
        hub.start_loading()
        self._server, self._hub, self.store, self._configurator = server, hub, store, configurator
        return url

    async def _stop(self) -> None:
        if self._configurator is not None:
            await self._configurator.aclose()
        if self._server is not None:
            await self._server.aclose()
        if self.store is not None:
            await self.store.aclose()
        if self._hub is not None:
            await self._hub.aclose()

    def stop(self) -> None:
        """Stops the server and the thread; safe to call twice."""
        if self._loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(20.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
            self._loop.close()
