"""One backend child process: launching it, reading its ready line, forwarding its
stderr to the ``parley.backend`` logger, and ending it (terminate, then kill).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Final

log = logging.getLogger("parley.app.supervisor")
child_log = logging.getLogger("parley.backend")

TOKEN_ENV: Final = "PARLEY_TOKEN"
STDERR_TAIL_LINES: Final = 20
MAX_LINE_BYTES: Final = 1 << 20


class BackendStartError(Exception):
    """The backend could not be started; the message says why and ends with its last stderr lines."""


def child_env(token: str) -> dict[str, str]:
    """Our environment plus the token, unbuffered output, and (from source) the project on the path."""
    env = dict(os.environ)
    env[TOKEN_ENV] = token
    env["PYTHONUNBUFFERED"] = "1"
    source_root = Path(__file__).resolve().parent.parent
    if not getattr(sys, "frozen", False) and (source_root / "backend" / "__init__.py").is_file():
        parts = [str(source_root), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    return env


class BackendProcess:
    """One backend process with the tasks that read its output."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_pump = asyncio.create_task(self._pump_stderr(), name="parley-backend-stderr")
        self._stdout_pump: asyncio.Task[None] | None = None

    @classmethod
    async def launch(cls, command: Sequence[str], env: dict[str, str]) -> BackendProcess:
        """Starts the process; raises ``BackendStartError`` if it cannot be started at all."""
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,  # held open: the child may treat EOF as "the app is gone"
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                limit=MAX_LINE_BYTES,
                # Its own session: a Ctrl+C in the terminal reaches the app, which stops the child.
                start_new_session=sys.platform != "win32",
            )
        except OSError as exc:
            raise BackendStartError(f"Could not start the backend ({command[0]}): {exc}") from exc
        log.info("backend started (pid %d)", process.pid)
        return cls(process)

    async def wait_ready(self, timeout_s: float) -> str:
        """Reads stdout until the ready line; returns the URL. Raises ``BackendStartError``."""
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    line = await self.process.stdout.readline()
                    if not line:
                        code = await self.process.wait()
                        raise BackendStartError(await self._failure(f"The backend exited ({describe_exit(code)})"))
                    url = _ready_url(line)
                    if url is not None:
                        break
                    log.debug("backend stdout: %s", line.decode(errors="replace").rstrip())
        except TimeoutError:
            raise BackendStartError(
                await self._failure(f"The backend did not become ready within {timeout_s:g} s")
            ) from None
        except ValueError as exc:  # a line over the reader's limit
            raise BackendStartError(await self._failure(f"The backend wrote an unreadable line: {exc}")) from None
        self._stdout_pump = asyncio.create_task(self._pump_stdout(), name="parley-backend-stdout")
        return url

    async def stop(self, timeout_s: float) -> None:
        """Ends the process (terminate, then kill after ``timeout_s``) and its readers.

        Runs to the end even when cancelled part-way: the process is killed and reaped.
        """
        process = self.process
        try:
            if process.returncode is None:
                if process.stdin is not None:
                    process.stdin.close()
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), timeout_s)
                except TimeoutError:
                    log.warning("backend (pid %d) ignored SIGTERM for %g s; killing it", process.pid, timeout_s)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await asyncio.wait_for(process.wait(), timeout_s)
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            pumps = [t for t in (self._stderr_pump, self._stdout_pump) if t is not None]
            for task in pumps:
                task.cancel()
            await asyncio.wait(pumps, timeout=1.0)
            log.info("backend (pid %d) stopped (%s)", process.pid, describe_exit(process.returncode))

    async def _failure(self, headline: str) -> str:
        """``headline`` plus the last stderr lines (waits briefly for them to be read)."""
        if self.process.returncode is not None:
            await asyncio.wait({self._stderr_pump}, timeout=1.0)
        tail = "\n".join(self.stderr_tail)
        return f"{headline}. Its last messages:\n{tail}" if tail else f"{headline} without any message."

    async def _pump_stderr(self) -> None:
        """Forwards the child's stderr lines to the ``parley.backend`` logger until EOF or cancel."""
        stream = self.process.stderr
        assert stream is not None
        with contextlib.suppress(ValueError):
            while line := await stream.readline():
                text = line.decode(errors="replace").rstrip()
                self.stderr_tail.append(text)
                child_log.info("%s", text)

    async def _pump_stdout(self) -> None:
        """Keeps the stdout pipe drained after the ready line (so the child never blocks on it)."""
        stream = self.process.stdout
        assert stream is not None
        with contextlib.suppress(ValueError):
            while line := await stream.readline():
                log.debug("backend stdout: %s", line.decode(errors="replace").rstrip())


def _ready_url(line: bytes) -> str | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("ready") is True:
        url = data.get("url")
        if isinstance(url, str) and url.startswith(("ws://", "wss://")):
            return url
    return None


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"
