"""Sessions that outlive a dropped link, so the client can take them back (issue 6).

Every session sends through a ``ResumableOutput``: it forwards to the connection
attached now, and remembers the text and the final messages (``Error``, ``TurnDone``)
of the latest turn, whether or not they reached anyone. When a link drops without a
close frame, ``SessionLinks.release`` detaches the session and keeps it for the grace
period; its turn runs on and is stored as usual. ``ResumeHello`` names the session, the
turn and how many characters of it the client has: ``attach`` then sends ``SessionInfo``
and exactly the missing end of the reply (and the turn's final messages if it ended),
under the output's lock, before any live message of the session. A resume may also take
a session whose old connection has not yet noticed that its link is dead: that
connection is aborted. See the "resume" section of ``backend/protocol.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from backend.limits import ConnectionLimits
from backend.protocol import (
    ERR_STATE,
    AudioFrame,
    Error,
    Hello,
    Message,
    ResumeHello,
    SessionInfo,
    TextDelta,
    TurnDone,
    TurnStarted,
)
from backend.session import Session
from backend.turn import TurnOutput

log = logging.getLogger("parley.resume")

MAX_FINALS: Final = 8
CATCH_UP_CHARS: Final = 8000
"""The missing text is sent in pieces of at most this many characters (well inside a frame)."""
LOST_QUESTION: Final = "The question was lost when the connection dropped; please ask again."
CLOSE_TIMEOUT_S: Final = 10.0


class ResumableOutput:
    """A session's output that can be detached from one connection and attached to the next."""

    def __init__(self) -> None:
        self._target: TurnOutput | None = None
        self._lock = asyncio.Lock()
        self._turn_id: int | None = None
        self._text: list[str] = []
        self._finals: list[Message] = []

    @property
    def attached(self) -> bool:
        return self._target is not None

    async def send(self, message: Message) -> None:
        """Remembers what a resume may need, then forwards (or, detached, drops) the message."""
        async with self._lock:
            self._remember(message)
            if self._target is not None:
                await self._target.send(message)

    async def send_audio(self, frame: AudioFrame) -> None:
        if self._target is None:
            return  # audio is not replayed: nothing to keep
        async with self._lock:
            if self._target is not None:
                await self._target.send_audio(frame)

    async def attach(
        self, target: TurnOutput, info: SessionInfo | None, point: ResumeHello | None, asked: int | None
    ) -> None:
        """Sends ``info`` (if any) and what the client at ``point`` missed, then forwards to ``target``.

        ``asked`` is the id of the session's latest turn (started or not). Nothing the session
        sends meanwhile can come in between: it waits for the lock.
        """
        async with self._lock:
            if info is not None:
                await target.send(info)
            for message in self._missed(point, asked) if point is not None else []:
                await target.send(message)
            self._target = target

    def detach(self) -> None:
        self._target = None

    def _remember(self, message: Message) -> None:
        if isinstance(message, TurnStarted):
            self._turn_id, self._text, self._finals = message.turn_id, [], []
        elif getattr(message, "turn_id", None) != self._turn_id or self._turn_id is None:
            return
        elif isinstance(message, TextDelta):
            self._text.append(message.text)
        elif isinstance(message, Error | TurnDone) and len(self._finals) < MAX_FINALS:
            self._finals.append(message)

    def _missed(self, point: ResumeHello, asked: int | None) -> list[Message]:
        turn_id = point.turn_id
        if turn_id is None:
            return []
        if turn_id == self._turn_id:
            text = "".join(self._text)[point.received_chars :]
            pieces: list[Message] = [
                TextDelta(turn_id=turn_id, text=text[i : i + CATCH_UP_CHARS])
                for i in range(0, len(text), CATCH_UP_CHARS)
            ]
            done = [m for m in self._finals if isinstance(m, TurnDone)]
            errors = [m for m in self._finals if isinstance(m, Error)]
            return pieces + errors + done[-1:]
        if turn_id == asked:
            return []  # asked and not started yet (the engines are loading): it comes live
        return [
            Error(code=ERR_STATE, message=LOST_QUESTION, turn_id=turn_id),
            TurnDone(turn_id=turn_id, status="error", error=LOST_QUESTION),
        ]


@dataclass(eq=False)
class SessionLink:
    """A session, its output, and the id a client resumes it by."""

    session_id: str
    session: Session
    output: ResumableOutput
    resumed: bool = False
    generation: int = 0
    _drop_connection: Callable[[], None] | None = None
    _expiry: asyncio.Task[None] | None = field(default=None, repr=False)


