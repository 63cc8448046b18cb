"""Renders parley.svg into the PNG sizes desktops and installers use (48 to 512 px).

    .venv/bin/python resources/icons/render_icons.py

Writes ``parley-<size>.png`` beside the SVG with Qt's SVG renderer (offscreen, no
display needed). The PNGs are committed; run this again after editing the SVG.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SIZES = (48, 64, 128, 256, 512)
HERE = Path(__file__).resolve().parent


def render(svg: Path, sizes: tuple[int, ...] = SIZES) -> list[Path]:
    """Renders ``svg`` to ``parley-<size>.png`` files beside it; returns their paths."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not a valid SVG")
    written: list[Path] = []
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        target = svg.with_name(f"parley-{size}.png")
        if not image.save(str(target)):
            raise SystemExit(f"could not write {target}")
        written.append(target)
    return written


if __name__ == "__main__":
    for path in render(HERE / "parley.svg"):
        print(path)
