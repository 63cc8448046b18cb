"""Taking back a backend session after the link dropped (issue 6; see "resume" in backend/protocol.py).

The app remembers its session's id and, when it reconnects in the middle of a reply,
opens with ``ResumeHello``: the turn it was receiving and how many characters of the
reply it already has. The server sends the rest, once.
"""

from __future__ import annotations

from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection

from assistant.net.handshake import ConnectionFailed
from backend.protocol import (
    CAPABILITY_RESUME,
    PROTOCOL_VERSION,
    Hello,
    ProtocolError,
    ResumeHello,
    SessionInfo,
    decode,
)


@dataclass(frozen=True)
class ResumePoint:
    """Where a client left a session: its id, the turn it waits for, the reply's characters it has."""

    session_id: str
    turn_id: int | None
    received_chars: int
    next_turn: int

    def __repr__(self) -> str:  # the session id is a credential of sorts: keep it out of logs
        return f"ResumePoint(turn_id={self.turn_id!r}, received_chars={self.received_chars}, session_id=<hidden>)"


def hello_for(token: str, client_name: str, point: ResumePoint | None) -> Hello:
    """The opening message: a ``Hello`` that offers to resume, or a ``ResumeHello`` that does."""
    if point is None:
        return Hello(version=PROTOCOL_VERSION, token=token, client=client_name, capabilities=(CAPABILITY_RESUME,))
    return ResumeHello(
        version=PROTOCOL_VERSION,
        token=token,
        client=client_name,
        capabilities=(CAPABILITY_RESUME,),
        session_id=point.session_id,
        turn_id=point.turn_id,
        received_chars=max(0, point.received_chars),
    )


async def read_session_info(ws: ClientConnection) -> SessionInfo:
    """Reads the ``SessionInfo`` that follows ``Welcome``; raises ``ConnectionFailed`` for anything else."""
    raw = await ws.recv()
    try:
        message = decode(raw) if isinstance(raw, str) else None
    except ProtocolError as exc:
        raise ConnectionFailed(f"The backend's session information could not be read: {exc}", "protocol") from None
    if not isinstance(message, SessionInfo):
        raise ConnectionFailed("The backend did not say which session this is.", "protocol")
    return message
