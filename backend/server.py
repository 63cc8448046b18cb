"""The websocket server: handshake, one session per connection, message dispatch.

Refuses a wrong token (constant-time compare), an unknown major protocol
version, any request with a browser ``Origin`` header, a connection that does not
say ``Hello`` in time, and frames above the size limit. Malformed or unknown
messages get an ``Error`` reply and the connection goes on.

Server mode (issue 6): every connection lives within ``ConnectionLimits`` (timeouts,
a rate limit, a send timeout for clients that stop reading), serves ``wss://`` with
a TLS context, and its session outlives a dropped link for a while so that the client
can resume it (``backend/resume.py``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
from http import HTTPStatus
from typing import Final

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from backend.conversation_requests import REQUESTS as CONVERSATION_REQUESTS
from backend.conversation_requests import handle_request
from backend.engine_hub import EngineHub
from backend.history import SessionHistory
from backend.limits import ConnectionLimits
from backend.protocol import (
    CAPABILITY_RESUME,
    CAPABILITY_VOICE,
    CLOSE_POLICY,
    ERR_AUTH,
    ERR_CONFIG,
    ERR_MALFORMED,
    ERR_RATE_LIMITED,
    ERR_STATE,
    ERR_VERSION,
    MAX_BINARY_FRAME_BYTES,
    PROTOCOL_VERSION,
    Ask,
    AudioFrame,
    Cancel,
    Configure,
    Error,
    Hello,
    Interrupt,
    Message,
    Notice,
    ProtocolError,
    Regenerate,
    ResetConversation,
    ResumeHello,
    UtteranceEnd,
    UtterancePause,
    UtteranceResume,
    UtteranceStart,
    Welcome,
    decode,
    decode_or_error,
    major,
)
from backend.rate_limit import RateLimiter, Verdict
from backend.reconfigure import EngineConfigurator
from backend.resume import ResumableOutput, SessionLinks
from backend.session import Conversation, Session
from backend.status_relay import StatusRelay
from backend.store import ConversationStore
from backend.voice_turns import LEAVES_UTTERANCES, VoiceTurns

log = logging.getLogger("parley.server")

HELLO_TIMEOUT_S: Final = 10.0
CLOSE_AUTH: Final = 4001
CLOSE_VERSION: Final = 4002
CLOSE_PROTOCOL: Final = 4003
SERVER_NAME: Final = "parley-backend"
MAX_FRAME_BYTES: Final = 4 * MAX_BINARY_FRAME_BYTES
"""Frames up to this size are read and answered with an Error; larger ones close the connection."""


class WebSocketOutput:
    """Sends a session's messages on its websocket; sends after the close are dropped.

    A client that takes none of our data for ``send_timeout_s`` is cut off (the TCP
    connection is aborted), so it never holds its turn, or anything else, for longer.
    """

    def __init__(self, ws: ServerConnection, send_timeout_s: float = ConnectionLimits.send_timeout_s) -> None:
        self._ws = ws
        self._send_timeout_s = send_timeout_s

    async def send(self, message: Message) -> None:
        if not await self._send(message.to_wire()):
            log.debug("dropped %s: connection closed", message.TYPE)

    async def send_audio(self, frame: AudioFrame) -> None:
        await self._send(frame.to_wire())

    async def _send(self, data: str | bytes) -> bool:
        try:
            async with asyncio.timeout(self._send_timeout_s):
                await self._ws.send(data)
        except ConnectionClosed:
            return False
        except TimeoutError:
            log.warning("%s took no data for %.0f s: cutting it off", self._ws.remote_address, self._send_timeout_s)
            self._ws.transport.abort()
            return False
        return True


def _refuse_browsers(connection: ServerConnection, request: Request) -> Response | None:
    """Browsers always send Origin; a desktop app never does. Refusing it stops web pages."""
    if request.headers.get("Origin") is not None:
        log.warning("refused a connection with Origin %r", request.headers.get("Origin"))
        return connection.respond(HTTPStatus.FORBIDDEN, "Browser connections are not allowed.\n")
    return None


class ParleyServer:
    """Serves sessions on the engines of one ``EngineHub``."""

    def __init__(
        self,
        hub: EngineHub,
        token: str,
        system_prompt: str,
        context_tokens: int,
        *,
        store: ConversationStore | None = None,
        configurator: EngineConfigurator | None = None,
        limits: ConnectionLimits | None = None,
    ) -> None:
        if not token:
            raise ValueError("a token is required")
        self._hub = hub
        self._token = token.encode()
        self._system_prompt = system_prompt
        self._context_tokens = context_tokens
        self._server: Server | None = None
        self._store = store  # None: an in-memory store, opened by start()
        self._owns_store = store is None
        self._configurator = configurator
        self._sessions: set[Session] = set()
        # server mode (issue 6): bounds, resumable sessions, notices every client hears
        self._limits = limits or ConnectionLimits()
        self._links = SessionLinks(self._limits, on_closed=self._sessions.discard)
        self.notices: list[Notice] = []

    async def start(self, host: str, port: int, *, tls: ssl.SSLContext | None = None) -> str:
        """Listens and returns the ``ws://`` URL (``wss://`` with ``tls``; the real port when ``port`` is 0)."""
        if self._store is None:
            self._store = await ConversationStore.open(None)
        self._server = await serve(
            self._handle,
            host,
            port,
            max_size=MAX_FRAME_BYTES,
            process_request=_refuse_browsers,
            compression=None,
            server_header=SERVER_NAME,
            ssl=tls,
            open_timeout=self._limits.open_timeout_s,
            close_timeout=self._limits.close_timeout_s,
        )
        sock = next(iter(self._server.sockets))
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        return f"{'wss' if tls is not None else 'ws'}://{shown}:{bound_port}"

    async def aclose(self) -> None:
        """Closes all connections (their sessions cancel their turns) and stops listening."""
        await self._links.aclose()  # sessions waiting to be resumed, and no more from now on
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._owns_store and self._store is not None:
            await self._store.aclose()

    async def _handle(self, ws: ServerConnection) -> None:
        hello = await self._handshake(ws)
        if hello is None:
            return
        out = WebSocketOutput(ws, self._limits.send_timeout_s)
        # A session outlives a dropped link for a while, and ResumeHello takes it back (issue 6).
        link, generation = self._links.open(hello, self._new_session, ws.transport.abort)
        session = link.session
        voice = VoiceTurns(session, self._hub, link.output)  # spoken questions (issue 3)
        self._sessions.add(session)
        status = StatusRelay(out)  # the hub never waits for a slow client
        limiter = RateLimiter(self._limits)
        self._hub.subscribe(status.publish)
        resumable = CAPABILITY_RESUME in hello.capabilities or isinstance(hello, ResumeHello)
        try:
            if resumable:
                await self._links.attach(link, hello, out)
            else:
                await link.output.attach(out, None, None, None)
            await out.send(self._hub.status)
            if self._store is not None and self._store.notice:
                await out.send(Notice(code="store", message=self._store.notice))
            for notice in self.notices:
                await out.send(notice)
            async for frame in ws:
                if await self._within_rate(limiter, ws, out) and not await self._dispatch_voice(frame, voice, out):
                    await self._dispatch(frame, session, out)
        except ConnectionClosed:
            pass
        finally:
            self._hub.unsubscribe(status.publish)
            await status.aclose()
            await voice.drop()
            dropped = ws.protocol.close_rcvd is None and not limiter.flooded  # no goodbye from the client
            keep = dropped and resumable
            kept = await self._links.release(link, generation, keep=keep)
            log.info("connection from %s closed%s", ws.remote_address, " (session kept to resume)" if kept else "")

    async def _handshake(self, ws: ServerConnection) -> Hello | None:
        """Reads ``Hello`` and answers ``Welcome``; on any failure says why, closes and returns None."""
        try:
            raw = await asyncio.wait_for(ws.recv(), self._limits.hello_timeout_s)
        except (TimeoutError, ConnectionClosed):
            await ws.close(CLOSE_PROTOCOL, "no hello")
            return None
        try:
            hello = decode(raw) if isinstance(raw, str) else None
        except ProtocolError:
            hello = None
        if not isinstance(hello, Hello):
            await self._refuse(ws, ERR_STATE, "The first message must be hello.", CLOSE_PROTOCOL)
            return None
        if major(hello.version) != major(PROTOCOL_VERSION):
            message = f"Protocol {hello.version[:20]!r} is not supported; this server speaks {PROTOCOL_VERSION}."
            await self._refuse(ws, ERR_VERSION, message, CLOSE_VERSION)
            return None
        if not hmac.compare_digest(hello.token.encode(), self._token):
            await self._refuse(ws, ERR_AUTH, "Wrong token.", CLOSE_AUTH)
            return None
        capabilities = ("text", CAPABILITY_VOICE) if self._hub.stt is not None else ("text",)
        offered = (*capabilities, CAPABILITY_RESUME)  # issue 6
        await ws.send(Welcome(version=PROTOCOL_VERSION, server=SERVER_NAME, capabilities=offered).to_wire())
        log.info("session opened for %s (%s)", ws.remote_address, hello.client[:40])
        return hello

    @staticmethod
    async def _refuse(ws: ServerConnection, code: str, message: str, close_code: int) -> None:
        try:
            await ws.send(Error(code=code, message=message).to_wire())
            await ws.close(close_code, code)
        except ConnectionClosed:
            pass

    # ---- spoken questions (issue 3) ----------------------------------------------------------

    @staticmethod
    async def _dispatch_voice(frame: str | bytes, voice: VoiceTurns, out: WebSocketOutput) -> bool:
        """Handles microphone audio and utterance messages; True when nothing is left for ``_dispatch``.

        Requests that start or reset turns first drop an utterance in progress.
        """
        if isinstance(frame, bytes):
            try:
                await voice.audio(AudioFrame.from_wire(frame))
            except ProtocolError as exc:
                await out.send(Error(code=exc.code, message=str(exc)))
            return True
        message = decode_or_error(frame)
        match message:
            case UtteranceStart():
                await voice.start(message)
            case UtterancePause():
                await voice.pause(message.turn_id)
            case UtteranceResume():
                await voice.resume(message.turn_id)
            case UtteranceEnd():
                await voice.end(message.turn_id)
            case Cancel() | Interrupt():
                return await voice.cancel(message.turn_id)
            case Error():
                return False
            case _ if not isinstance(message, LEAVES_UTTERANCES):
                await voice.drop()  # Ask, Regenerate, ResetConversation, a new or opened conversation...
                return False
            case _:
                return False
        return True

    async def _dispatch(self, frame: str | bytes, session: Session, out: WebSocketOutput) -> None:
        if isinstance(frame, bytes):
            await out.send(Error(code=ERR_STATE, message="Audio input is not accepted on this connection."))
            return
        message = decode_or_error(frame)
        match message:
            case Error():
                await out.send(message)
            case Ask():
                if not message.text.strip():
                    await out.send(
                        Error(code=ERR_MALFORMED, message="The question is empty.", turn_id=message.turn_id)
                    )
                    return
                await session.ask(message)
            case Cancel():
                await session.stop(message.turn_id, reason="cancelled")
            case Interrupt():
                await session.stop(message.turn_id, reason="interrupted", heard_s=message.heard_s)
            case ResetConversation():
                await session.stop(reason="cancelled")
                session.conversation.reset()
                if session.history is not None:
                    session.history.new()  # the next question starts a new stored conversation
            case Regenerate():
                await session.regenerate(message)
            case Configure():
                await self._configure(message, out)
            case _ if isinstance(message, CONVERSATION_REQUESTS):
                await handle_request(message, session, out)
            case _:
                await out.send(Error(code=ERR_STATE, message=f"A client may not send {message.TYPE!r}."))

    # ---- live settings (issue 4) ---------------------------------------------------------

    async def _configure(self, message: Configure, out: WebSocketOutput) -> None:
        if self._configurator is None:
            await out.send(Error(code=ERR_CONFIG, message="This backend does not take settings from the app."))
            return
        refused = await self._configurator.configure(message)
        if refused:
            await out.send(Error(code=ERR_CONFIG, message=refused))

    def set_system_prompt(self, system_prompt: str) -> None:
        """Used for the next question of every session (the prompt cache restarts once)."""
        self._system_prompt = system_prompt
        for session in self._sessions:
            session.conversation.set_system_prompt(system_prompt)

    # ---- server mode (issue 6): fresh sessions, rate limits --------------------------------

    def _new_session(self, out: ResumableOutput) -> Session:
        conversation = Conversation(self._system_prompt, self._context_tokens)
        history = SessionHistory(self._store, conversation) if self._store is not None else None
        return Session(self._hub, out, conversation, history)

    async def _within_rate(self, limiter: RateLimiter, ws: ServerConnection, out: WebSocketOutput) -> bool:
        """True when a frame may be handled; over the limit it is dropped, and a flood closes the link.

        A flooding client is not waited for: without its answer to the close within the
        close timeout, its connection is cut.
        """
        verdict = limiter.check()
        if verdict is Verdict.ALLOW:
            return True
        if verdict is Verdict.DROP_AND_WARN:
            log.warning("%s sends too many messages: dropping some", ws.remote_address)
            await out.send(Error(code=ERR_RATE_LIMITED, message="Too many messages: some were dropped."))
        elif verdict is Verdict.CLOSE:
            log.warning("%s floods: closing its connection", ws.remote_address)
            await out.send(Error(code=ERR_RATE_LIMITED, message="Too many messages: the connection is closed."))
            try:
                async with asyncio.timeout(self._limits.close_timeout_s):
                    await ws.close(CLOSE_POLICY, "rate limit exceeded")
            except TimeoutError:
                ws.transport.abort()
        return False
