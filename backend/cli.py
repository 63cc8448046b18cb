"""``parley-backend``: the command line of the backend server.

``parley-backend serve`` listens on 127.0.0.1 (a random port with ``--port 0``),
prints one JSON line ``{"ready": true, "url": "ws://HOST:PORT"}`` on stdout once
listening, loads the models in the background, and serves until SIGINT/SIGTERM.
The token comes from ``--token`` or the ``PARLEY_TOKEN`` environment variable.
With ``--tls-cert`` and ``--tls-key`` it serves ``wss://`` (see the README's
"Running the backend on a server").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
import ssl
import sys
import threading
from dataclasses import replace
from pathlib import Path

from backend import config as config_module
from backend import log_redaction
from backend.config import Config
from backend.engine_hub import EngineHub
from backend.engines.base import EngineError
from backend.engines.factory import build_llm, build_stt, build_tts
from backend.models.manager import ModelManager
from backend.protocol import Notice
from backend.reconfigure import EngineConfigurator, default_builders
from backend.server import ParleyServer
from backend.store import ConversationStore
from backend.store import default_path as store_path
from backend.tls import TLSSetupError, server_context

log = logging.getLogger("parley.backend")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley-backend", description="The Parley backend server.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the websocket API")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    serve.add_argument("--token", default=None, help="access token (default: $PARLEY_TOKEN)")
    serve.add_argument("--config", default=None, help="settings file (default: the platform's config dir)")
    serve.add_argument("--llm-provider", choices=["embedded", "openai"], default=None)
    serve.add_argument(
        "--llm-model", default=None, help="default | fast | a .gguf path | a remote model name"
    )
    serve.add_argument("--llm-temperature", type=float, default=None, help="sampling temperature (0 = greedy)")
    serve.add_argument("--tts", dest="tts_provider", choices=["embedded", "openai", "off"], default=None)
    serve.add_argument("--stt", dest="stt_provider", choices=["embedded", "openai", "off"], default=None)
    serve.add_argument("--stt-model", default=None, help="tiny | base | a CTranslate2 Whisper folder | a remote name")
    serve.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when standard input closes (the app keeps a pipe open while it lives)",
    )
    serve.add_argument("--log-level", default=os.environ.get("PARLEY_LOG_LEVEL", "INFO"))
    # server mode (issue 6)
    serve.add_argument("--tls-cert", default=None, help="PEM certificate (chain): serve wss:// (with --tls-key)")
    serve.add_argument("--tls-key", default=None, help="PEM private key of --tls-cert (unencrypted)")
    return parser


def _apply_overrides(cfg: Config, args: argparse.Namespace) -> Config:
    llm = cfg.llm
    if args.llm_provider:
        llm = replace(llm, provider=args.llm_provider)
    if args.llm_model:
        llm = replace(llm, model=args.llm_model)
    if args.llm_temperature is not None:
        llm = replace(llm, temperature=args.llm_temperature)
    tts = replace(cfg.tts, provider=args.tts_provider) if args.tts_provider else cfg.tts
    stt = replace(cfg.stt, provider=args.stt_provider) if args.stt_provider else cfg.stt
    stt = replace(stt, model=args.stt_model) if args.stt_model else stt
    return replace(cfg, llm=llm, tts=tts, stt=stt)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(args: argparse.Namespace) -> int:
    """Runs the server until a signal arrives; returns the exit code."""
    token = args.token or os.environ.get("PARLEY_TOKEN", "")
    if not token:
        where = "" if _is_loopback(args.host) else f" (listening on {args.host} without one would expose it)"
        print(
            f"parley-backend: a token is required: pass --token or set PARLEY_TOKEN{where}", file=sys.stderr
        )
        return 2
    log_redaction.protect([token])
    tls = _tls_context(args)  # server mode (issue 6)
    if isinstance(tls, int):
        return tls
    if tls is None and not _is_loopback(args.host):
        log.warning(
            "listening on %s without TLS: the token and the conversation cross the network in clear; "
            "use --tls-cert/--tls-key or a TLS reverse proxy (see the README)",
            args.host,
        )
    cfg = _apply_overrides(config_module.load(Path(args.config) if args.config else None), args)
    log_redaction.protect([cfg.llm.api_key, cfg.tts.api_key, cfg.stt.api_key, os.environ.get("OPENAI_API_KEY", "")])
    if cfg.notice:
        log.warning("%s", cfg.notice)
    models = ModelManager(config_module.data_dir())
    try:
        llm = build_llm(cfg.llm, models)
        tts = build_tts(cfg.tts, models)
        stt = build_stt(cfg.stt, models)
    except EngineError as exc:
        print(f"parley-backend: {exc.user_message}", file=sys.stderr)
        return 2
    hub = EngineHub(llm, tts, stt)
    store = await ConversationStore.open(store_path(config_module.data_dir()))  # stored conversations (issue 4)
    configurator = EngineConfigurator(
        hub, cfg, default_builders(models), on_system_prompt=lambda prompt: server.set_system_prompt(prompt)
    )
    server = ParleyServer(
        hub, token, cfg.llm.system_prompt, cfg.llm.context_tokens, store=store, configurator=configurator
    )
    if cfg.notice:
        server.notices.append(Notice(code="config", message=cfg.notice))  # every client hears it (issue 6)
    try:
        url = await server.start(args.host, args.port, tls=tls)
    except OSError as exc:
        print(f"parley-backend: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        await store.aclose()
        return 2
    print(json.dumps({"ready": True, "url": url}), flush=True)
    log.info("listening on %s", url)
    hub.start_loading()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows has no add_signal_handler
            loop.add_signal_handler(sig, stop.set)
    if args.exit_with_parent:
        _stop_when_stdin_closes(loop, stop)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await configurator.aclose()
        await server.aclose()
        await store.aclose()
        await hub.aclose()
    return 0


def _tls_context(args: argparse.Namespace) -> ssl.SSLContext | int | None:
    """The TLS context of ``--tls-cert``/``--tls-key``, None without them, or an exit code after a clear message."""
    if not args.tls_cert and not args.tls_key:
        return None
    if not (args.tls_cert and args.tls_key):
        print("parley-backend: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    try:
        return server_context(Path(args.tls_cert), Path(args.tls_key))
    except TLSSetupError as exc:
        print(f"parley-backend: {exc}", file=sys.stderr)
        return 2


def _stop_when_stdin_closes(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Sets ``stop`` when stdin reaches end of file: the app that started us is gone, even if killed."""

    def watch() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read(4096):
                pass
        log.info("standard input closed: the app is gone")
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    log_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        stream=sys.stderr,
        format=log_format,
    )
    log_redaction.install([], log_format)  # secrets never reach the logs (issue 6)
    try:
        return asyncio.run(serve(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
