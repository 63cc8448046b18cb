"""``parley-bench soak``: hundreds of turns through the real server on fast stand-in engines (issue 6).

The turns run in rounds; each round opens fresh connections (several at once), asks
its share of the questions on each and closes them. Before the first round (after a
warm-up) and after every round, the server process reports its resident memory, open
file descriptors, threads and live asyncio tasks: with nothing leaking, they stay flat.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from typing import Any

from assistant.bench.bench_client import BenchClient, FakeServerProcess, TurnRecord

CONNECT_TIMEOUT_S = 20.0
TURN_TIMEOUT_S = 30.0
WARMUP_TURNS = 10
SETTLE_S = 0.5
QUESTION = "Tell me something short."


async def _client_turns(url: str, token: str, turns: int) -> tuple[list[TurnRecord], list[str]]:
    client = BenchClient(url, token)
    records: list[TurnRecord] = []
    try:
        await client.connect(CONNECT_TIMEOUT_S)
        for _ in range(turns):
            records.append(await client.ask(QUESTION, TURN_TIMEOUT_S))
    except Exception as exc:  # a failed connection counts as an error, the soak goes on
        client.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        await client.close()
    return records, client.errors


async def run_soak(turns: int = 500, clients: int = 5, rounds: int = 5, segment_s: float = 0.1) -> dict[str, Any]:
    """Runs the soak and returns its figures (see ``print_soak``)."""
    rounds = max(1, rounds)
    clients = max(1, clients)
    per_client = max(1, -(-turns // (rounds * clients)))  # ceiling: at least ``turns`` in all
    with tempfile.TemporaryDirectory(prefix="parley-soak-") as data_dir:
        args = ["--data-dir", data_dir, "--segment-s", str(segment_s)]
        async with FakeServerProcess(args) as server:
            await _client_turns(server.url, server.token, WARMUP_TURNS)
            await asyncio.sleep(SETTLE_S)
            samples = [await server.stats()]
            done = completed = 0
            errors: list[str] = []
            started = time.monotonic()
            for _ in range(rounds):
                results = await asyncio.gather(
                    *(_client_turns(server.url, server.token, per_client) for _ in range(clients))
                )
                for records, client_errors in results:
                    done += len(records)
                    completed += sum(1 for r in records if r.status == "completed")
                    errors += client_errors + [e for r in records for e in r.errors]
                    errors += [f"turn ended {r.status!r}" for r in records if r.status != "completed"]
                await asyncio.sleep(SETTLE_S)
                samples.append(await server.stats())
            seconds = time.monotonic() - started
    first, last = samples[0], samples[-1]
    return {
        "turns": done,
        "completed": completed,
        "errors": len(errors),
        "error_examples": errors[:5],
        "connections": rounds * clients,
        "seconds": round(seconds, 2),
        "turns_per_s": round(done / seconds, 1) if seconds else 0.0,
        "samples": samples,
        "growth": {key: last[key] - first[key] for key in ("rss_kb", "fds", "threads", "tasks")},
    }


def print_soak(figures: dict[str, Any]) -> None:
    print(
        f"soak: {figures['turns']} turns ({figures['completed']} completed, {figures['errors']} errors) "
        f"on {figures['connections']} connections in {figures['seconds']} s ({figures['turns_per_s']} turns/s)"
    )
    print(f"{'after':>12} {'RSS MB':>8} {'fds':>5} {'threads':>8} {'tasks':>6}")
    rows = [("warm-up" if i == 0 else f"round {i}", sample, "") for i, sample in enumerate(figures["samples"])]
    rows.append(("growth", figures["growth"], "+"))
    for label, row, sign in rows:
        print(
            f"{label:>12} {row['rss_kb'] / 1024:{sign}8.1f} {row['fds']:{sign}5d} "
            f"{row['threads']:{sign}8d} {row['tasks']:{sign}6d}"
        )
    for example in figures["error_examples"]:
        print(f"  error: {example}")
