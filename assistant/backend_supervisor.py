"""Runs the embedded backend as a child process and keeps it running (asyncio, no Qt).

The child gets a fresh random token through the environment only (never argv, which
other users can read), listens on 127.0.0.1 with a port of its choosing, and
announces itself with one JSON line on stdout: ``{"ready": true, "url": "ws://..."}``.
Its stderr goes to the ``parley.backend`` logger. If it dies, it is restarted with
a growing delay, up to ``max_restarts`` times within ``restart_window_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence

from assistant.backend_process import TOKEN_ENV, BackendProcess, BackendStartError, child_env, describe_exit

__all__ = ["TOKEN_ENV", "BackendStartError", "BackendSupervisor", "backend_command"]

log = logging.getLogger("parley.app.supervisor")


def backend_command(extra_args: Sequence[str] = ()) -> list[str]:
    """The command that serves the backend on a free loopback port, from source or from a bundle."""
    serve = ["serve", "--host", "127.0.0.1", "--port", "0", "--exit-with-parent", *extra_args]
    if getattr(sys, "frozen", False):
        return [sys.executable, "--backend", *serve]
    return [sys.executable, "-m", "backend", *serve]


class BackendSupervisor:
    """Starts the backend child, restarts it when it dies, and stops it on request."""

    def __init__(
        self,
        extra_args: Sequence[str] = (),
        *,
        on_ready: Callable[[str], None] | None = None,
        on_restarting: Callable[[str], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
        command: Sequence[str] | None = None,
        ready_timeout_s: float = 120.0,
        stop_timeout_s: float = 5.0,
        max_restarts: int = 5,
        restart_window_s: float = 60.0,
        first_backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
    ) -> None:
        self.token = secrets.token_urlsafe(32)
        self._command = list(command) if command is not None else backend_command(extra_args)
        self._on_ready = on_ready
        self._on_restarting = on_restarting
        self._on_failed = on_failed
        self._ready_timeout_s = ready_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._max_restarts = max_restarts
        self._restart_window_s = restart_window_s
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self._child: BackendProcess | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._restarts: deque[float] = deque()
        self._stopping = False
        self.url: str | None = None
        self.failure: str | None = None

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.process.pid if child is not None and child.process.returncode is None else None

    @property
    def command(self) -> list[str]:
        return list(self._command)

    async def start(self) -> str:
        """Starts the child, waits for its ready line and starts watching it; returns its URL.

        Raises ``BackendStartError`` (with the child's last stderr lines). If cancelled,
        the child is stopped.
        """
        if self._watcher is not None:
            raise RuntimeError("BackendSupervisor.start() may be called once")
        url = await self._launch()
        self._watcher = asyncio.create_task(self._watch(), name="parley-backend-watcher")
        return url

    async def stop(self) -> None:
        """Stops watching and ends the child (SIGTERM, then SIGKILL). Safe to call twice."""
        self._stopping = True
        watcher = self._watcher
        if watcher is not None and not watcher.done():
            watcher.cancel()
            await asyncio.wait({watcher}, timeout=2 * self._stop_timeout_s + 2.0)
        child, self._child = self._child, None
        if child is not None:
            await child.stop(self._stop_timeout_s)
        self.url = None

    async def _launch(self) -> str:
        child = await BackendProcess.launch(self._command, child_env(self.token))
        self._child = child
        try:
            url = await child.wait_ready(self._ready_timeout_s)
        except BaseException:
            self._child = None
            await child.stop(self._stop_timeout_s)
            raise
        self.url = url
        log.info("backend ready at %s", url)
        return url

    async def _watch(self) -> None:
        """Waits for the child to die and restarts it; on cancel, just stops watching."""
        while self._child is not None:
            code = await self._child.process.wait()
            if self._stopping:
                return
            tail = self._child.stderr_tail[-1] if self._child.stderr_tail else ""
            reason = f"The backend stopped unexpectedly ({describe_exit(code)})" + (f": {tail}" if tail else "")
            log.warning("%s", reason)
            dead, self._child = self._child, None
            self.url = None
            await dead.stop(self._stop_timeout_s)
            if not await self._restart(reason):
                return

    async def _restart(self, reason: str) -> bool:
        """Starts a new child with back-off; False once the restart budget is spent."""
        while True:
            now = time.monotonic()
            while self._restarts and now - self._restarts[0] > self._restart_window_s:
                self._restarts.popleft()
            if len(self._restarts) >= self._max_restarts:
                self.failure = (
                    f"{reason}. It failed {len(self._restarts)} times in {self._restart_window_s:g} s, "
                    "so Parley stopped restarting it; restart Parley to try again."
                )
                log.error("%s", self.failure)
                with _guard("on_failed"):
                    if self._on_failed is not None:
                        self._on_failed(self.failure)
                return False
            delay = min(self._max_backoff_s, self._first_backoff_s * 2 ** len(self._restarts))
            self._restarts.append(now)
            with _guard("on_restarting"):
                if self._on_restarting is not None:
                    self._on_restarting(f"{reason}; restarting it in {delay:.1f} s.")
            await asyncio.sleep(delay)
            try:
                url = await self._launch()
            except BackendStartError as exc:
                reason = str(exc)
                log.warning("restarting the backend failed: %s", reason)
                continue
            with _guard("on_ready"):
                if self._on_ready is not None:
                    self._on_ready(url)
            return True


@contextlib.contextmanager
def _guard(what: str) -> Iterator[None]:
    """Logs a failing callback instead of letting it stop the supervisor."""
    try:
        yield
    except Exception:
        log.exception("supervisor callback %s failed", what)
