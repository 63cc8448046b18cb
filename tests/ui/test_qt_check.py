"""The installed Qt binding must not be one that crashes Parley."""

from __future__ import annotations

from assistant.qt_check import qt_binding_problem


def test_installed_pyside_does_not_leak_references_to_none() -> None:
    assert qt_binding_problem() is None
