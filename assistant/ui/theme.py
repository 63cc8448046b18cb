"""Following the system's light or dark appearance.

Qt 6 takes the palette from the platform theme where there is one (GNOME, KDE,
Windows, macOS). Where the platform only reports the colour scheme, a dark
Fusion palette is applied here, and the app switches when the scheme changes.
Widgets take their colours from the palette (see ``ChatView._bubble_colour``).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication


def dark_palette() -> QPalette:
    """A dark palette for the Fusion style."""
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#202124",
        QPalette.ColorRole.WindowText: "#e8eaed",
        QPalette.ColorRole.Base: "#18191b",
        QPalette.ColorRole.AlternateBase: "#26282b",
        QPalette.ColorRole.ToolTipBase: "#303134",
        QPalette.ColorRole.ToolTipText: "#e8eaed",
        QPalette.ColorRole.PlaceholderText: "#9aa0a6",
        QPalette.ColorRole.Text: "#e8eaed",
        QPalette.ColorRole.Button: "#2d2f31",
        QPalette.ColorRole.ButtonText: "#e8eaed",
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Light: "#3c4043",
        QPalette.ColorRole.Midlight: "#34373a",
        QPalette.ColorRole.Mid: "#5f6368",
        QPalette.ColorRole.Dark: "#101113",
        QPalette.ColorRole.Shadow: "#000000",
        QPalette.ColorRole.Highlight: "#4c8df6",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#8ab4f8",
        QPalette.ColorRole.LinkVisited: "#c58af9",
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#80868b"))
    return palette


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def apply_scheme(app: QApplication, scheme: Qt.ColorScheme) -> None:
    """Makes the palette match ``scheme`` when the platform theme did not."""
    if scheme == Qt.ColorScheme.Dark and not is_dark(app.palette()):
        app.setStyle("Fusion")
        app.setPalette(dark_palette())
    elif scheme == Qt.ColorScheme.Light and is_dark(app.palette()):
        app.setPalette(app.style().standardPalette())


def follow_system_scheme(app: QApplication) -> None:
    """Applies the system's scheme now and whenever it changes."""
    hints = QGuiApplication.styleHints()
    apply_scheme(app, hints.colorScheme())
    hints.colorSchemeChanged.connect(lambda scheme: apply_scheme(app, scheme))
