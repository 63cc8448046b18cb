"""An OpenAI-compatible server for fault tests: chat (streamed), speech and transcription,
each answering well or failing in a chosen way (issue 6).

``server.fail(kind, times=1)`` makes the next ``times`` requests fail; then it answers well:

- ``"401"``: rejected key (the body echoes the key, as some servers do);
- ``"429"``: rate limited, ``Retry-After: 7``;
- ``"500"``: internal error (the body echoes the key);
- ``"cut"``: a few pieces of the answer, then the connection is dropped mid-body;
- ``"eof"``: a few pieces of the answer, then a clean end of the body without the end of the reply;
- ``"hang"``: reads the request and never answers (until the server stops);
- ``"stall"``: a few pieces of the answer, then silence (until the server stops).

Chat replies are ``REPLY`` in pieces; speech is a sine wave (16-bit PCM at 24 kHz);
transcripts are ``TRANSCRIPT``. Runs ``http.server`` on 127.0.0.1, port 0, in a daemon thread.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final

import numpy as np

REPLY: Final = "One, two, three. Four five six seven. Eight nine ten."
PIECES: Final = [word + " " for word in REPLY.split(" ")]
PARTIAL_PIECES: Final = 3
"""Pieces a "cut", "eof" or "stall" answer sends before it fails."""
TRANSCRIPT: Final = "What time is it?"
SAMPLE_RATE: Final = 24000
FAULTS: Final = ("401", "429", "500", "cut", "eof", "hang", "stall")


def _pcm(seconds: float) -> bytes:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * 330 * t) * 9000).astype("<i2").tobytes()


class FaultyOpenAI:
    """Context manager running the server; ``base_url`` ends in ``/v1``."""

    def __init__(self, port: int = 0) -> None:
        self._faults: deque[str] = deque()
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.requests: list[str] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="faulty-openai", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def fail(self, kind: str, times: int = 1) -> None:
        if kind not in FAULTS:
            raise ValueError(kind)
        with self._lock:
            self._faults.extend([kind] * times)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def next_fault(self, path: str) -> str:
        with self._lock:
            self.requests.append(path)
            return self._faults.popleft() if self._faults else "ok"

    def __enter__(self) -> FaultyOpenAI:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _make_handler(server: FaultyOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            if self.path.endswith("/models"):
                self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "tests"}]})
            else:
                self._json(404, {"error": {"message": "no such path"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            fault = server.next_fault(self.path)
            key = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if fault == "401":
                error = {"message": f"Incorrect API key provided: {key}.", "code": "invalid_api_key"}
                self._json(401, {"error": error})
            elif fault == "429":
                error = {"message": "Rate limit reached.", "code": "rate_limit"}
                self._json(429, {"error": error}, {"Retry-After": "7"})
            elif fault == "500":
                self._json(500, {"error": {"message": f"Backend exploded while using key {key}."}})
            elif fault == "hang":
                self._wait()
            elif self.path.endswith("/chat/completions"):
                self._chat(fault)
            elif self.path.endswith("/audio/speech"):
                self._speech(fault)
            elif self.path.endswith("/audio/transcriptions"):
                self._transcript(fault)
            else:
                self._json(404, {"error": {"message": "no such path"}})

        def _chat(self, fault: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            if fault == "eof":
                self.send_header("Connection", "close")
            else:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            pieces = PIECES[:PARTIAL_PIECES] if fault in ("cut", "eof", "stall") else PIECES
            for i, piece in enumerate(pieces):
                choice: dict[str, Any] = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                self._event(fault, {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "fake",
                                    "choices": [choice]})
                if i == 0:
                    time.sleep(0.01)
            if fault == "cut":
                self._drop()
            elif fault == "stall":
                self._wait()
            elif fault == "eof":
                self.close_connection = True
            else:
                last = {"index": 0, "delta": {}, "finish_reason": "stop"}
                self._event(fault, {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "fake",
                                    "choices": [last]})
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")

        def _speech(self, fault: str) -> None:
            body = _pcm(0.3)
            self.send_response(200)
            self.send_header("Content-Type", "audio/pcm")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if fault in ("cut", "eof", "stall"):
                self.wfile.write(body[: len(body) // 4])
                self.wfile.flush()
                if fault == "stall":
                    self._wait()
                else:
                    self._drop()
                return
            self.wfile.write(body)

        def _transcript(self, fault: str) -> None:
            if fault == "ok":
                self._json(200, {"text": TRANSCRIPT})
                return
            body = json.dumps({"text": TRANSCRIPT}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:5])
            self.wfile.flush()
            if fault == "stall":
                self._wait()
            else:
                self._drop()

        def _event(self, fault: str, payload: dict[str, Any]) -> None:
            data = f"data: {json.dumps(payload)}\n\n".encode()
            if fault == "eof":
                self.wfile.write(data)
                self.wfile.flush()
            else:
                self._chunk(data)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _drop(self) -> None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        def _wait(self) -> None:
            self.close_connection = True
            server.stopping.wait(60)

        def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler
