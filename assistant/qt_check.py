"""Refuses a Qt binding known to crash Parley, with a clear message instead of a crash later.

PySide6 6.12.0 on Python 3.11 drops a reference to ``None`` on every call that
returns nothing; after a few thousand calls Python aborts ("deallocating None").
Python 3.12 and later are immune (``None`` is immortal there).
"""

from __future__ import annotations

import sys

PROBE_CALLS = 64


def qt_binding_problem() -> str | None:
    """A message for people if the installed PySide6 leaks references to None, else None."""
    if sys.version_info >= (3, 12):
        return None
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(PROBE_CALLS):
        probe.setObjectName("parley-probe")
    lost = before - sys.getrefcount(None)
    if lost < PROBE_CALLS // 2:
        return None
    return (
        f"PySide6 {pyside_version} has a reference-counting bug on Python "
        f"{sys.version_info.major}.{sys.version_info.minor} that makes Parley crash. "
        "Install another version (pip install 'PySide6-Essentials<6.12') or use Python 3.12 or later."
    )
