"""A websocket client made of a bare socket, for clients that misbehave on purpose (issue 6):
one that never reads, one that sends half a frame, one that never finishes its HTTP request.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
from urllib.parse import urlsplit

TIMEOUT_S = 10.0


def open_socket(url: str, *, receive_buffer: int | None = None) -> socket.socket:
    """A TCP connection to the server of ``url`` (with a small, fixed receive buffer if asked)."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(TIMEOUT_S)
    sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    return sock


def upgrade(sock: socket.socket) -> bytes:
    """Sends the HTTP upgrade request and reads the answer's head; returns it."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    return head


def frame(payload: bytes, *, text: bool = True, length: int | None = None) -> bytes:
    """A masked client frame; ``length`` may claim more bytes than ``payload`` has (a partial frame)."""
    size = len(payload) if length is None else length
    head = bytes([0x81 if text else 0x82])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection; raises ``TimeoutError`` if it does not."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except TimeoutError:
            raise TimeoutError(f"the server kept the connection open for {timeout} s") from None
        if not chunk:
            return data
        data += chunk
