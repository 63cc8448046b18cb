"""``parley-bench``: benchmarks that print numbers (never timed tests).

    parley-bench text [--models default,fast] [--questions N] [--json PATH]
    parley-bench soak [--turns 500] [--clients 5] [--rounds 5] [--json PATH]
    parley-bench load [--clients 50] [--turns 3] [--json PATH]
    parley-bench voice [--llm-model fast] [--stt-model tiny] [--questions 12] [--barge-ins 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from assistant.audio.player import AudioUnavailable
from assistant.bench.questions import TEXT_QUESTIONS
from assistant.bench.text_bench import bench_model, print_report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley-bench", description="Parley benchmarks.")
    commands = parser.add_subparsers(dest="command", required=True)
    text = commands.add_parser("text", help="typed questions: first token, first audio, baseline ratio")
    text.add_argument("--models", default="default,fast", help="comma-separated model keys or .gguf paths")
    text.add_argument("--questions", type=int, default=len(TEXT_QUESTIONS), help="how many questions (max 12)")
    text.add_argument("--device", default="", help="output device (default: the system's)")
    text.add_argument("--ready-timeout", type=float, default=900.0)
    text.add_argument("--json", dest="json_path", default=None, help="also write the figures to this file")
    # the server under soak and load, on fast stand-in engines (issue 6)
    soak = commands.add_parser("soak", help="hundreds of turns: memory, file descriptors, threads, tasks")
    soak.add_argument("--turns", type=int, default=500)
    soak.add_argument("--clients", type=int, default=5, help="connections at once in each round")
    soak.add_argument("--rounds", type=int, default=5, help="rounds of fresh connections")
    soak.add_argument("--json", dest="json_path", default=None, help="also write the figures to this file")
    load = commands.add_parser("load", help="many clients at once: delay of audio frames, errors")
    load.add_argument("--clients", type=int, default=50)
    load.add_argument("--turns", type=int, default=3, help="questions per client")
    load.add_argument("--json", dest="json_path", default=None, help="also write the figures to this file")
    # spoken questions through the real capture path (issue 3)
    voice = commands.add_parser("voice", help="spoken questions: voice-to-voice, end of speech, STT, barge-in, echo")
    voice.add_argument("--llm-model", default="fast", help="embedded model key or .gguf path (default: fast)")
    voice.add_argument("--stt-model", default="tiny", help="tiny | base | a CTranslate2 Whisper folder")
    voice.add_argument("--questions", type=int, default=12, help="how many spoken questions (max 12)")
    voice.add_argument("--barge-ins", type=int, default=10, help="how many times to speak over a reply")
    voice.add_argument("--ready-timeout", type=float, default=900.0)
    voice.add_argument("--json", dest="json_path", default=None, help="also write the figures to this file")
    voice.add_argument("--verbose", action="store_true", help="show the backend's and the voice input's log")
    return parser


def _voice(args: argparse.Namespace) -> int:
    """``voice``: run, print, and write the figures when asked (issue 3)."""
    from assistant.bench.virtual_room import RoomUnavailable
    from assistant.bench.voice_bench import bench_voice, print_voice_report

    if args.verbose:
        for name in ("parley.backend", "parley.app.voice", "parley.bench.voice"):
            logging.getLogger(name).setLevel(logging.INFO)

    try:
        bench = bench_voice(args.llm_model, args.stt_model, args.questions, args.barge_ins, args.ready_timeout)
        run = asyncio.run(bench)
    except (AudioUnavailable, RoomUnavailable) as exc:
        print(f"parley-bench: {getattr(exc, 'user_message', exc)}", file=sys.stderr)
        return 1
    figures = run.figures()
    print_voice_report(figures)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


def _server_bench(args: argparse.Namespace) -> int:
    """``soak`` and ``load``: run, print, and write the figures when asked (issue 6)."""
    from assistant.bench.load_bench import print_load, run_load
    from assistant.bench.soak_bench import print_soak, run_soak

    if args.command == "soak":
        figures = asyncio.run(run_soak(args.turns, args.clients, args.rounds))
        print_soak(figures)
    else:
        figures = asyncio.run(run_load(args.clients, args.turns))
        print_load(figures)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if figures["errors"] == 0 else 1


async def _text(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    questions = TEXT_QUESTIONS[: max(1, args.questions)]
    results: dict[str, dict[str, Any]] = {}
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        print(f"benchmarking {model} on {len(questions)} questions", file=sys.stderr, flush=True)
        run = await bench_model(model, questions, args.device, args.ready_timeout)
        results[model] = run.figures()
    return results


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.command in ("soak", "load"):
        return _server_bench(args)
    if args.command == "voice":
        return _voice(args)
    try:
        results = asyncio.run(_text(args))
    except AudioUnavailable as exc:
        print(f"parley-bench: {exc.user_message}", file=sys.stderr)
        return 1
    print_report(results)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
