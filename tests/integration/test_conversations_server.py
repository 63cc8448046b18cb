"""Stored conversations and live settings over the real websocket server, with fake engines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect

from backend import protocol as p
from backend.config import Config
from backend.engine_hub import EngineHub
from backend.reconfigure import EngineConfigurator
from backend.server import ParleyServer
from backend.store import ConversationStore
from tests.fakes.engines import ScriptedLLM, ToneTTS

TOKEN = "conversations-token"
T = 10.0
M = TypeVar("M", bound=p.Message)


@dataclass
class Backend:
    url: str
    hub: EngineHub
    store: ConversationStore
    configurator: EngineConfigurator
    built: list[Any]


@asynccontextmanager
async def running_backend(data: Path, llm: ScriptedLLM | None = None) -> AsyncIterator[Backend]:
    hub = EngineHub(llm or ScriptedLLM(["Paris", " is", " the", " capital."], delay_s=0.002), ToneTTS())
    store = await ConversationStore.open(data / "conversations.sqlite3")
    built: list[Any] = []

    def build_llm(section: Any) -> ScriptedLLM:
        engine = ScriptedLLM([f"Reply from {section.model}."])
        built.append(engine)
        return engine

    def build_tts(section: Any) -> ToneTTS | None:
        return None if section.provider == "off" else ToneTTS()

    server: ParleyServer | None = None
    configurator = EngineConfigurator(
        hub,
        Config(),
        {"llm": build_llm, "tts": build_tts},
        on_system_prompt=lambda prompt: server.set_system_prompt(prompt) if server else None,
    )
    server = ParleyServer(hub, TOKEN, "Be brief.", 4096, store=store, configurator=configurator)
    url = await server.start("127.0.0.1", 0)
    hub.start_loading()
    try:
        yield Backend(url, hub, store, configurator, built)
    finally:
        await asyncio.wait_for(configurator.aclose(), T)
        await asyncio.wait_for(server.aclose(), T)
        await asyncio.wait_for(store.aclose(), T)
        await asyncio.wait_for(hub.aclose(), T)


class Client:
    """A raw protocol client that keeps every message it reads."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.turn = 0

    async def hello(self) -> None:
        await self.ws.send(p.Hello(version=p.PROTOCOL_VERSION, token=TOKEN, client="tests").to_wire())
        await self.expect(p.Welcome)
        while (await self.expect(p.Status)).state != "ready":
            pass

    async def send(self, message: p.Message) -> None:
        await self.ws.send(message.to_wire())

    async def expect(self, kind: type[M]) -> M:
        """The next message of ``kind`` (skipping audio and others)."""
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), T)
            if isinstance(raw, bytes):
                continue
            message = p.decode(raw)
            if isinstance(message, kind):
                return message
            if isinstance(message, p.Error) and kind is not p.Error:
                raise AssertionError(f"unexpected {message}")

    async def ask(self, text: str) -> p.TurnDone:
        self.turn += 1
        await self.send(p.Ask(turn_id=self.turn, text=text, speak=False))
        return await self.expect(p.TurnDone)

    async def listing(self) -> p.ConversationList:
        await self.send(p.ListConversations())
        return await self.expect(p.ConversationList)

    async def open(self, conversation_id: int) -> tuple[p.ConversationOpened, list[p.StoredMessage]]:
        await self.send(p.OpenConversation(conversation_id=conversation_id))
        opened = await self.expect(p.ConversationOpened)
        messages: list[p.StoredMessage] = []
        while True:
            batch = await self.expect(p.ConversationMessages)
            messages += batch.messages
            if batch.last:
                return opened, messages


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))


def contents(messages: list[Any]) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in messages]


