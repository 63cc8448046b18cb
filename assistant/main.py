"""``parley``: the desktop app (also ``--selftest``, and ``--backend serve ...`` in a bundle).

The window runs on Qt's event loop with asyncio on top of it (qasync). Closing the
window shuts down cleanly: the reply is stopped, the connection closed and the
embedded backend process stopped before the app exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from backend import config as config_module
from backend import log_redaction
from backend.config import Config

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from assistant.backend_client import BackendClient
    from assistant.ui.main_window import MainWindow
    from assistant.ui.settings_dialog import SettingsContext

log = logging.getLogger("parley.app")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="Parley, a desktop voice assistant.")
    parser.add_argument("--selftest", action="store_true", help="check text and sound without a window, then exit")
    parser.add_argument("--llm-model", default=None, help="embedded model: default | fast | smollm2 | a .gguf path")
    parser.add_argument("--tts", choices=["embedded", "openai", "off"], default=None, help="speech engine")
    parser.add_argument(
        "--remote", metavar="URL", default=None, help="use the backend at ws://HOST:PORT (token: $PARLEY_TOKEN)"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["--backend"]:  # the bundled executable doubles as the backend
        from backend.cli import main as backend_main

        return backend_main(args_list[1:])
    args = _parser().parse_args(args_list)
    if args.selftest:
        from assistant import selftest

        return selftest.main(args_list)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = config_module.load()
    log_redaction.install(  # tokens and keys never reach the logs (issue 6)
        [config.backend.token, config.llm.api_key, config.tts.api_key, config.stt.api_key],
        "%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.remote:
        config = replace(config, backend=replace(config.backend, url=args.remote))
    backend_args: list[str] = []
    if args.llm_model:
        backend_args += ["--llm-model", args.llm_model]
        config = replace(config, llm=replace(config.llm, model=args.llm_model))  # the app sends it on (issue 4)
    if args.tts:
        backend_args += ["--tts", args.tts]
        config = replace(config, tts=replace(config.tts, provider=args.tts))
    return run_app(config, backend_args)


def run_app(config: Config, backend_args: Sequence[str]) -> int:
    """Shows the window and runs until it is closed (or SIGINT/SIGTERM); returns the exit code."""
    import qasync
    from PySide6.QtWidgets import QApplication

    from assistant.qt_check import qt_binding_problem

    problem = qt_binding_problem()
    if problem is not None:
        log.error("%s", problem)
        return 2
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("Parley")
    app.setDesktopFileName("parley")
    _follow_theme(app)  # light or dark like the system, and the painted icon (issue 4)
    app.setQuitOnLastWindowClosed(False)  # we quit after the backend is stopped
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        return int(loop.run_until_complete(_run_window(config, backend_args)))
    finally:
        loop.close()
        asyncio.set_event_loop(None)


async def _run_window(config: Config, backend_args: Sequence[str]) -> int:
    """Runs the window until it closes, then shuts the client down (even when cancelled)."""
    from assistant.backend_client import BackendClient
    from assistant.ui.main_window import MainWindow

    settings, config = _settings_context(config)  # API keys from the keyring (issue 4)
    client = BackendClient(config, backend_args=backend_args)
    window = MainWindow(client, notices=[config.notice] if config.notice else [], settings=settings)
    closed = asyncio.Event()
    window.closed.connect(closed.set)
    _on_termination_signals(closed)
    window.show()
    client.start()
    _welcome_on_first_run(window, client)
    try:
        await closed.wait()
    finally:
        window.hide()
        await client.shutdown()
        log.info("Parley closed")
    return 0


def _follow_theme(app: QApplication) -> None:
    from assistant.ui.icons import app_icon
    from assistant.ui.theme import follow_system_scheme

    follow_system_scheme(app)
    app.setWindowIcon(app_icon())


def _settings_context(config: Config) -> tuple[SettingsContext, Config]:
    """Where the settings dialog saves, and ``config`` with the API keys from the keyring."""
    from assistant.secrets_store import FALLBACK_NAME, SecretStore
    from assistant.settings_model import with_api_keys
    from assistant.ui.settings_dialog import SettingsContext

    secrets = SecretStore(config_module.config_dir() / FALLBACK_NAME)
    context = SettingsContext(config_module.config_path(), secrets, config.notice)
    return context, with_api_keys(config, secrets.get_all())


def _welcome_on_first_run(window: MainWindow, client: BackendClient) -> None:
    from assistant.ui.welcome import WelcomeDialog, first_run

    data = config_module.data_dir()
    if not first_run(data):
        return
    welcome = WelcomeDialog(data, window.send, window)
    client.status_changed.connect(welcome.show_status)
    status = client.backend_status
    if status is not None:
        welcome.show_status(status.state, status.detail, -1.0 if status.progress is None else status.progress)
    welcome.open()


def _on_termination_signals(closed: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, closed.set)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(closed.set))


if __name__ == "__main__":
    sys.exit(main())
