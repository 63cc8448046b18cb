"""BackendSupervisor with a hand-written fake backend script (tests/fakes/fake_backend.py)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from assistant.backend_supervisor import BackendStartError, BackendSupervisor, backend_command

FAKE = str(Path(__file__).resolve().parent.parent / "fakes" / "fake_backend.py")


def fake(mode: str, *extra: str) -> list[str]:
    return [sys.executable, FAKE, "--mode", mode, *extra]


def run(body: Callable[[], Awaitable[None]], timeout: float = 30.0) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(body(), timeout)

    asyncio.run(bounded())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), timeout)


def test_default_command_serves_on_a_free_loopback_port() -> None:
    command = backend_command(["--llm-model", "fast"])
    assert command[:3] == [sys.executable, "-m", "backend"]
    assert command[3:] == ["serve", "--host", "127.0.0.1", "--port", "0", "--exit-with-parent", "--llm-model", "fast"]


def test_start_returns_the_announced_url_and_passes_the_token_only_by_env(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="parley.backend")

    async def body() -> None:
        supervisor = BackendSupervisor(command=fake("ready"))
        url = await supervisor.start()
        assert url.startswith("ws://127.0.0.1:")
        pid = supervisor.pid
        assert pid is not None and alive(pid)
        digest = hashlib.sha256(supervisor.token.encode()).hexdigest()[:16]
        await until(lambda: any("token-sha" in r.getMessage() for r in caplog.records))
        line = next(r.getMessage() for r in caplog.records if "token-sha" in r.getMessage())
        assert f"token-sha {digest}" in line  # the child got our token through PARLEY_TOKEN ...
        assert supervisor.token not in line  # ... and not on its command line
        await supervisor.stop()
        assert not alive(pid)
        assert supervisor.pid is None

    run(body)


def test_a_backend_that_exits_early_gives_a_clear_error_with_its_stderr() -> None:
    async def body() -> None:
        supervisor = BackendSupervisor(command=fake("exit-early"))
        with pytest.raises(BackendStartError) as caught:
            await supervisor.start()
        message = str(caught.value)
        assert "exit code 3" in message
        assert "the model file is missing" in message
        await supervisor.stop()

    run(body)


def test_a_backend_that_never_gets_ready_times_out_and_is_stopped() -> None:
    async def body() -> None:
        supervisor = BackendSupervisor(command=fake("hang"), ready_timeout_s=1.0)
        with pytest.raises(BackendStartError) as caught:
            await supervisor.start()
        assert "did not become ready within 1 s" in str(caught.value)
        assert supervisor.pid is None

    run(body)


def test_a_backend_that_ignores_sigterm_is_killed() -> None:
    async def body() -> None:
        supervisor = BackendSupervisor(command=fake("stubborn"), stop_timeout_s=0.5)
        await supervisor.start()
        pid = supervisor.pid
        assert pid is not None
        await supervisor.stop()
        assert not alive(pid)

    run(body)


def test_a_dead_backend_is_restarted_and_reported() -> None:
    async def body() -> None:
        events: list[str] = []
        supervisor = BackendSupervisor(
            command=fake("ready"),
            on_restarting=lambda reason: events.append(f"restarting: {reason}"),
            on_ready=lambda url: events.append(f"ready: {url}"),
            first_backoff_s=0.05,
        )
        first_url = await supervisor.start()
        first_pid = supervisor.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)
        await until(lambda: any(e.startswith("ready:") for e in events))
        assert events[0].startswith("restarting: The backend stopped unexpectedly (killed by signal 9)")
        assert supervisor.pid not in (None, first_pid)
        assert supervisor.url is not None and supervisor.url != first_url
        await supervisor.stop()

    run(body)


def test_restarts_stop_after_the_limit_with_a_clear_message() -> None:
    async def body() -> None:
        failed: list[str] = []
        restarting: list[str] = []
        supervisor = BackendSupervisor(
            command=fake("crash", "--after", "0.05"),
            on_restarting=restarting.append,
            on_failed=failed.append,
            max_restarts=3,
            first_backoff_s=0.01,
        )
        await supervisor.start()
        await until(lambda: bool(failed), timeout=20)
        assert len(restarting) == 3
        assert "failed 3 times" in failed[0] and "restart Parley" in failed[0]
        assert "crashing on purpose" in failed[0]
        await supervisor.stop()
        assert supervisor.pid is None

    run(body)
