"""Screenshots of the main window (light and dark) and the settings dialog, taken under Xvfb.

The pictures go to build/screenshots/ (not committed). Each must show something:
not blank, and with text-coloured pixels against its background (dark text on a
light window, light text on a dark one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
SCRIPT = Path(__file__).with_name("screenshot_app.py")


@pytest.fixture(scope="module")
def xvfb_display() -> Iterator[str]:
    """A private Xvfb display (``:N``); skipped without Xvfb (failed on CI, which must have it)."""
    if shutil.which("Xvfb") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must take the screenshots: install xvfb")
        pytest.skip("Xvfb is not installed (apt install xvfb)")
    for number in range(91, 120):
        if Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
            continue
        process = subprocess.Popen(
            ["Xvfb", f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            if Path(f"/tmp/.X11-unix/X{number}").exists():
                break
            time.sleep(0.05)
        if process.poll() is None:
            try:
                yield f":{number}"
            finally:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
            return
    pytest.fail("no free X display number for Xvfb")


@pytest.fixture(scope="module")
def screenshots(xvfb_display: str) -> Path:
    env = dict(os.environ, DISPLAY=xvfb_display, QT_QPA_PLATFORM="xcb")
    env.pop("WAYLAND_DISPLAY", None)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(SHOTS)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return SHOTS


def lightness_counts(path: Path) -> tuple[int, int, int, int]:
    """(pixels, distinct colours, dark pixels, light pixels) of a PNG."""
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB32)
    assert not image.isNull(), path
    colours: set[int] = set()
    dark = light = 0
    step = 2  # every other pixel in each direction is plenty
    for y in range(0, image.height(), step):
        for x in range(0, image.width(), step):
            rgb = image.pixel(x, y)
            colours.add(rgb)
            r, g, b = (rgb >> 16) & 0xFF, (rgb >> 8) & 0xFF, rgb & 0xFF
            luma = 0.299 * r + 0.587 * g + 0.114 * b
            dark += luma < 90
            light += luma > 170
    return (image.width() // step) * (image.height() // step), len(colours), dark, light


@pytest.mark.parametrize(
    ("name", "theme"),
    [("main-light.png", "light"), ("main-dark.png", "dark"), ("settings.png", "light")],
)
def test_screenshot_shows_the_window_with_text(screenshots: Path, name: str, theme: str) -> None:
    path = screenshots / name
    assert path.stat().st_size > 10_000
    pixels, colours, dark, light = lightness_counts(path)
    assert colours > 50, f"{name} looks blank ({colours} colours)"
    background, text = (light, dark) if theme == "light" else (dark, light)
    assert background > pixels * 0.5, f"{name} should be mostly {theme}"
    assert text > pixels * 0.003, f"{name} shows too little text ({text} of {pixels} pixels)"
