"""A tiny OpenAI-style transcription server for tests: POST /v1/audio/transcriptions.

It parses the multipart form by hand, checks that the ``file`` part is a WAV
(RIFF/WAVE, PCM), keeps what it received in ``requests``, and answers JSON
``{"text": ...}``. The form's ``model`` picks the behaviour:

- ``stt-unauthorized``: 401 with an OpenAI-style error body that echoes the key;
- ``stt-broken``: 500 whose message also echoes the key;
- ``stt-no-text``: 200 with a JSON body that has no ``text``;
- anything else: 200 with ``reply_text``.

A body that is not a WAV gets 400. Runs ``http.server`` on 127.0.0.1, port 0, in a daemon thread.
"""

from __future__ import annotations

import io
import json
import threading
import wave
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ReceivedAudio:
    """One request as the server saw it."""

    fields: dict[str, str]
    file_name: str
    content_type: str
    sample_rate: int
    channels: int
    sample_width: int
    samples: npt.NDArray[np.int16]
    authorization: str


class TranscriptionServer:
    """Context manager running the fake server; ``base_url`` ends in ``/v1``."""

    def __init__(self, reply_text: str = "  hello   from the fake server  ") -> None:
        self.reply_text = reply_text
        self.requests: list[ReceivedAudio] = []
        self.rejections: list[str] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-stt", daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> TranscriptionServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def parse_form(content_type: str, body: bytes) -> dict[str, tuple[str | None, str, bytes]]:
    """Multipart form fields: name -> (file name, content type, raw bytes)."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body
    )
    if not message.is_multipart():
        raise ValueError("not a multipart form")
    fields: dict[str, tuple[str | None, str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            raise ValueError("a form part without a name or content")
        fields[name] = (part.get_filename(), part.get_content_type(), payload)
    return fields


def _make_handler(server: TranscriptionServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if self.path.rstrip("/") != "/v1/audio/transcriptions":
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            try:
                form = parse_form(self.headers.get("Content-Type", ""), body)
                file_name, file_type, wav_data = form["file"]
                with wave.open(io.BytesIO(wav_data), "rb") as wav:
                    samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
                    rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            except (KeyError, ValueError, EOFError, wave.Error) as exc:
                server.rejections.append(repr(exc))
                self._json(400, {"error": {"message": f"expected a WAV file: {exc}", "type": "invalid_request"}})
                return
            fields = {name: raw.decode() for name, (fname, _, raw) in form.items() if fname is None}
            authorization = self.headers.get("Authorization", "")
            server.requests.append(
                ReceivedAudio(fields, file_name or "", file_type, rate, channels, width, samples, authorization)
            )
            key = authorization.removeprefix("Bearer ")
            model = fields.get("model")
            if model == "stt-unauthorized":
                message = f"Incorrect API key provided: {key}."
                self._json(401, {"error": {"message": message, "type": "invalid_request_error"}})
            elif model == "stt-broken":
                self._json(500, {"error": {"message": f"decoder crashed for {key}", "type": "server_error"}})
            elif model == "stt-no-text":
                self._json(200, {"result": "nothing"})
            else:
                self._json(200, {"text": server.reply_text})

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
