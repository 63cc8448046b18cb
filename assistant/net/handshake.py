"""Opening a connection to the backend: the Hello/Welcome exchange, and a clear
message for every way it can fail (no server, wrong token, other protocol, timeout).
"""

from __future__ import annotations

import socket
import ssl

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from backend.protocol import (
    ERR_AUTH,
    ERR_VERSION,
    PROTOCOL_VERSION,
    Error,
    Hello,
    ProtocolError,
    Welcome,
    decode,
    major,
)


class ConnectionFailed(Exception):
    """The connection could not be opened; ``str(exc)`` is a message for people.

    ``code`` is one of "unreachable", "timeout", "auth", "version", "protocol".
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


async def handshake(ws: ClientConnection, token: str, client_name: str, *, hello: Hello | None = None) -> Welcome:
    """Sends ``hello`` (by default a plain Hello) and reads the answer; returns the Welcome or raises
    ``ConnectionFailed``."""
    await ws.send((hello or Hello(version=PROTOCOL_VERSION, token=token, client=client_name)).to_wire())
    raw = await ws.recv()
    if isinstance(raw, bytes):
        raise ConnectionFailed("The backend sent audio before its welcome; is it a Parley backend?", "protocol")
    try:
        reply = decode(raw)
    except ProtocolError as exc:
        raise ConnectionFailed(f"The backend's welcome could not be read: {exc}", "protocol") from None
    if isinstance(reply, Error):
        if reply.code == ERR_AUTH:
            raise ConnectionFailed("The backend refused our access token; check backend.token in the settings.", "auth")
        if reply.code == ERR_VERSION:
            raise ConnectionFailed(f"The backend speaks another protocol version: {reply.message}", "version")
        raise ConnectionFailed(f"The backend refused the connection: {reply.message}", "protocol")
    if not isinstance(reply, Welcome):
        raise ConnectionFailed(f"The backend answered {reply.TYPE!r} instead of a welcome.", "protocol")
    if major(reply.version) != major(PROTOCOL_VERSION):
        raise ConnectionFailed(
            f"The backend speaks protocol {reply.version}, this app speaks {PROTOCOL_VERSION}; update the older one.",
            "version",
        )
    return reply


def explain_failure(exc: Exception, url: str, timeout_s: float) -> ConnectionFailed:
    """Turns a failure while connecting into a ``ConnectionFailed`` with a clear message."""
    where = f"the backend at {url}"
    if isinstance(exc, TimeoutError):
        return ConnectionFailed(f"No answer from {where} within {timeout_s:g} s.", "timeout")
    if isinstance(exc, InvalidURI):
        return ConnectionFailed(f"{url!r} is not a websocket address (ws://host:port).", "unreachable")
    if isinstance(exc, ssl.SSLCertVerificationError):  # server mode (issue 6)
        return ConnectionFailed(
            f"The TLS certificate of {where} is not trusted ({exc.verify_message or exc}): use a certificate from "
            "a known authority, or start Parley with SSL_CERT_FILE pointing at your own authority's certificate.",
            "unreachable",
        )
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionFailed(f"Cannot reach {where}: nothing is listening there.", "unreachable")
    if isinstance(exc, socket.gaierror):
        return ConnectionFailed(f"Cannot reach {where}: the host name is unknown.", "unreachable")
    if isinstance(exc, OSError):
        detail = exc.strerror or str(exc) or type(exc).__name__
        return ConnectionFailed(f"Cannot reach {where}: {detail}.", "unreachable")
    if isinstance(exc, InvalidHandshake):
        return ConnectionFailed(f"{where} refused the websocket: {exc}", "protocol")
    if isinstance(exc, ConnectionClosed):
        reason = close_reason(exc)
        return ConnectionFailed(f"{where} closed the connection during the handshake ({reason}).", "protocol")
    return ConnectionFailed(f"Could not connect to {where}: {exc}", "unreachable")


def describe_close(code: int | None, reason: str) -> str:
    """Why a websocket closed, for logs and messages."""
    if code is None:
        return "the connection dropped"
    text = f"closed by the backend (code {code}"
    return f"{text}: {reason})" if reason else f"{text})"


def close_reason(exc: ConnectionClosed) -> str:
    """``describe_close`` for a ``ConnectionClosed`` exception."""
    received = exc.rcvd
    return describe_close(received.code if received else None, received.reason if received else "")
