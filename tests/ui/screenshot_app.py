"""Takes screenshots of the real window (light and dark) and of the settings dialog.

Run by tests/ui/test_screenshots.py under Xvfb (the xcb platform, real fonts and
styles), in its own process so the offscreen setting of the test session does not
apply. Usage: ``python tests/ui/screenshot_app.py OUTPUT_DIR``. The window talks
to the real backend server (with canned engines) over a real websocket.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from PySide6.QtWidgets import QApplication  # noqa: E402

QUESTION = "How do tides work?"
FOLLOW_UP = (
    "Where the shape of a sea basin makes one of the two daily bulges resonate much more than the "
    "other, you get a **diurnal** tide: one high and one low water a day, as in parts of the Gulf of Mexico."
)
REPLY = (
    "Tides come from the **moon's pull** on the oceans. Where the moon is overhead, the water bulges "
    "towards it; on the far side of the Earth a second bulge forms.\n\n"
    "1. Two high tides a day, about 12 hours 25 minutes apart.\n"
    "2. Spring tides when the sun and moon line up.\n\n"
    "Would you like to know why some places have only one tide a day?"
)


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def main(out: Path) -> int:
    import qasync

    from assistant.backend_client import BackendClient
    from assistant.secrets_store import SecretStore
    from assistant.ui.main_window import MainWindow
    from assistant.ui.settings_dialog import SettingsContext
    from assistant.ui.theme import dark_palette
    from backend.config import AudioConfig, BackendConfig, Config
    from tests.fakes.stored_backend import TOKEN, CannedLLM, StoredBackendThread, seed

    out.mkdir(parents=True, exist_ok=True)
    app = QApplication([sys.argv[0]])
    app.setStyle("Fusion")
    app.setPalette(app.style().standardPalette())
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as temp:
        data = Path(temp)
        seed(
            data / "conversations.sqlite3",
            [
                ("Packing list for a weekend in Lisbon", [("What should I pack for Lisbon in May?", "Light layers.")]),
                ("Sourdough starter", [("My starter smells like acetone. Is it dead?", "It is hungry.")]),
                ("Explain WAL mode", [("What is SQLite's WAL mode?", "A write-ahead log.")]),
                (
                    "How do tides work?",
                    [
                        (QUESTION, REPLY),
                        ("Why do some places have only one?", FOLLOW_UP),
                    ],
                ),
            ],
        )
        llm = CannedLLM({"tide": REPLY}, "Here is a short answer.", delay_s=0.002)
        with StoredBackendThread(data, llm) as backend:
            config = Config(
                backend=BackendConfig(url=backend.url, token=TOKEN), audio=AudioConfig(speak_replies=False)
            )
            client = BackendClient(config)
            settings = SettingsContext(data / "config.toml", SecretStore(data / "keys.json", use_system_keyring=False))
            window = MainWindow(client, settings=settings)
            window.resize(1100, 720)
            window.show()
            shots: dict[str, Any] = {}

            async def scenario() -> None:
                client.start()
                try:
                    await wait_until(lambda: window.status.state == "ready", 20, "the backend")
                    await wait_until(lambda: window.sidebar.list.count() == 4, 10, "the conversation list")
                    tides = window.sidebar.list.item(0)
                    window.sidebar.list.itemClicked.emit(tides)
                    await wait_until(lambda: "only one" in window.chat.toPlainText(), 10, "the conversation")
                    window.input.setPlainText("And what about the Mediterranean?")
                    await asyncio.sleep(0.2)
                    shots["main-light.png"] = window.grab()
                    app.setPalette(dark_palette())
                    await asyncio.sleep(0.2)
                    shots["main-dark.png"] = window.grab()
                    app.setPalette(app.style().standardPalette())
                    dialog = window.open_settings()
                    assert dialog is not None
                    dialog.resize(660, 640)
                    await wait_until(dialog.isVisible, 5, "the settings dialog")
                    await asyncio.sleep(0.2)
                    shots["settings.png"] = dialog.grab()
                    dialog.reject()
                finally:
                    await client.shutdown()

            loop.run_until_complete(asyncio.wait_for(scenario(), 60))
            for name, image in shots.items():
                if not image.save(str(out / name)):
                    raise OSError(f"could not save {out / name}")
    print("saved", ", ".join(sorted(shots)))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
