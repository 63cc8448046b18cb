"""A stand-in for ``python -m backend serve`` used to test the supervisor.

It speaks no protocol: it binds a loopback port (so the announced URL is real),
prints the ready line, logs what it was given to stderr, and then behaves as
``--mode`` says:

- ``ready``: wait until terminated.
- ``exit-early``: complain on stderr and exit 3 before the ready line.
- ``hang``: never print the ready line.
- ``stubborn``: print the ready line and ignore SIGTERM.
- ``crash``: print the ready line and exit 1 after ``--after`` seconds.
- ``protocol``: serve the scripted protocol of ``protocol_server.py`` with the token
  from ``PARLEY_TOKEN`` until terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path


async def _serve_protocol(token: str) -> int:
    from tests.fakes.protocol_server import FakeProtocolServer, Script

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with FakeProtocolServer(Script(reply="A reply from the fake backend process."), token=token) as server:
        print(json.dumps({"ready": True, "url": server.url}), flush=True)
        await stop.wait()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="ready")
    parser.add_argument("--after", type=float, default=0.2)
    args, rest = parser.parse_known_args()
    token = os.environ.get("PARLEY_TOKEN", "")
    digest = hashlib.sha256(token.encode()).hexdigest()[:16] if token else "none"
    print(f"fake backend: pid {os.getpid()} token-sha {digest} argv {sys.argv[1:] + rest}", file=sys.stderr)
    if args.mode == "exit-early":
        print("fake backend: the model file is missing", file=sys.stderr, flush=True)
        return 3
    if args.mode == "hang":
        time.sleep(3600)
        return 0
    if args.mode == "protocol":
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project root, for tests.fakes
        return asyncio.run(_serve_protocol(token))
    if args.mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    print(json.dumps({"ready": True, "url": f"ws://127.0.0.1:{port}"}), flush=True)
    if args.mode == "crash":
        time.sleep(args.after)
        print("fake backend: crashing on purpose", file=sys.stderr, flush=True)
        return 1
    time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