def test_create_list_switch_and_restore_the_context(tmp_path: Path) -> None:
    llm = ScriptedLLM(["An", " answer."], delay_s=0.001)

    async def scenario() -> None:
        async with running_backend(tmp_path, llm) as backend, connect(backend.url) as ws:
            client = Client(ws)
            await client.hello()
            assert (await client.listing()).conversations == ()
            assert (await client.ask("What is the capital of France?")).status == "completed"
            listing = await client.listing()
            assert [c.title for c in listing.conversations] == ["What is the capital of France?"]
            first = listing.conversations[0].conversation_id
            assert listing.current_id == first
            await client.ask("And of Italy?")
            assert contents(llm.seen[-1])[1:] == [
                ("user", "What is the capital of France?"),
                ("assistant", "An answer."),
                ("user", "And of Italy?"),
            ]

            await client.send(p.NewConversation())
            assert (await client.expect(p.ConversationOpened)).conversation_id is None
            await client.ask("Something else")
            assert contents(llm.seen[-1]) == [("system", "Be brief."), ("user", "Something else")]
            listing = await client.listing()
            assert [c.title for c in listing.conversations] == ["Something else", "What is the capital of France?"]
            assert listing.current_id != first

            opened, messages = await client.open(first)
            title = listing.conversations[1].title
            assert (opened.conversation_id, opened.title, opened.message_count) == (first, title, 4)
            assert [(m.role, m.text, m.status) for m in messages] == [
                ("user", "What is the capital of France?", "completed"),
                ("assistant", "An answer.", "completed"),
                ("user", "And of Italy?", "completed"),
                ("assistant", "An answer.", "completed"),
            ]
            assert messages[1].timings.ttft_s is not None
            await client.ask("And of Spain?")
            seen = contents(llm.seen[-1])
            assert seen[0] == ("system", "Be brief.") and seen[1:4] == [
                ("user", "What is the capital of France?"),
                ("assistant", "An answer."),
                ("user", "And of Italy?"),
            ]
            assert seen[-1] == ("user", "And of Spain?")
            assert (await client.listing()).current_id == first

    run(scenario)


def test_rename_delete_undo_search_and_export(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_backend(tmp_path) as backend, connect(backend.url) as ws:
            client = Client(ws)
            await client.hello()
            await client.ask("Tell me about tides")
            current = (await client.listing()).current_id
            assert current is not None
            await client.send(p.RenameConversation(conversation_id=current, title="Tides"))
            assert [c.title for c in (await client.expect(p.ConversationList)).conversations] == ["Tides"]

            await client.send(p.SearchConversations(query="capital"))
            results = await client.expect(p.SearchResults)
            assert [(h.title, h.role) for h in results.hits] == [("Tides", "assistant")]
            assert "capital" in results.hits[0].snippet

            await client.send(p.ExportConversation(conversation_id=current))
            export = await client.expect(p.ConversationExport)
            assert export.last and export.title == "Tides"
            assert export.markdown.startswith("# Tides") and "> Tell me about tides" in export.markdown
            assert "Paris is the capital." in export.markdown

            await client.send(p.DeleteConversation(conversation_id=current))
            assert (await client.expect(p.ConversationOpened)).conversation_id is None  # it was the current one
            assert (await client.expect(p.ConversationList)).conversations == ()
            await client.send(p.SearchConversations(query="capital"))
            assert (await client.expect(p.SearchResults)).hits == ()
            await client.send(p.RestoreConversation(conversation_id=current))
            assert [c.title for c in (await client.expect(p.ConversationList)).conversations] == ["Tides"]

            await client.send(p.OpenConversation(conversation_id=4242))
            error = await client.expect(p.Error)
            assert error.code == p.ERR_NOT_FOUND

    run(scenario)


def test_a_cancelled_reply_is_stored_as_far_as_it_went(tmp_path: Path) -> None:
    llm = ScriptedLLM([f" word{i}" for i in range(400)], delay_s=0.01)

    async def scenario() -> None:
        async with running_backend(tmp_path, llm) as backend, connect(backend.url) as ws:
            client = Client(ws)
            await client.hello()
            await client.send(p.Ask(turn_id=1, text="Talk for a long time", speak=False))
            await client.expect(p.TextDelta)
            await asyncio.sleep(0.8)  # longer than a checkpoint interval
            conversation = (await backend.store.list_conversations())[0][0].conversation_id
            await backend.store.flush()
            streaming = (await backend.store.messages(conversation))[-1]
            assert streaming.status == "streaming" and streaming.text.startswith(" word0")  # checkpointed
            await client.send(p.Cancel(turn_id=1))
            done = await client.expect(p.TurnDone)
            assert done.status == "cancelled" and done.text
            await backend.store.flush()
            stored = (await backend.store.messages(conversation))[-1]
            assert (stored.text, stored.status) == (done.text, "cancelled")
            assert len(stored.text) >= len(streaming.text)

    run(scenario)


def test_regenerate_replaces_the_last_reply(tmp_path: Path) -> None:
    llm = ScriptedLLM(["Answer."], delay_s=0.001)

    async def scenario() -> None:
        async with running_backend(tmp_path, llm) as backend, connect(backend.url) as ws:
            client = Client(ws)
            await client.hello()
            await client.send(p.Regenerate(turn_id=1))
            assert (await client.expect(p.Error)).code == p.ERR_STATE  # nothing to regenerate yet
            client.turn = 1
            await client.ask("First question")
            await client.ask("Second question")
            await client.send(p.Regenerate(turn_id=3, speak=False))
            started = await client.expect(p.TurnStarted)
            assert (started.turn_id, started.text) == (3, "Second question")
            assert (await client.expect(p.TurnDone)).status == "completed"
            assert contents(llm.seen[-1])[1:] == [
                ("user", "First question"),
                ("assistant", "Answer."),
                ("user", "Second question"),
            ]
            current = (await client.listing()).current_id
            assert current is not None
            _, messages = await client.open(current)
            assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]

    run(scenario)


