"""Language models shipped ready-made inside an installed Parley bundle, used in place.

An installer (the PyInstaller bundle under resources/packaging/) carries the split
GGUFs already assembled and checked against their pinned sha256 at build time, in
``<bundle>/models/<file name from the catalog>``. The model manager uses such a file
as it is, instead of assembling the parts into the user's data directory: nothing is
copied on first run and nothing is stored twice. Run from source, there is no bundle.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Final

from backend.engines.base import EngineError

log = logging.getLogger("parley.models")

BUNDLED_MODELS_FOLDER: Final = "models"
GGUF_MAGIC: Final = b"GGUF"


def bundle_root() -> Path | None:
    """The folder a frozen (PyInstaller) Parley keeps its files in; None when run from source."""
    if not getattr(sys, "frozen", False):
        return None
    unpacked = getattr(sys, "_MEIPASS", None)
    return Path(unpacked) if unpacked else Path(sys.executable).resolve().parent


def bundled_models_dir() -> Path | None:
    """Where a bundle keeps its ready-made models; None when run from source."""
    root = bundle_root()
    return None if root is None else root / BUNDLED_MODELS_FOLDER


def find_bundled_gguf(folder: Path | None, file_name: str, size: int) -> Path | None:
    """The ready-made ``file_name`` in ``folder``, or None when the bundle does not carry it.

    A file that is there but has the wrong size or is not a GGUF raises ``EngineError``
    (the installation is damaged: reinstalling Parley repairs it).
    """
    if folder is None:
        return None
    path = folder / file_name
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EngineError(f"Cannot read the bundled model {path}: {exc.strerror or exc}.") from None
    if actual != size:
        raise EngineError(
            f"The bundled model {path} has {actual} bytes, expected {size}: the installation is damaged; "
            "reinstall Parley."
        )
    try:
        with path.open("rb") as f:
            magic = f.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise EngineError(f"Cannot read the bundled model {path}: {exc.strerror or exc}.") from None
    if magic != GGUF_MAGIC:
        raise EngineError(
            f"The bundled model {path} is not a GGUF file: the installation is damaged; reinstall Parley."
        )
    log.info("using the bundled model %s", path)
    return path
