"""``parley-bench``: benchmarks that print numbers (never timed tests).

    parley-bench text [--models default,fast] [--questions N] [--json PATH]
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
    return parser


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