def test_configure_swaps_only_the_engines_that_changed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_backend(tmp_path) as backend, connect(backend.url) as ws:
            client = Client(ws)
            await client.hello()
            same = p.Configure(
                llm=p.EngineSettings(provider="embedded", model="default", api_key="ignored-for-embedded"),
                tts=p.EngineSettings(provider="embedded", voice="joe"),
                stt=p.EngineSettings(provider="embedded", model="tiny"),
            )
            await client.send(same)
            await client.send(p.ListConversations())
            await client.expect(p.ConversationList)  # the Configure was handled before this
            assert backend.built == [] and not backend.configurator.busy

            changed = p.Configure(
                llm=p.EngineSettings(provider="embedded", model="fast"),
                tts=p.EngineSettings(provider="off"),
                stt=p.EngineSettings(provider="embedded", model="tiny"),
                system_prompt="Answer in French.",
            )
            await client.send(changed)
            assert (await client.expect(p.Status)).state == "loading"
            while (status := await client.expect(p.Status)).state == "loading":
                pass
            assert status.state == "ready" and status.tts == ""
            assert len(backend.built) == 1 and backend.hub.tts is None
            done = await client.ask("Bonjour")
            assert done.text == "Reply from fast."
            assert contents(backend.built[0].seen[-1])[0] == ("system", "Answer in French.")

            await client.send(
                p.Configure(
                    llm=p.EngineSettings(provider="carrier-pigeon"),
                    tts=p.EngineSettings(provider="off", speed=9.0),
                    stt=p.EngineSettings(provider="embedded"),
                )
            )
            error = await client.expect(p.Error)
            assert error.code == p.ERR_CONFIG and "carrier-pigeon" in error.message and "speech rate" in error.message

    run(scenario)


def test_every_connection_hears_about_a_damaged_database(tmp_path: Path) -> None:
    (tmp_path / "conversations.sqlite3").write_bytes(b"garbage" * 1000)

    async def scenario() -> None:
        async with running_backend(tmp_path) as backend, connect(backend.url) as ws:
            await ws.send(p.Hello(version=p.PROTOCOL_VERSION, token=TOKEN, client="tests").to_wire())
            notice = await Client(ws).expect(p.Notice)
            assert notice.code == "store" and "moved" in notice.message

    run(scenario)
