"""Shared test setup.

Qt runs offscreen (set before anything imports Qt). Tests that mix Qt and asyncio
use the ``qloop`` fixture: a qasync loop that counts as running while Qt
processes events, so tasks advance inside ``qtbot.wait_signal`` / ``waitUntil``,
and ``run_async`` to await a coroutine from such a test.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


@pytest.fixture
def qloop(qapp: Any) -> Iterator[asyncio.AbstractEventLoop]:
    """A qasync event loop, current and "running" for the whole test; closed afterwards."""
    import qasync

    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        _cancel_leftovers(loop, qapp)
        # Not loop.stop(): it calls QApplication.exit(), after which every nested Qt event
        # loop (qtbot.wait*, in later tests) returns at once without processing events.
        loop._QEventLoop__is_running = False
        asyncio.events._set_running_loop(None)
        loop.close()
        asyncio.set_event_loop(None)


def _cancel_leftovers(loop: asyncio.AbstractEventLoop, qapp: Any) -> None:
    """Cancels tasks a test left behind and lets them finish (bounded)."""
    import time

    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    deadline = time.monotonic() + 5.0
    while any(not t.done() for t in tasks) and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.005)


@pytest.fixture
def run_async(qloop: asyncio.AbstractEventLoop, qtbot: Any) -> Callable[..., Any]:
    """``run_async(coro, timeout=10.0)`` runs a coroutine on the qasync loop and returns its result."""

    def run(coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        task = qloop.create_task(asyncio.wait_for(coro, timeout))
        qtbot.waitUntil(task.done, timeout=int((timeout + 5.0) * 1000))
        return task.result()

    return run


@pytest.fixture(scope="session")
def pulseaudio() -> str:
    """Skips the test unless a PulseAudio server answers (see tests/audio_env.sh); returns its name."""
    import shutil
    import subprocess

    if shutil.which("pactl") is None:
        pytest.skip("pactl is not installed (apt install pulseaudio-utils)")
    try:
        info = subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        pytest.skip("the PulseAudio server does not answer")
    if info.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail('CI must run the audio tests: start the virtual sound card with tests/audio_env.sh')
        pytest.skip('no PulseAudio server is running; start one with: eval "$(tests/audio_env.sh)"')
    return next((line.split(":", 1)[1].strip() for line in info.stdout.splitlines() if "Server Name" in line), "")
