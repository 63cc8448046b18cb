"""Finds the packaged models and assembles split GGUFs into the data directory.

Model packages are located through their installed metadata (``RECORD``), never
imported. A split model is concatenated part by part into a temporary file next
to its destination while its sha256 is computed in the same pass; only a file
with the pinned size and checksum is renamed into place. A stamp file records
the verified checksum with the file's size and mtime, so a restart trusts the
assembled file without reading it again.
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
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from backend.engines.base import EngineError, ProgressCallback
from backend.models.bundled import bundled_models_dir, find_bundled_gguf
from backend.models.catalog import (
    LLM_MODELS,
    VOICES,
    LLMModel,
    PackagedFile,
    PackagedVoice,
    SplitModel,
    WholeModel,
    install_hint,
)

log = logging.getLogger("parley.models")

GGUF_MAGIC: Final = b"GGUF"
COPY_CHUNK_BYTES: Final = 8 * 1024 * 1024
FREE_SPACE_MARGIN_BYTES: Final = 64 * 1024 * 1024
STALE_TEMP_AGE_S: Final = 15 * 60
CANCEL_WAIT_S: Final = 15.0
_MB: Final = 1024 * 1024


class _Cancelled(Exception):
    """Raised inside the worker thread when the awaiting coroutine was cancelled."""


class _ThreadProgress:
    """Forwards progress from a worker thread to the event loop, monotonic and throttled."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: ProgressCallback) -> None:
        self._loop = loop
        self._callback = callback
        self._last = -1.0

    def report(self, step: str, fraction: float, *, force: bool = False) -> None:
        fraction = min(max(fraction, self._last, 0.0), 1.0)
        if not force and fraction < min(self._last + 0.01, 1.0):
            return
        self._last = fraction
        with contextlib.suppress(RuntimeError):  # the loop is closing: nobody is listening
            self._loop.call_soon_threadsafe(self._callback, step, fraction)


