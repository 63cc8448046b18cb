"""OpenAIChatLLM against a real llama.cpp OpenAI-compatible server running SmolLM2."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.config import LLMConfig
from backend.engines.base import ChatMessage, EngineError
from backend.engines.llm.openai_chat import OpenAIChatLLM
from tests.integration.conftest import ignore_progress, run_bounded

pytestmark = pytest.mark.slow

SERVER_KEY = "sk-parley-test-0123456789abcdef"
FAKE_KEY = "sk-definitely-wrong-key-4242424242"
READY_TIMEOUT_S = 90.0
GREETING = [ChatMessage("system", "You are brief."), ChatMessage("user", "Say hello to Ada.")]


def _models_answer(url: str) -> bool:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {SERVER_KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def llama_server(
    smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real ``python -m llama_cpp.server`` on a free port, protected by ``SERVER_KEY``; yields its /v1 URL."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "llama_cpp.server",
                "--model", str(smollm2_path), "--model_alias", "smollm2",
                "--host", "127.0.0.1", "--port", str(port),
                "--n_ctx", "1024", "--n_threads", "1", "--api_key", SERVER_KEY,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _models_answer(f"{base_url}/models"):
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log_path.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready in {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def chat_config(base_url: str, api_key: str, model: str = "smollm2") -> LLMConfig:
    return LLMConfig(
        provider="openai", model=model, base_url=base_url, api_key=api_key, max_tokens=32, timeout_s=30.0
    )


async def collect(engine: OpenAIChatLLM) -> list[str]:
    pieces: list[str] = []
    async for piece in engine.stream(GREETING):
        pieces.append(piece)
    return pieces


def stream_once(config: LLMConfig) -> list[str]:
    engine = OpenAIChatLLM(config)

    async def scenario() -> list[str]:
        try:
            await asyncio.wait_for(engine.load(ignore_progress), 30)
            return await asyncio.wait_for(collect(engine), 60)
        finally:
            await asyncio.wait_for(engine.aclose(), 10)

    return run_bounded(scenario(), 120)


def test_streams_a_reply(llama_server: str) -> None:
    pieces = stream_once(chat_config(llama_server, SERVER_KEY))

    assert len(pieces) > 1
    assert "".join(pieces).strip()


def test_cancelling_the_consumer_closes_the_stream(llama_server: str) -> None:
    engine = OpenAIChatLLM(chat_config(llama_server, SERVER_KEY))

    async def scenario() -> tuple[bool, int]:
        try:
            await asyncio.wait_for(engine.load(ignore_progress), 30)
            got_one = asyncio.Event()
            pieces: list[str] = []

            async def consume() -> None:
                async for piece in engine.stream(GREETING):
                    pieces.append(piece)
                    got_one.set()

            task = asyncio.ensure_future(consume())
            await asyncio.wait_for(got_one.wait(), 60)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=10)
            again = await asyncio.wait_for(collect(engine), 60)
            return task in done and task.cancelled(), len(again)
        finally:
            await asyncio.wait_for(engine.aclose(), 10)

    cancelled, again = run_bounded(scenario(), 150)

    assert cancelled
    assert again > 0


def test_wrong_api_key_is_reported_without_the_key(llama_server: str) -> None:
    with pytest.raises(EngineError) as caught:
        stream_once(chat_config(llama_server, FAKE_KEY))

    message = caught.value.user_message
    assert "401" in message and "API key" in message
    assert "127.0.0.1" in message
    assert FAKE_KEY not in message and FAKE_KEY not in str(caught.value)
    assert "4242" not in message


def test_wrong_endpoint_path_is_a_clear_404(llama_server: str) -> None:
    wrong = llama_server.removesuffix("/v1") + "/nothing-here"

    with pytest.raises(EngineError, match="404") as caught:
        stream_once(chat_config(wrong, SERVER_KEY))

    assert "model" in caught.value.user_message and "base URL" in caught.value.user_message


def test_unreachable_server_fails_the_turn_not_the_start(unused_port: int) -> None:
    base_url = f"http://127.0.0.1:{unused_port}/v1"
    engine = OpenAIChatLLM(chat_config(base_url, FAKE_KEY))

    async def scenario() -> None:
        try:
            await asyncio.wait_for(engine.load(ignore_progress), 15)  # offline: logged, not raised
            await asyncio.wait_for(collect(engine), 30)
        finally:
            await asyncio.wait_for(engine.aclose(), 10)

    with pytest.raises(EngineError) as caught:
        run_bounded(scenario(), 60)

    message = caught.value.user_message
    assert message.startswith(f"Cannot reach the language model server at {base_url}")
    assert FAKE_KEY not in message


def test_openai_without_any_key_is_refused_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    engine = OpenAIChatLLM(LLMConfig(provider="openai", model="gpt-4o-mini"))

    with pytest.raises(EngineError, match="OPENAI_API_KEY"):
        run_bounded(engine.load(ignore_progress), 10)


# ---- the whole backend on the OpenAI-compatible path -------------------------------------


def _backend_turns(tmp_path: Path, env: dict[str, str], questions: list[str]) -> list[list[object]]:
    """Runs the real backend with ``--llm-provider openai`` and asks ``questions`` in turn."""
    from websockets.asyncio.client import connect

    from backend import protocol as p
    from tests.integration.test_real_backend import backend_process, collect_turn, hello_ready

    async def scenario() -> list[list[object]]:
        turns: list[list[object]] = []
        async with backend_process(tmp_path, "--llm-provider", "openai", env=env) as (url, _), connect(url) as ws:
            status = await hello_ready(ws)
            assert status.state == "ready", status.detail
            for i, question in enumerate(questions, 1):
                await ws.send(p.Ask(turn_id=i, text=question).to_wire())
                turns.append(list(await collect_turn(ws)))
        return turns

    return run_bounded(scenario(), 180)


def test_backend_streams_text_and_speech_from_an_openai_compatible_server(llama_server: str, tmp_path: Path) -> None:
    from backend import protocol as p

    (turn,) = _backend_turns(
        tmp_path, {"OPENAI_BASE_URL": llama_server, "OPENAI_API_KEY": SERVER_KEY}, ["Say hello to Ada."]
    )
    done = turn[-1]
    assert isinstance(done, p.TurnDone) and done.status == "completed", done
    assert done.text.strip()
    assert any(isinstance(m, p.AudioFrame) for m in turn)


def test_backend_reports_a_wrong_key_clearly_and_keeps_serving(llama_server: str, tmp_path: Path) -> None:
    from backend import protocol as p

    turns = _backend_turns(
        tmp_path, {"OPENAI_BASE_URL": llama_server, "OPENAI_API_KEY": FAKE_KEY}, ["Hello?", "Hello again?"]
    )
    for turn in turns:  # the second question is answered (with the same clear error): nothing hangs or crashes
        errors = [m for m in turn if isinstance(m, p.Error)]
        assert len(errors) == 1 and errors[0].code == p.ERR_PROVIDER
        assert "key" in errors[0].message.lower() and FAKE_KEY not in errors[0].message
        done = turn[-1]
        assert isinstance(done, p.TurnDone) and done.status == "error"


def test_backend_reports_an_unreachable_server(unused_port: int, tmp_path: Path) -> None:
    from backend import protocol as p

    (turn,) = _backend_turns(
        tmp_path, {"OPENAI_BASE_URL": f"http://127.0.0.1:{unused_port}/v1", "OPENAI_API_KEY": "x"}, ["Hi?"]
    )
    errors = [m for m in turn if isinstance(m, p.Error)]
    assert len(errors) == 1 and "reach" in errors[0].message.lower()
    assert isinstance(turn[-1], p.TurnDone) and turn[-1].status == "error"
