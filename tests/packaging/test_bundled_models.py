"""Ready-made models inside an installed bundle: found, checked and used in place."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from backend.engines.base import EngineError
from backend.models.bundled import bundle_root, bundled_models_dir, find_bundled_gguf
from backend.models.catalog import PackagedFile, SplitModel
from backend.models.manager import ModelManager

CONTENT = b"GGUF" + bytes(range(256)) * 8


def split_model(content: bytes = CONTENT) -> SplitModel:
    return SplitModel(
        key="test",
        label="test-model",
        file_name="test-model.gguf",
        parts=(PackagedFile("no-such-part-distribution", "data/part01.bin"),),
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
    )


def test_from_source_there_is_no_bundle() -> None:
    assert bundle_root() is None
    assert bundled_models_dir() is None
    assert find_bundled_gguf(None, "test-model.gguf", 10) is None


def test_a_model_the_bundle_does_not_carry_is_not_found(tmp_path: Path) -> None:
    assert find_bundled_gguf(tmp_path, "test-model.gguf", len(CONTENT)) is None


def test_a_carried_model_is_found(tmp_path: Path) -> None:
    (tmp_path / "test-model.gguf").write_bytes(CONTENT)
    assert find_bundled_gguf(tmp_path, "test-model.gguf", len(CONTENT)) == tmp_path / "test-model.gguf"


def test_a_truncated_model_is_a_damaged_installation(tmp_path: Path) -> None:
    (tmp_path / "test-model.gguf").write_bytes(CONTENT[:-1])
    with pytest.raises(EngineError, match="damaged; reinstall Parley"):
        find_bundled_gguf(tmp_path, "test-model.gguf", len(CONTENT))


def test_a_file_that_is_not_gguf_is_a_damaged_installation(tmp_path: Path) -> None:
    (tmp_path / "test-model.gguf").write_bytes(b"XXXX" + CONTENT[4:])
    with pytest.raises(EngineError, match="not a GGUF file"):
        find_bundled_gguf(tmp_path, "test-model.gguf", len(CONTENT))


def test_the_manager_uses_the_bundled_model_in_place(tmp_path: Path) -> None:
    """No parts installed, nothing copied into the data directory, progress says ready."""
    bundled = tmp_path / "bundle" / "models"
    bundled.mkdir(parents=True)
    (bundled / "test-model.gguf").write_bytes(CONTENT)
    manager = ModelManager(
        tmp_path / "data", llm_models={"test": split_model()}, search_path=[str(tmp_path / "site")], bundled_dir=bundled
    )
    steps: list[tuple[str, float | None]] = []

    async def ensure() -> Path:
        path = await manager.ensure_llm("test", lambda step, fraction: steps.append((step, fraction)))
        await asyncio.sleep(0)  # progress is delivered through the loop
        return path

    path = asyncio.run(asyncio.wait_for(ensure(), 30))
    assert path == bundled / "test-model.gguf"
    assert not (tmp_path / "data").exists()
    assert steps and steps[-1] == ("test-model is ready", 1.0)


def test_without_a_bundled_copy_the_manager_still_wants_the_parts(tmp_path: Path) -> None:
    manager = ModelManager(
        tmp_path / "data",
        llm_models={"test": split_model()},
        search_path=[str(tmp_path / "site")],
        bundled_dir=tmp_path / "empty-bundle",
    )
    with pytest.raises(EngineError, match="no-such-part-distribution"):
        asyncio.run(asyncio.wait_for(manager.ensure_llm("test", lambda _s, _f: None), 30))
