"""One websocket connection to a Parley backend, in plain asyncio (no Qt).

The app wraps it in ``BackendClient``; the selftest and the benchmark use it
directly. A reader task and a writer task run side by side, watched together:
when either ends, both are cancelled and the sink hears ``on_closed`` once.

The connection keeps track of the *current* turn: the last one asked and not yet
done, cancelled or interrupted. Everything the server sends about any other turn
is dropped here, so the sink never sees a stale frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterator
from typing import Final, Protocol
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from assistant.net.handshake import ConnectionFailed, close_reason, describe_close, explain_failure, handshake
from assistant.net.resume import ResumePoint, hello_for, read_session_info
from backend.protocol import (
    CAPABILITY_RESUME,
    MAX_BINARY_FRAME_BYTES,
    MAX_TEXT_FRAME_BYTES,
    Ask,
    AudioEnd,
    AudioFrame,
    AudioStart,
    Cancel,
    Error,
    Interrupt,
    Message,
    PipelineMode,
    ProtocolError,
    Regenerate,
    ResetConversation,
    SessionInfo,
    Status,
    TextDelta,
    Transcript,
    TurnDone,
    TurnStarted,
    UtteranceEnd,
    UtterancePause,
    UtteranceResume,
    UtteranceStart,
    Welcome,
    decode,
)
from backend.protocol import SERVER_SESSION_MESSAGES as _SESSION_MESSAGES

__all__ = ["AskRefused", "BackendConnection", "ConnectionFailed", "ConnectionSink", "MessageTooLong", "NotConnected"]

log = logging.getLogger("parley.app.net")

CLIENT_NAME: Final = "parley-app"
OUTBOX_LIMIT: Final = 32
CLOSE_TIMEOUT_S: Final = 2.0
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_TURN_MESSAGES: Final = (TurnStarted, Transcript, TextDelta, AudioStart, AudioEnd, TurnDone)
AUDIO_OUTBOX_LIMIT: Final = 128
"""Microphone frames waiting to be sent at most (about 4 s); more are dropped."""
_UTTERANCE_ITEMS: Final = (UtteranceStart, UtterancePause, UtteranceResume, UtteranceEnd, AudioFrame)


class AskRefused(Exception):
    """A request was not sent; ``str(exc)`` says why. Nothing was queued."""


class NotConnected(AskRefused):
    pass


class MessageTooLong(AskRefused):
    pass


class ConnectionSink(Protocol):
    """Receives what the server sends, on the event loop's thread."""

    def on_message(self, message: Message) -> None:
        """Welcome, Status, Error without a turn, and the messages of the current turn only."""

    def on_audio(self, frame: AudioFrame) -> None:
        """Audio frames of the current turn only."""

    def on_closed(self, reason: str) -> None:
        """The connection ended by itself (not after ``close()``); called once."""


