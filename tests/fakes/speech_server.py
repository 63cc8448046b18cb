"""A tiny OpenAI-style speech server for tests: POST /v1/audio/speech answers with streamed PCM.

The request's ``model`` picks the behaviour:

- ``tts-unauthorized``: 401 with an OpenAI-style error body that echoes the key;
- ``tts-rate-limited``: 429 with ``Retry-After: 7``;
- ``tts-broken``: 500 whose message also echoes the key;
- ``tts-odd``: the sine, then one stray byte (an odd body length);
- ``tts-slow``: 10 s of sine, one 20 ms piece at a time in real time (for cancellation);
- anything else: the sine wave as 16-bit little-endian PCM, sent in chunks of odd sizes.

Runs ``http.server`` on 127.0.0.1, port 0, in a daemon thread.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final

import numpy as np
import numpy.typing as npt

SAMPLE_RATE: Final = 24000
CHUNK_SIZES: Final = (1, 999, 2, 7, 1001, 4096, 333)


def sine_pcm(seconds: float, frequency: float = 440.0, sample_rate: int = SAMPLE_RATE) -> npt.NDArray[np.int16]:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (np.sin(2 * np.pi * frequency * t) * 12000).astype(np.int16)


class SpeechServer:
    """Context manager running the fake server; ``base_url`` ends in ``/v1``."""

    def __init__(self, seconds: float = 0.5) -> None:
        self.samples = sine_pcm(seconds)
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str] = []
        self.aborted = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-speech", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> SpeechServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _make_handler(server: SpeechServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = {}
            if self.path.rstrip("/") != "/v1/audio/speech":
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            server.requests.append(body)
            authorization = self.headers.get("Authorization", "")
            server.authorizations.append(authorization)
            key = authorization.removeprefix("Bearer ")
            model = body.get("model")
            if model == "tts-unauthorized":
                message = f"Incorrect API key provided: {key}."
                self._json(401, {"error": {"message": message, "type": "invalid_request_error"}})
            elif model == "tts-rate-limited":
                error = {"message": "Rate limit reached.", "type": "requests"}
                self._json(429, {"error": error}, {"Retry-After": "7"})
            elif model == "tts-broken":
                self._json(500, {"error": {"message": f"synthesis crashed for {key}", "type": "server_error"}})
            elif model == "tts-slow":
                self._stream_pcm(sine_pcm(10.0).tobytes(), sizes=(960,), pause_s=0.02)
            elif model == "tts-odd":
                self._stream_pcm(server.samples.tobytes() + b"\x01", sizes=CHUNK_SIZES, pause_s=0.002)
            else:
                self._stream_pcm(server.samples.tobytes(), sizes=CHUNK_SIZES, pause_s=0.002)

        def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _stream_pcm(self, data: bytes, *, sizes: tuple[int, ...], pause_s: float) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "audio/pcm")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            offset = 0
            index = 0
            try:
                while offset < len(data):
                    piece = data[offset : offset + sizes[index % len(sizes)]]
                    offset += len(piece)
                    index += 1
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.flush()
                    time.sleep(pause_s)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                server.aborted.set()
                self.close_connection = True

    return Handler