class ModelManager:
    """Turns a model key (``default``, ``fast``, ``smollm2``) or a file path into a local file."""

    def __init__(
        self,
        data_dir: Path,
        *,
        llm_models: Mapping[str, LLMModel] = LLM_MODELS,
        voices: Mapping[str, PackagedVoice] = VOICES,
        search_path: Sequence[str] | None = None,
        chunk_bytes: int = COPY_CHUNK_BYTES,
        bundled_dir: Path | None = None,
    ) -> None:
        """``search_path`` replaces ``sys.path`` when looking for model distributions (for tests).

        ``bundled_dir`` holds ready-made GGUFs used in place (default: an installed
        bundle's ``models`` folder, none when run from source; see ``bundled.py``).
        """
        self.data_dir = data_dir
        self._bundled_dir = bundled_dir if bundled_dir is not None else bundled_models_dir()
        self._llm_models = llm_models
        self._voices = voices
        self._search_path = list(search_path) if search_path is not None else None
        self._chunk_bytes = chunk_bytes
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def llm_keys(self) -> tuple[str, ...]:
        return tuple(self._llm_models)

    def llm_label(self, key_or_path: str) -> str:
        """A short name for the status line: the catalog label or the file's stem."""
        model = self._llm_models.get(key_or_path)
        return model.label if model is not None else Path(key_or_path).stem

    # ---- language models ------------------------------------------------------------

    async def ensure_llm(self, key_or_path: str, progress: ProgressCallback) -> Path:
        """Returns the path of a verified GGUF for a catalog key or an existing file path.

        Assembles a split model on first use, reporting ``progress`` (called on the
        event loop). Raises ``EngineError`` with an actionable message when it cannot.
        When cancelled, the copy stops at the next chunk, the temporary file is
        removed, and the cancellation propagates once the worker thread has ended.
        """
        model = self._llm_models.get(key_or_path)
        if model is None:
            if not _looks_like_path(key_or_path):
                choices = ", ".join(self._llm_models)
                raise EngineError(
                    f"Unknown language model {key_or_path!r}: use one of {choices} or a path to a .gguf file."
                )
            return await asyncio.to_thread(_check_gguf_file, key_or_path)
        lock = self._locks.setdefault(model.key, asyncio.Lock())
        async with lock:
            reporter = _ThreadProgress(asyncio.get_running_loop(), progress)
            if isinstance(model, WholeModel):
                return await asyncio.to_thread(self._whole_model_path, model)
            return await self._in_thread(self._assemble, model, reporter)

    async def _in_thread(
        self,
        work: Callable[[SplitModel, _ThreadProgress, threading.Event], Path],
        model: SplitModel,
        reporter: _ThreadProgress,
    ) -> Path:
        cancel = threading.Event()
        job = asyncio.ensure_future(asyncio.to_thread(work, model, reporter, cancel))
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            cancel.set()
            done, _ = await asyncio.wait({job}, timeout=CANCEL_WAIT_S)
            if not done:
                log.warning("model assembly did not stop within %.0f s of cancellation", CANCEL_WAIT_S)
            elif not job.cancelled() and job.exception() is not None:
                log.debug("model assembly ended after cancellation: %r", job.exception())
            raise

    def _whole_model_path(self, model: WholeModel) -> Path:
        path = self._locate_or_raise(f"the model {model.label}", [model.file])[0]
        size = path.stat().st_size
        if size != model.size:
            raise EngineError(
                f"The model file {path} has {size} bytes, expected {model.size}; reinstall it with "
                f"`{install_hint([model.file.distribution], reinstall=True)}`."
            )
        return _check_gguf_file(path)

    def _assemble(self, model: SplitModel, reporter: _ThreadProgress, cancel: threading.Event) -> Path:
        """Runs in a worker thread: reuses a verified file or builds it from the parts."""
        try:
            return self._reuse_or_build(model, reporter, cancel)
        except OSError as exc:
            raise EngineError(f"Could not prepare {model.label} in {self.models_dir}: {exc}.") from None

    def _reuse_or_build(self, model: SplitModel, reporter: _ThreadProgress, cancel: threading.Event) -> Path:
        bundled = find_bundled_gguf(self._bundled_dir, model.file_name, model.size)
        if bundled is not None:  # an installer carries it ready-made (checked when it was built)
            reporter.report(f"{model.label} is ready", 1.0, force=True)
            return bundled
        target = self.models_dir / model.file_name
        stamp = _stamp_path(target)
        if _is_stamped(target, stamp, model):
            log.info("using verified model %s", target)
            reporter.report(f"{model.label} is ready", 1.0, force=True)
            return target
        if target.exists():
            if target.stat().st_size == model.size and self._verify_existing(target, model, reporter, cancel):
                _write_stamp(target, stamp, model.sha256)
                reporter.report(f"{model.label} is ready", 1.0, force=True)
                return target
            log.warning("discarding %s: it does not match the pinned size and checksum", target)
            _remove(target)
        parts = self._locate_or_raise(f"the model {model.label}", list(model.parts))
        self._check_part_sizes(model, parts)
        try:
            self.models_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EngineError(f"Cannot create the model folder {self.models_dir}: {exc.strerror}.") from None
        self._remove_stale_temp_files(model)
        self._check_free_space(model)
        reporter.report(f"Preparing {model.label}", 0.0, force=True)
        started = time.monotonic()
        self._copy_and_verify(model, parts, target, reporter, cancel)
        log.info("assembled %s in %.1f s", target, time.monotonic() - started)
        _write_stamp(target, stamp, model.sha256)
        reporter.report(f"{model.label} is ready", 1.0, force=True)
        return target

    def _copy_and_verify(
        self,
        model: SplitModel,
        parts: Sequence[Path],
        target: Path,
        reporter: _ThreadProgress,
        cancel: threading.Event,
    ) -> None:
        fd, temp_name = tempfile.mkstemp(dir=self.models_dir, prefix=f".{model.file_name}.", suffix=".part")
        temp = Path(temp_name)
        renamed = False
        try:
            digest = hashlib.sha256()
            copied = 0
            buffer = bytearray(self._chunk_bytes)
            view = memoryview(buffer)
            total_mb = model.size / _MB
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with part.open("rb") as source:
                        while n := source.readinto(view):
                            if cancel.is_set():
                                raise _Cancelled
                            out.write(view[:n])
                            digest.update(view[:n])
                            copied += n
                            reporter.report(
                                f"Preparing {model.label} ({copied / _MB:.0f} of {total_mb:.0f} MB)",
                                0.99 * copied / model.size,
                            )
                out.flush()
                os.fsync(out.fileno())
            if copied != model.size or digest.hexdigest() != model.sha256:
                raise EngineError(
                    f"The installed parts of {model.label} do not add up to the expected model "
                    f"(checksum mismatch); reinstall them with "
                    f"`{_reinstall(model)}`."
                )
            os.replace(temp, target)
            renamed = True
        except OSError as exc:
            raise EngineError(
                f"Could not write {model.label} to {self.models_dir}: {exc.strerror or exc}."
            ) from None
        finally:
            if not renamed:
                _remove(temp)

    def _verify_existing(
        self, target: Path, model: SplitModel, reporter: _ThreadProgress, cancel: threading.Event
    ) -> bool:
        """Hashes an assembled file that has no valid stamp; True if it matches the pin."""
        digest = hashlib.sha256()
        done = 0
        buffer = bytearray(self._chunk_bytes)
        view = memoryview(buffer)
        with target.open("rb") as source:
            while n := source.readinto(view):
                if cancel.is_set():
                    raise _Cancelled
                digest.update(view[:n])
                done += n
                reporter.report(f"Checking {model.label}", 0.99 * done / model.size)
        return done == model.size and digest.hexdigest() == model.sha256

    def _check_part_sizes(self, model: SplitModel, parts: Sequence[Path]) -> None:
        total = sum(p.stat().st_size for p in parts)
        if total != model.size:
            raise EngineError(
                f"The installed parts of {model.label} add up to {total} bytes, expected {model.size}; "
                f"reinstall them with `{_reinstall(model)}`."
            )

    def _check_free_space(self, model: SplitModel) -> None:
        free = shutil.disk_usage(self.models_dir).free
        if free < model.size + FREE_SPACE_MARGIN_BYTES:
            raise EngineError(
                f"Not enough free disk space in {self.models_dir} to prepare {model.label}: "
                f"it needs {model.size // _MB + 64} MB, {free // _MB} MB are free."
            )

    def _remove_stale_temp_files(self, model: SplitModel) -> None:
        now = time.time()
        for temp in self.models_dir.glob(f".{model.file_name}.*.part"):
            with contextlib.suppress(OSError):
                if now - temp.stat().st_mtime > STALE_TEMP_AGE_S:
                    temp.unlink()
                    log.info("removed a leftover partial model %s", temp)

    # ---- voices -------------------------------------------------------------------------

    def voice_paths(self, key_or_path: str) -> tuple[Path, Path]:
        """Returns (model.onnx, config.json) for a catalog voice or a path to a piper ``.onnx``.

        A path's config is the file next to it with ``.json`` appended. Raises ``EngineError``.
        """
        voice = self._voices.get(key_or_path)
        if voice is not None:
            onnx, config = self._locate_or_raise(f"the {voice.label} voice", [voice.onnx, voice.config])
            return onnx, config
        if not _looks_like_path(key_or_path):
            choices = ", ".join(self._voices)
            raise EngineError(
                f"Unknown voice {key_or_path!r}: use {choices} or a path to a piper .onnx file."
            )
        onnx = Path(key_or_path).expanduser()
        config = onnx.with_name(onnx.name + ".json")
        if not onnx.is_file():
            raise EngineError(f"The voice file {onnx} does not exist.")
        if not config.is_file():
            raise EngineError(f"The voice {onnx} has no config next to it (expected {config}).")
        return onnx, config

    # ---- locating packaged files --------------------------------------------------------------

    def _locate_or_raise(self, what: str, files: Sequence[PackagedFile]) -> list[Path]:
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
                damaged.append(packaged.distribution)
            else:
                found.append(path)
        if missing:
            raise EngineError(
                f"{_capitalized(what)} is not installed ({len(missing)} package(s) missing): "
                f"install with `{install_hint(missing)}`."
            )
        if damaged:
            raise EngineError(
                f"{_capitalized(what)} is incompletely installed: reinstall with "
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


def _file_in(dist: metadata.Distribution, path_suffix: str) -> Path | None:
    for record in dist.files or ():
        posix = record.as_posix()
        if posix == path_suffix or posix.endswith("/" + path_suffix):
            path = Path(str(dist.locate_file(record)))
            if path.is_file():
                return path
    return None


def _reinstall(model: SplitModel) -> str:
    return install_hint([p.distribution for p in model.parts], reinstall=True)


def _looks_like_path(value: str) -> bool:
    return (
        "/" in value
        or os.sep in value
        or value.startswith(("~", "."))
        or value.lower().endswith((".gguf", ".onnx"))
    )


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _check_gguf_file(path_text: str | Path) -> Path:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise EngineError(f"The model file {path} does not exist.")
    try:
        with path.open("rb") as f:
            magic = f.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise EngineError(f"Cannot read the model file {path}: {exc.strerror or exc}.") from None
    if magic != GGUF_MAGIC:
        raise EngineError(f"{path} is not a GGUF model file (llama.cpp needs a .gguf model).")
    return path


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified.json")


def _is_stamped(target: Path, stamp: Path, model: SplitModel) -> bool:
    try:
        st = target.stat()
        recorded = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(recorded, dict)
        and st.st_size == model.size
        and recorded.get("sha256") == model.sha256
        and recorded.get("size") == st.st_size
        and recorded.get("mtime_ns") == st.st_mtime_ns
    )


def _write_stamp(target: Path, stamp: Path, sha256: str) -> None:
    try:
        st = target.stat()
        record = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        temp = stamp.with_name(stamp.name + ".tmp")
        temp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(temp, stamp)
    except OSError as exc:  # the model is fine; the next start just verifies it again
        log.warning("could not record that %s is verified: %s", target, exc)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

