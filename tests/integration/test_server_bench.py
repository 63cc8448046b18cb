"""The soak and load benchmarks run (small sizes; their figures are printed, never asserted)."""

from __future__ import annotations

import asyncio

from assistant.bench.load_bench import print_load, run_load
from assistant.bench.soak_bench import print_soak, run_soak


def test_a_small_soak_runs_every_turn_and_reports_the_server_process() -> None:
    figures = asyncio.run(asyncio.wait_for(run_soak(turns=20, clients=2, rounds=2), 120))
    print_soak(figures)
    assert figures["errors"] == 0 and figures["completed"] == figures["turns"] >= 20
    assert len(figures["samples"]) == 3 and all(s["rss_kb"] > 0 and s["fds"] > 0 for s in figures["samples"])


def test_a_small_load_measures_paced_audio_frames() -> None:
    figures = asyncio.run(asyncio.wait_for(run_load(clients=4, turns=1, segment_s=1.5), 120))
    print_load(figures)
    assert figures["errors"] == 0 and figures["completed"] == 4
    assert figures["paced_frames"] > 0 and figures["frame_delay_ms"]["p99"] is not None
