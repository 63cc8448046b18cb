"""The websocket server: handshake, one session per connection, message dispatch.

Refuses a wrong token (constant-time compare), an unknown major protocol
version, any request with a browser ``Origin`` header, a connection that does not
say ``Hello`` in time, and frames above the size limit. Malformed or unknown
messages get an ``Error`` reply and the connection goes on.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from http import HTTPStatus
from typing import Final

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from backend.engine_hub import EngineHub
from backend.protocol import (
    ERR_AUTH,
    ERR_MALFORMED,
    ERR_STATE,
    ERR_VERSION,
    MAX_BINARY_FRAME_BYTES,
    PROTOCOL_VERSION,
    Ask,
    AudioFrame,
    Cancel,
    Error,
    Hello,
    Interrupt,
    Message,
    ProtocolError,
    ResetConversation,
    Status,
    Welcome,
    decode,
    decode_or_error,
    major,
)
from backend.session import Conversation, Session

log = logging.getLogger("parley.server")

HELLO_TIMEOUT_S: Final = 10.0
CLOSE_AUTH: Final = 4001
CLOSE_VERSION: Final = 4002
CLOSE_PROTOCOL: Final = 4003
SERVER_NAME: Final = "parley-backend"
MAX_FRAME_BYTES: Final = 4 * MAX_BINARY_FRAME_BYTES
"""Frames up to this size are read and answered with an Error; larger ones close the connection."""


class WebSocketOutput:
    """Sends a session's messages on its websocket; sends after the close are dropped."""

    def __init__(self, ws: ServerConnection) -> None:
        self._ws = ws

    async def send(self, message: Message) -> None:
        try:
            await self._ws.send(message.to_wire())
        except ConnectionClosed:
            log.debug("dropped %s: connection closed", message.TYPE)

    async def send_audio(self, frame: AudioFrame) -> None:
        try:
            await self._ws.send(frame.to_wire())
        except ConnectionClosed:
            pass


def _refuse_browsers(connection: ServerConnection, request: Request) -> Response | None:
    """Browsers always send Origin; a desktop app never does. Refusing it stops web pages."""
    if request.headers.get("Origin") is not None:
        log.warning("refused a connection with Origin %r", request.headers.get("Origin"))
        return connection.respond(HTTPStatus.FORBIDDEN, "Browser connections are not allowed.\n")
    return None


class ParleyServer:
    """Serves sessions on the engines of one ``EngineHub``."""

    def __init__(self, hub: EngineHub, token: str, system_prompt: str, context_tokens: int) -> None:
        if not token:
            raise ValueError("a token is required")
        self._hub = hub
        self._token = token.encode()
        self._system_prompt = system_prompt
        self._context_tokens = context_tokens
        self._server: Server | None = None

    async def start(self, host: str, port: int) -> str:
        """Listens and returns the ``ws://`` URL (with the real port when ``port`` is 0)."""
        self._server = await serve(
            self._handle,
            host,
            port,
            max_size=MAX_FRAME_BYTES,
            process_request=_refuse_browsers,
            compression=None,
            server_header=SERVER_NAME,
        )
        sock = next(iter(self._server.sockets))
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        return f"ws://{shown}:{bound_port}"

    async def aclose(self) -> None:
        """Closes all connections (their sessions cancel their turns) and stops listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        if not await self._handshake(ws):
            return
        out = WebSocketOutput(ws)
        session = Session(self._hub, out, Conversation(self._system_prompt, self._context_tokens))

        async def forward_status(status: Status) -> None:
            await out.send(status)

        self._hub.subscribe(forward_status)
        try:
            await out.send(self._hub.status)
            async for frame in ws:
                await self._dispatch(frame, session, out)
        except ConnectionClosed:
            pass
        finally:
            self._hub.unsubscribe(forward_status)
            await session.close()
            log.info("connection from %s closed", ws.remote_address)

    async def _handshake(self, ws: ServerConnection) -> bool:
        """Reads ``Hello`` and answers ``Welcome``; on any failure says why and closes."""
        try:
            raw = await asyncio.wait_for(ws.recv(), HELLO_TIMEOUT_S)
        except (TimeoutError, ConnectionClosed):
            await ws.close(CLOSE_PROTOCOL, "no hello")
            return False
        try:
            hello = decode(raw) if isinstance(raw, str) else None
        except ProtocolError:
            hello = None
        if not isinstance(hello, Hello):
            await self._refuse(ws, ERR_STATE, "The first message must be hello.", CLOSE_PROTOCOL)
            return False
        if major(hello.version) != major(PROTOCOL_VERSION):
            message = f"Protocol {hello.version[:20]!r} is not supported; this server speaks {PROTOCOL_VERSION}."
            await self._refuse(ws, ERR_VERSION, message, CLOSE_VERSION)
            return False
        if not hmac.compare_digest(hello.token.encode(), self._token):
            await self._refuse(ws, ERR_AUTH, "Wrong token.", CLOSE_AUTH)
            return False
        await ws.send(Welcome(version=PROTOCOL_VERSION, server=SERVER_NAME, capabilities=("text",)).to_wire())
        log.info("session opened for %s (%s)", ws.remote_address, hello.client[:40])
        return True

    @staticmethod
    async def _refuse(ws: ServerConnection, code: str, message: str, close_code: int) -> None:
        try:
            await ws.send(Error(code=code, message=message).to_wire())
            await ws.close(close_code, code)
        except ConnectionClosed:
            pass

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
                await session.stop(message.turn_id, reason="interrupted")
            case ResetConversation():
                await session.stop(reason="cancelled")
                session.conversation.reset()
            case _:
                await out.send(Error(code=ERR_STATE, message=f"A client may not send {message.TYPE!r}."))
