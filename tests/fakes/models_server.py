"""A tiny OpenAI-compatible ``/v1/models`` endpoint on 127.0.0.1 that accepts one API key.

For the settings checks: ``GET /v1/models`` answers 200 with a model list for
``Bearer <key>`` and 401 otherwise; anything else is 404.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ModelsServer:
    """Serves in a daemon thread while used as a context manager; ``url`` ends with /v1."""

    def __init__(self, key: str = "good-key") -> None:
        self.key = key
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if self.path != "/v1/models":
                    self._send(404, {"error": {"message": "not found"}})
                elif self.headers.get("Authorization") != f"Bearer {server.key}":
                    self._send(401, {"error": {"message": "Incorrect API key provided"}})
                else:
                    self._send(200, {"object": "list", "data": [{"id": "test-model", "object": "model"}]})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="models-server", daemon=True)

    def __enter__(self) -> ModelsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5.0)
