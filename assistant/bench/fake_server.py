"""The real Parley server on fast stand-in engines, for the soak and load benchmarks (issue 6).

    python -m assistant.bench.fake_server [--host 127.0.0.1] [--port 0] [--data-dir DIR]
        [--reply TEXT] [--piece-delay S] [--segment-s S]

Everything but the engines is the product's: ``ParleyServer``, sessions, turns, the
pacer, the SQLite conversation store (in ``--data-dir``, else in memory). The token
comes from ``PARLEY_TOKEN``. Like ``parley-backend serve`` it prints one JSON line
``{"ready": true, "url": ...}`` once listening. Standard input takes commands, one a
line: ``stats`` prints a JSON line with the process's resident memory, open file
descriptors, threads and live asyncio tasks. It stops at end of input or on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from assistant.bench.fake_engines import DEFAULT_REPLY, FastLLM, FastTTS
from backend.engine_hub import EngineHub
from backend.server import ParleyServer
from backend.store import ConversationStore
from backend.store import default_path as store_path


def process_stats() -> dict[str, Any]:
    """Resident memory (kB), open file descriptors, threads and live tasks of this process."""
    gc.collect()
    rss_kb = threads = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = -1
    return {
        "rss_kb": rss_kb,
        "fds": fds,
        "threads": threads or threading.active_count(),
        "tasks": len(asyncio.all_tasks()),
    }


def _read_commands(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """A daemon thread: answers ``stats`` lines on stdin (on the loop), sets ``stop`` at end of input."""

    def answer() -> None:
        print(json.dumps(process_stats()), flush=True)

    with contextlib.suppress(OSError, ValueError, RuntimeError):
        for line in sys.stdin:
            if line.strip() == "stats":
                loop.call_soon_threadsafe(answer)
    with contextlib.suppress(RuntimeError):  # the loop already closed
        loop.call_soon_threadsafe(stop.set)


async def serve(args: argparse.Namespace) -> int:
    token = os.environ.get("PARLEY_TOKEN", "")
    if not token:
        print("fake_server: set PARLEY_TOKEN", file=sys.stderr)
        return 2
    hub = EngineHub(FastLLM(args.reply, args.piece_delay), FastTTS(args.segment_s))
    store = await ConversationStore.open(store_path(Path(args.data_dir)) if args.data_dir else None)
    server = ParleyServer(hub, token, "Be brief.", 4096, store=store)
    url = await server.start(args.host, args.port)
    hub.start_loading()
    print(json.dumps({"ready": True, "url": url}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    threading.Thread(target=_read_commands, args=(loop, stop), name="bench-commands", daemon=True).start()
    try:
        await stop.wait()
    finally:
        await server.aclose()
        await store.aclose()
        await hub.aclose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.bench.fake_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="keep conversations in DIR (default: in memory)")
    parser.add_argument("--reply", default=DEFAULT_REPLY)
    parser.add_argument("--piece-delay", type=float, default=0.0, help="seconds between reply words")
    parser.add_argument("--segment-s", type=float, default=0.1, help="seconds of tone per spoken segment")
    parser.add_argument("--log-level", default="WARNING")
    args, _ignored = parser.parse_known_args(argv)  # tolerates the supervisor's backend flags
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.WARNING), stream=sys.stderr)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
