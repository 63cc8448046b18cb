"""Records what the virtual sound card plays, from the null sink's monitor (test helper)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def recording_monitor(path: Path, rate: int) -> Iterator[Path]:
    """Records ``vsink.monitor`` as raw s16le mono at ``rate`` into ``path`` while the block runs."""
    with path.open("wb") as out:
        recorder = subprocess.Popen(
            ["parec", "-d", "vsink.monitor", "--format=s16le", f"--rate={rate}", "--channels=1", "--latency-msec=20"],
            stdout=out,
        )
        try:
            time.sleep(0.3)  # the recorder is connected before anything plays
            yield path
        finally:
            recorder.terminate()
            recorder.wait(timeout=5)


def read_pcm(path: Path) -> np.ndarray:
    return np.frombuffer(path.read_bytes(), dtype="<i2")