class SessionLinks:
    """Every session by id: attached to a connection, or detached and waiting to be resumed."""

    def __init__(self, limits: ConnectionLimits, on_closed: Callable[[Session], None] | None = None) -> None:
        self._limits = limits
        self._on_closed = on_closed
        self._links: dict[str, SessionLink] = {}
        self._detached: dict[str, SessionLink] = {}  # insertion order: oldest first
        self._expiries: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def detached_count(self) -> int:
        return len(self._detached)

    def sessions(self) -> list[Session]:
        return [link.session for link in self._links.values()]

    def open(
        self, hello: Hello, make_session: Callable[[ResumableOutput], Session], drop_connection: Callable[[], None]
    ) -> tuple[SessionLink, int]:
        """The session ``hello`` resumes (its old connection is dropped), or a new one; with its generation."""
        link = self._links.get(hello.session_id) if isinstance(hello, ResumeHello) and hello.session_id else None
        if link is not None:
            self._detached.pop(link.session_id, None)
            if link._expiry is not None:
                link._expiry.cancel()
                link._expiry = None
            if link._drop_connection is not None:
                log.info("a session was resumed while its old connection was still open: dropping that one")
                link._drop_connection()
            link.output.detach()
            link.resumed = True
            link.generation += 1
        else:
            output = ResumableOutput()
            link = SessionLink(secrets.token_urlsafe(18), make_session(output), output)
            self._links[link.session_id] = link
        link._drop_connection = drop_connection
        return link, link.generation

    async def attach(self, link: SessionLink, hello: Hello, target: TurnOutput) -> None:
        """Sends ``SessionInfo`` and what a resuming client missed, then attaches the connection.

        A running turn that the resuming client no longer waits for is cancelled first.
        """
        point = hello if isinstance(hello, ResumeHello) and link.resumed else None
        session = link.session
        if point is not None and session.busy and session.turn_id != point.turn_id:
            await session.stop(reason="cancelled")
        detail = "" if link.resumed or not isinstance(hello, ResumeHello) else "The earlier session has ended."
        info = SessionInfo(session_id=link.session_id, resumed=link.resumed, detail=detail)
        await link.output.attach(target, info, point, session.turn_id)

    async def release(self, link: SessionLink, generation: int, *, keep: bool) -> bool:
        """The connection of ``generation`` ended: keeps the session to be resumed (True), or closes it.

        Does nothing when a newer connection has taken the session already.
        """
        if self._links.get(link.session_id) is not link or link.generation != generation:
            return False
        link.output.detach()
        link._drop_connection = None
        if not keep or self._closing or self._limits.resume_grace_s <= 0:
            await self._close(link)
            return False
        while len(self._detached) >= max(1, self._limits.max_detached):
            oldest = next(iter(self._detached.values()))
            log.info("too many sessions wait to be resumed: closing the oldest")
            await self._close(oldest)
        self._detached[link.session_id] = link
        link._expiry = asyncio.create_task(self._expire(link), name="parley-session-expiry")
        self._expiries.add(link._expiry)
        link._expiry.add_done_callback(self._expiries.discard)
        log.info("a link dropped; its session waits %.0f s to be resumed", self._limits.resume_grace_s)
        return True

    async def _expire(self, link: SessionLink) -> None:
        """Closes a detached session after the grace period; cancelled when it is resumed."""
        await asyncio.sleep(self._limits.resume_grace_s)
        link._expiry = None
        if self._detached.get(link.session_id) is link:
            log.info("a session was not resumed in time: closing it")
            await self._close(link)

    async def _close(self, link: SessionLink) -> None:
        self._detached.pop(link.session_id, None)
        if self._links.get(link.session_id) is link:
            del self._links[link.session_id]
        expiry, link._expiry = link._expiry, None
        if expiry is not None and expiry is not asyncio.current_task():
            expiry.cancel()
        await link.session.close()
        if self._on_closed is not None:
            self._on_closed(link.session)

    async def aclose(self) -> None:
        """Closes every detached session (connected ones close with their connections); no more are kept."""
        self._closing = True
        for link in list(self._detached.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._close(link), CLOSE_TIMEOUT_S)
        expiries = list(self._expiries)
        for task in expiries:
            task.cancel()
        if expiries:
            await asyncio.wait(expiries, timeout=CLOSE_TIMEOUT_S)
