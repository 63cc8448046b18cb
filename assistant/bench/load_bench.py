"""``parley-bench load``: many clients at once against the real server on fast stand-in engines (issue 6).

Every client connects, then asks its questions one after the other; all clients run
at the same time. Each reply has a few seconds of audio, so the server's pacer holds
the frames beyond its lead (``LEAD_SECONDS``) back to real time: a frame at audio
offset ``a`` is due ``a - LEAD_SECONDS`` after the turn's first frame arrived. Its
delay is how much later than that it arrived: the time the server and the network
added while every other client was being served too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from assistant.bench.bench_client import BenchClient, FakeServerProcess, TurnRecord
from assistant.bench.stats import percentile
from backend.audio_frames import LEAD_SECONDS

CONNECT_TIMEOUT_S = 60.0
TURN_TIMEOUT_S = 60.0
QUESTION = "Tell me something short."
PACED_AFTER_S = LEAD_SECONDS + 0.1
"""Frames this far into a reply are sent by the pacer (the ones before go out as fast as made)."""


def frame_delays(record: TurnRecord) -> list[float]:
    """Seconds each paced frame of a turn arrived after it was due."""
    if not record.frames or not record.sample_rate:
        return []
    first = record.frames[0][0]
    delays: list[float] = []
    offset = 0
    for arrived, samples in record.frames:
        at = offset / record.sample_rate
        if at >= PACED_AFTER_S:
            delays.append(arrived - (first + at - LEAD_SECONDS))
        offset += samples
    return delays


class _Gate:
    """Holds every client after it connected until all have (or failed to), then lets them go at once."""

    def __init__(self, clients: int) -> None:
        self._waiting = clients
        self.open = asyncio.Event()

    def arrived(self) -> None:
        self._waiting -= 1
        if self._waiting <= 0:
            self.open.set()


async def _client(url: str, token: str, turns: int, gate: _Gate) -> tuple[list[TurnRecord], list[str]]:
    client = BenchClient(url, token)
    records: list[TurnRecord] = []
    try:
        try:
            await client.connect(CONNECT_TIMEOUT_S)
        finally:
            gate.arrived()
        await gate.open.wait()
        for _ in range(turns):
            records.append(await client.ask(QUESTION, TURN_TIMEOUT_S))
    except Exception as exc:
        client.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        await client.close()
    return records, client.errors


async def run_load(clients: int = 50, turns: int = 3, segment_s: float = 1.5) -> dict[str, Any]:
    """Runs the load test and returns its figures (see ``print_load``)."""
    async with FakeServerProcess(["--segment-s", str(segment_s)]) as server:
        gate = _Gate(clients)
        tasks = [asyncio.create_task(_client(server.url, server.token, turns, gate)) for _ in range(clients)]
        await asyncio.wait_for(gate.open.wait(), CONNECT_TIMEOUT_S + 5.0)
        started = time.monotonic()
        results = await asyncio.gather(*tasks)
        seconds = time.monotonic() - started
        stats = await server.stats()
    records = [r for rs, _ in results for r in rs]
    errors = [e for _, es in results for e in es] + [e for r in records for e in r.errors]
    errors += [f"turn ended {r.status!r}" for r in records if r.status != "completed"]
    errors += [f"{clients * turns - len(records)} turns never asked"] if len(records) < clients * turns else []
    delays_ms = [d * 1000 for r in records for d in frame_delays(r)]
    ttfa_ms = [(r.frames[0][0] - r.asked_at) * 1000 for r in records if r.frames]

    def ms(values: list[float], q: float) -> float | None:
        value = percentile(values, q)
        return None if value is None else round(value, 1)

    return {
        "clients": clients,
        "turns": len(records),
        "completed": sum(1 for r in records if r.status == "completed"),
        "errors": len(errors),
        "error_examples": errors[:5],
        "seconds": round(seconds, 2),
        "frames": sum(len(r.frames) for r in records),
        "paced_frames": len(delays_ms),
        "frame_delay_ms": {"median": ms(delays_ms, 50), "p99": ms(delays_ms, 99), "max": ms(delays_ms, 100)},
        "first_audio_ms": {"median": ms(ttfa_ms, 50), "p99": ms(ttfa_ms, 99)},
        "server": stats,
    }


def print_load(figures: dict[str, Any]) -> None:
    delay, ttfa = figures["frame_delay_ms"], figures["first_audio_ms"]
    print(
        f"load: {figures['clients']} clients, {figures['turns']} turns ({figures['completed']} completed) "
        f"in {figures['seconds']} s, {figures['frames']} audio frames ({figures['paced_frames']} paced)"
    )
    print(f"  paced audio frame delay: median {delay['median']} ms, p99 {delay['p99']} ms, max {delay['max']} ms")
    print(f"  question to first audio frame: median {ttfa['median']} ms, p99 {ttfa['p99']} ms")
    print(f"  errors: {figures['errors']}")
    for example in figures["error_examples"]:
        print(f"  error: {example}")