class BackendConnection:
    """Owns one websocket to the backend: handshake, a reader, a writer and the turn ids."""

    def __init__(
        self,
        url: str,
        token: str,
        sink: ConnectionSink,
        *,
        client_name: str = CLIENT_NAME,
        resume: ResumePoint | None = None,
    ) -> None:
        self._url = url
        self._token = token
        self._sink = sink
        self._client_name = client_name
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._next_turn = 1
        self._current_turn: int | None = None
        self._urgent: deque[Message] = deque()
        self._outbox: deque[Message | AudioFrame] = deque()
        self._wake = asyncio.Event()
        self.welcome: Welcome | None = None
        self._audio_seq = 0  # microphone frames of the open utterance (issue 3)
        self._queued_audio = 0
        # resuming a session after the link dropped (issue 6)
        self._resume = resume
        self.session: SessionInfo | None = None
        if resume is not None:
            self._next_turn = max(1, resume.next_turn)

    @property
    def url(self) -> str:
        return self._url

    @property
    def next_turn(self) -> int:
        """The id the next turn asked on this connection gets (a resumed session goes on from here)."""
        return self._next_turn

    @property
    def current_turn(self) -> int | None:
        """The turn whose messages are delivered, or None between turns."""
        return self._current_turn

    @property
    def is_open(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closing

    # ---- opening and closing ---------------------------------------------------

    async def connect(self, timeout_s: float = 10.0) -> Welcome:
        """Opens the websocket, exchanges Hello/Welcome and starts the reader and writer.

        Raises ``ConnectionFailed`` with a clear message on refusal, bad token or timeout.
        Cancelling it closes whatever was opened.
        """
        if self._ws is not None:
            raise RuntimeError("BackendConnection.connect() may be called once")
        ws: ClientConnection | None = None
        try:
            async with asyncio.timeout(timeout_s):
                ws = await connect(
                    self._url,
                    compression=None,
                    max_size=max(MAX_BINARY_FRAME_BYTES, MAX_TEXT_FRAME_BYTES),
                    max_queue=64,
                    open_timeout=None,
                    close_timeout=CLOSE_TIMEOUT_S,
                    proxy=None if urlsplit(self._url).hostname in _LOOPBACK_HOSTS else True,
                    user_agent_header=self._client_name,
                )
                hello = hello_for(self._token, self._client_name, self._resume)
                welcome = await handshake(ws, self._token, self._client_name, hello=hello)
                if CAPABILITY_RESUME in welcome.capabilities:
                    self.session = await read_session_info(ws)
        except (ConnectionFailed, asyncio.CancelledError):
            if ws is not None:
                await _close_quietly(ws)
            raise
        except Exception as exc:
            if ws is not None:
                await _close_quietly(ws)
            raise explain_failure(exc, self._url, timeout_s) from exc
        self._ws = ws
        self.welcome = welcome
        if self.session is not None and self.session.resumed and self._resume is not None:
            self._current_turn = self._resume.turn_id  # the rest of that reply follows
        log.info("connected to %s (%s, protocol %s)", self._url, welcome.server, welcome.version)
        self._task = asyncio.create_task(self._run(ws), name="parley-backend-connection")
        self._deliver_message(welcome)
        return welcome

    async def close(self) -> None:
        """Closes the websocket and awaits the reader and writer; safe to call twice.

        ``on_closed`` is not called for a close asked for here.
        """
        self._closing = True
        self._current_turn = None
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            _, pending = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S + 1.0)
            if pending:
                log.warning("the connection to %s did not close in time", self._url)

    # ---- requests (non-blocking) ---------------------------------------------

    def ask(self, text: str, *, speak: bool = True, pipeline: PipelineMode = "streaming") -> int:
        """Queues a question and makes it the current turn; returns its turn id.

        Raises ``NotConnected`` or ``MessageTooLong`` (nothing is queued then).
        """
        self._check_open()
        turn_id = self._next_turn
        message = Ask(turn_id=turn_id, text=text, speak=speak, pipeline=pipeline)
        size = len(message.to_wire().encode())
        if size > MAX_TEXT_FRAME_BYTES:
            raise MessageTooLong(
                f"The message is too long to send ({size // 1024} KB; the limit is {MAX_TEXT_FRAME_BYTES // 1024} KB)."
            )
        if len(self._outbox) >= OUTBOX_LIMIT:
            raise NotConnected("The backend is not taking requests right now; try again in a moment.")
        self._next_turn += 1
        self._current_turn = turn_id
        self._outbox.append(message)
        self._wake.set()
        return turn_id

    def cancel(self) -> None:
        """Leaves the current turn at once (its later frames are dropped) and sends Cancel."""
        turn_id = self._leave_current_turn()
        if turn_id is not None:
            self._send_urgent(Cancel(turn_id=turn_id))

    def interrupt(self, heard_s: float, turn_id: int | None = None) -> None:
        """Like ``cancel`` but tells the backend that ``heard_s`` seconds of audio were heard.

        ``turn_id`` names a turn whose reply is done but whose audio was still playing.
        """
        if turn_id is None or turn_id == self._current_turn:
            turn_id = self._leave_current_turn()
        if turn_id is not None:
            self._send_urgent(Interrupt(turn_id=turn_id, heard_s=max(0.0, heard_s)))

    # ---- spoken questions (issue 3) ---------------------------------------------------

    def start_utterance(self, *, speak: bool = True, pipeline: PipelineMode = "streaming") -> int:
        """Opens a voice turn and makes it the current turn; returns its id. Raises ``NotConnected``."""
        self._check_open()
        turn_id = self._next_turn
        self._next_turn += 1
        self._current_turn = turn_id
        self._audio_seq = 0
        self._outbox.append(UtteranceStart(turn_id=turn_id, speak=speak, pipeline=pipeline))
        self._wake.set()
        return turn_id

    def send_utterance_audio(self, turn_id: int, pcm: bytes) -> bool:
        """Queues microphone audio (16 kHz mono int16) of the current voice turn; False if dropped."""
        if turn_id != self._current_turn or not self.is_open:
            return False
        if self._queued_audio >= AUDIO_OUTBOX_LIMIT:
            log.warning("the backend does not take the microphone audio fast enough: dropped a frame")
            return False
        self._outbox.append(AudioFrame(turn_id=turn_id, seq=self._audio_seq, pcm=pcm))
        self._audio_seq += 1
        self._queued_audio += 1
        self._wake.set()
        return True

    def send_utterance_control(self, message: UtterancePause | UtteranceResume | UtteranceEnd) -> None:
        """Queues a pause, resume or end of the current voice turn (ignored for any other turn)."""
        if message.turn_id == self._current_turn and self.is_open:
            self._outbox.append(message)
            self._wake.set()

    def _drop_unsent_utterance(self, turn_id: int) -> bool:
        """Removes what is still queued for voice turn ``turn_id``; True if its start never went out."""
        items = [item for item in self._outbox if isinstance(item, _UTTERANCE_ITEMS) and item.turn_id == turn_id]
        for item in items:
            self._outbox.remove(item)
            if isinstance(item, AudioFrame):
                self._queued_audio -= 1
        return any(isinstance(item, UtteranceStart) for item in items)

    def reset_conversation(self) -> None:
        """Asks the backend to forget this session's history."""
        self._check_open()
        self._outbox.append(ResetConversation())
        self._wake.set()

    # ---- stored conversations and settings (issue 4) ----------------------------------

    def send_request(self, message: Message) -> None:
        """Queues a request that is not a turn (list, open, configure ...); raises ``NotConnected``."""
        self._check_open()
        if len(self._outbox) >= OUTBOX_LIMIT:
            raise NotConnected("The backend is not taking requests right now; try again in a moment.")
        self._outbox.append(message)
        self._wake.set()

    def regenerate(self, *, speak: bool = True, pipeline: PipelineMode = "streaming") -> int:
        """Asks for the last reply again, as a new current turn; returns its turn id."""
        self._check_open()
        turn_id = self._next_turn
        self.send_request(Regenerate(turn_id=turn_id, speak=speak, pipeline=pipeline))
        self._next_turn += 1
        self._current_turn = turn_id
        return turn_id

    def _check_open(self) -> None:
        if not self.is_open:
            raise NotConnected("Not connected to the backend.")

    def _leave_current_turn(self) -> int | None:
        """Forgets the current turn; returns it if the server knows about it (its Ask went out)."""
        turn_id, self._current_turn = self._current_turn, None
        if turn_id is None:
            return None
        if self._drop_unsent_utterance(turn_id):
            return None
        for queued in self._outbox:
            if isinstance(queued, Ask | Regenerate) and queued.turn_id == turn_id:
                self._outbox.remove(queued)  # never sent: nothing to cancel
                return None
        return turn_id

    def _send_urgent(self, message: Message) -> None:
        if self.is_open:
            self._urgent.append(message)
            self._wake.set()

    # ---- tasks ---------------------------------------------------------------

    async def _run(self, ws: ClientConnection) -> None:
        """Runs reader and writer until either ends; on cancel, stops both and closes the socket."""
        reader = asyncio.create_task(self._read(ws), name="parley-connection-reader")
        writer = asyncio.create_task(self._write(ws), name="parley-connection-writer")
        reason = "the connection was closed"
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            finished = done.pop()
            exc = finished.exception()
            reason = finished.result() if exc is None else f"the connection failed: {exc!r}"
            if exc is not None:
                log.error("connection task failed", exc_info=exc)
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            await _close_quietly(ws)
            self._current_turn = None
            if not self._closing:
                log.warning("connection to %s lost: %s", self._url, reason)
                with _guard("on_closed"):
                    self._sink.on_closed(reason)

    async def _write(self, ws: ClientConnection) -> str:
        """Sends urgent control first, then queued requests; returns why the socket closed."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while (message := self._next_outgoing()) is not None:
                    await ws.send(message.to_wire())
        except ConnectionClosed as exc:
            return close_reason(exc)

    def _next_outgoing(self) -> Message | AudioFrame | None:
        if self._urgent:
            return self._urgent.popleft()
        if self._outbox:
            item = self._outbox.popleft()
            if isinstance(item, AudioFrame):
                self._queued_audio -= 1
            return item
        return None

    async def _read(self, ws: ClientConnection) -> str:
        """Dispatches incoming frames until the socket closes; returns why it closed."""
        try:
            async for raw in ws:
                if isinstance(raw, bytes):
                    self._on_binary(raw)
                else:
                    self._on_text(raw)
        except ConnectionClosed as exc:
            return close_reason(exc)
        return describe_close(ws.close_code, ws.close_reason or "")

    def _on_text(self, raw: str) -> None:
        try:
            message = decode(raw)
        except ProtocolError as exc:
            log.warning("skipped a malformed frame from the backend: %s", exc)
            return
        turn_id = getattr(message, "turn_id", None)
        if isinstance(message, (Welcome, Status, *_SESSION_MESSAGES)) or (
            isinstance(message, Error) and turn_id is None
        ):
            self._deliver_message(message)
        elif isinstance(message, (*_TURN_MESSAGES, Error)):
            if turn_id is None or turn_id != self._current_turn:
                log.debug("dropped %s of turn %s (current: %s)", message.TYPE, turn_id, self._current_turn)
                return
            if isinstance(message, TurnDone):
                self._current_turn = None
            self._deliver_message(message)
        else:
            log.warning("ignored a %r message, which only clients send", message.TYPE)

    def _on_binary(self, raw: bytes) -> None:
        try:
            frame = AudioFrame.from_wire(raw)
        except ProtocolError as exc:
            log.warning("skipped a malformed audio frame from the backend: %s", exc)
            return
        if frame.turn_id != self._current_turn:
            return
        with _guard("on_audio"):
            self._sink.on_audio(frame)

    def _deliver_message(self, message: Message) -> None:
        with _guard(f"on_message({message.TYPE})"):
            self._sink.on_message(message)


async def _close_quietly(ws: ClientConnection) -> None:
    """Closes a websocket, bounded by its close timeout; never raises (except on cancel)."""
    try:
        await ws.close()
    except Exception as exc:  # closing a broken socket may fail in many ways; all mean "closed"
        log.debug("closing the websocket: %r", exc)


@contextlib.contextmanager
def _guard(what: str) -> Iterator[None]:
    """Logs a failing sink callback instead of letting it end the connection."""
    try:
        yield
    except Exception:
        log.exception("the connection sink failed in %s", what)
