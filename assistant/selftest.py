"""``parley --selftest``: start the embedded backend, ask one question, check text and sound.

Prints one JSON line (``ok``, ``ttft_s``, ``ttfa_s``, ``underruns``, ``reply`` and
more) and exits 0 when text streamed and audio was played to the output device;
otherwise prints the reason and exits 1. Needs no window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any

from assistant.audio.player import AudioPlayer, AudioUnavailable
from assistant.backend_supervisor import BackendSupervisor
from assistant.headless_turn import HeadlessClient
from assistant.net.backend_connection import BackendConnection
from backend.protocol import Status

log = logging.getLogger("parley.app.selftest")

QUESTION = "In one short sentence, what is the capital of France?"
MIN_PLAYED_S = 0.3


def _progress(status: Status) -> None:
    if status.state == "loading":
        pct = "" if status.progress is None else f" {status.progress * 100:.0f}%"
        print(f"selftest: {status.detail}{pct}", file=sys.stderr, flush=True)


async def run_selftest(backend_args: list[str], device: str, ready_timeout_s: float) -> dict[str, Any]:
    """Runs the check; returns the result object (``ok`` false with a ``reason`` on failure)."""
    started = time.monotonic()
    try:
        player = AudioPlayer(device=device or None)
        player.open(22050)
    except AudioUnavailable as exc:
        return {"ok": False, "reason": exc.user_message}
    supervisor = BackendSupervisor(extra_args=backend_args)
    client = HeadlessClient(player)
    connection: BackendConnection | None = None
    try:
        url = await supervisor.start()
        connection = BackendConnection(url, supervisor.token, client)
        client.connection = connection
        await connection.connect()
        status = await client.wait_ready(ready_timeout_s, on_progress=_progress)
        ready_s = time.monotonic() - started  # from the start of the check to models loaded
        print(f"selftest: ready after {ready_s:.2f} s", file=sys.stderr, flush=True)
        record = await client.ask(QUESTION, timeout_s=180.0)
        played_s = record.samples_played / record.sample_rate if record.sample_rate else 0.0
        result: dict[str, Any] = {
            "ok": False,
            "ready_s": round(ready_s, 3),
            "ttft_s": _round(record.ttft_s),
            "ttfa_s": _round(record.ttfa_s),
            "underruns": record.underruns,
            "reply": record.reply,
            "played_s": round(played_s, 3),
            "status": record.status,
            "llm": status.llm,
            "tts": status.tts,
        }
        if record.status != "completed":
            result["reason"] = f"the turn ended with status {record.status}: {record.error}"
        elif not record.reply.strip():
            result["reason"] = "no text streamed"
        elif played_s < MIN_PLAYED_S:
            result["reason"] = f"only {played_s:.2f} s of audio reached the output device"
        else:
            result["ok"] = True
        return result
    except (RuntimeError, TimeoutError, OSError) as exc:
        return {"ok": False, "reason": str(exc)}
    finally:
        if connection is not None:
            await connection.close()
        await supervisor.stop()
        player.close()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="parley --selftest", description=__doc__)
    parser.add_argument("--selftest", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--llm-model", default=None, help="default | fast | a .gguf path")
    parser.add_argument("--device", default="", help="output device (default: the system's)")
    parser.add_argument("--ready-timeout", type=float, default=900.0, help="seconds to wait for the models")
    args, _ = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    backend_args = ["--llm-model", args.llm_model] if args.llm_model else []
    result = asyncio.run(run_selftest(backend_args, args.device, args.ready_timeout))
    print(json.dumps(result), flush=True)
    if not result["ok"]:
        print(f"selftest failed: {result.get('reason')}", file=sys.stderr)
        return 1
    return 0
