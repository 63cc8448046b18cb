"""A private virtual sound card for the voice benchmark and tests: speaker and microphone in one room.

``virtual_room()`` loads a PulseAudio null sink of its own, keeps a silent stream
playing into it (an idle null sink otherwise runs in 2-second blocks), and points
this process's default output at the sink and its default input at the sink's
monitor (``PULSE_SINK`` / ``PULSE_SOURCE``, read by the ALSA pulse plugin when a
stream opens). What the app plays, and what ``play_file`` plays, is then what the
app's microphone hears, and nothing that other programs play into the shared
virtual card. Everything is unloaded on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

KEEPER_LATENCY_MS: Final = 20
PR_SET_PDEATHSIG: Final = 1
SETTLED_LATENCY_S: Final = 0.05
SETTLE_TIMEOUT_S: Final = 8.0


class RoomUnavailable(RuntimeError):
    """PulseAudio (or its tools) is not there; the message says what to start or install."""


@dataclass(frozen=True)
class VirtualRoom:
    sink: str

    @property
    def monitor(self) -> str:
        return f"{self.sink}.monitor"

    async def play_file(self, path: Path, timeout_s: float = 60.0) -> None:
        """Plays a WAV file into the room (the microphone hears it); returns when it has played."""
        process = await asyncio.create_subprocess_exec("paplay", "-d", self.sink, str(path))
        try:
            code = await asyncio.wait_for(process.wait(), timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        if code != 0:
            raise RoomUnavailable(f"paplay could not play {path} into {self.sink} (exit code {code})")


def _pactl(*args: str) -> str:
    try:
        done = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10, check=False)
    except FileNotFoundError:
        raise RoomUnavailable("pactl is not installed (apt install pulseaudio-utils)") from None
    except subprocess.TimeoutExpired:
        raise RoomUnavailable("the PulseAudio server does not answer") from None
    if done.returncode != 0:
        raise RoomUnavailable(
            f"pactl {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()} "
            '(start a server with: eval "$(tests/audio_env.sh)")'
        )
    return done.stdout.strip()


def _load_prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


_PRCTL: Final = _load_prctl()  # looked up here, not in the forked child


def _die_with_parent() -> None:
    """In the keeper, before it starts: ends it when this process dies, even if killed (Linux only)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


def _sink_latency_s(sink: str) -> float | None:
    listing = _pactl("list", "sinks")
    start = listing.find(f"Name: {sink}\n")
    if start < 0:
        return None
    match = re.search(r"Latency: (\d+) usec", listing[start:])
    return int(match.group(1)) / 1e6 if match else None


def _wait_until_settled(sink: str) -> None:
    """A new null sink starts with a 2-second buffer that drains in real time: wait until it has."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        latency = _sink_latency_s(sink)
        if latency is not None and latency < SETTLED_LATENCY_S:
            return
        time.sleep(0.1)
    raise RoomUnavailable(f"the virtual sink {sink} did not settle within {SETTLE_TIMEOUT_S:.0f} s")


@contextlib.contextmanager
def virtual_room(name: str = "") -> Iterator[VirtualRoom]:
    """A private null sink as this process's speaker and microphone while the block runs."""
    for tool in ("pactl", "pacat", "paplay"):
        if shutil.which(tool) is None:
            raise RoomUnavailable(f"{tool} is not installed (apt install pulseaudio-utils)")
    sink = name or f"parley_room_{uuid.uuid4().hex[:8]}"
    module = _pactl("load-module", "module-null-sink", f"sink_name={sink}")
    try:
        with open("/dev/zero", "rb") as zeros:
            keeper = subprocess.Popen(
                ["pacat", "-p", "-d", sink, f"--latency-msec={KEEPER_LATENCY_MS}"],
                stdin=zeros,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        try:
            _wait_until_settled(sink)
            with _default_devices(sink):
                yield VirtualRoom(sink)
        finally:
            keeper.terminate()
            try:
                keeper.wait(timeout=5)
            except subprocess.TimeoutExpired:
                keeper.kill()
                keeper.wait()
    finally:
        with contextlib.suppress(RoomUnavailable):
            _pactl("unload-module", module)


@contextlib.contextmanager
def _default_devices(sink: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in ("PULSE_SINK", "PULSE_SOURCE")}
    os.environ["PULSE_SINK"] = sink
    os.environ["PULSE_SOURCE"] = f"{sink}.monitor"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
