"""API keys, kept in the OS keyring through ``keyring``; in an owner-only file where no keyring exists.

The fallback is never silent: ``warning`` says where the keys are and why, and the
settings dialog shows it next to the key fields. Keys are never logged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Final

from assistant.settings_model import EngineName

log = logging.getLogger("parley.app.secrets")

SERVICE: Final = "parley"
ENGINES: Final[tuple[EngineName, ...]] = ("llm", "tts", "stt")
FALLBACK_NAME: Final = "api-keys.json"


def _account(name: EngineName) -> str:
    return f"{name}-api-key"


def system_keyring() -> Any | None:
    """The OS keyring backend, or None when there is none that works here."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # a broken keyring configuration
        log.warning("the keyring could not be loaded", exc_info=True)
        return None
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 1) <= 0:
        return None
    return backend


class SecretStore:
    """Gets and sets the API key of each engine ("llm", "tts", "stt")."""

    def __init__(self, fallback_path: Path, backend: Any | None = None, *, use_system_keyring: bool = True) -> None:
        self._file = fallback_path
        self._backend: Any = backend if backend is not None else (system_keyring() if use_system_keyring else None)
        self._broken = ""

    @property
    def uses_keyring(self) -> bool:
        return self._backend is not None and not self._broken

    @property
    def fallback_path(self) -> Path:
        return self._file

    @property
    def warning(self) -> str:
        """Empty when the keys are in the OS keyring; else where they are and why."""
        if self.uses_keyring:
            return ""
        why = f"the system keyring failed ({self._broken})" if self._broken else "no system keyring was found"
        return (
            f"API keys are stored unencrypted in {self._file} (readable by your user account only), "
            f"because {why}. Install and unlock a keyring such as GNOME Keyring or KWallet to keep them encrypted."
        )

    def get(self, name: EngineName) -> str:
        if self.uses_keyring:
            try:
                return str(self._backend.get_password(SERVICE, _account(name)) or "")
            except Exception as exc:
                self._keyring_failed(exc)
        return str(self._read_file().get(name, ""))

    def get_all(self) -> dict[EngineName, str]:
        return {name: key for name in ENGINES if (key := self.get(name))}

    def set(self, name: EngineName, key: str) -> None:
        """Stores ``key`` ("" removes it). Raises ``OSError`` if the fallback file cannot be written."""
        if self.uses_keyring:
            try:
                if key:
                    self._backend.set_password(SERVICE, _account(name), key)
                else:
                    with contextlib.suppress(Exception):  # nothing to delete is fine
                        self._backend.delete_password(SERVICE, _account(name))
                return
            except Exception as exc:
                self._keyring_failed(exc)
        keys = self._read_file()
        if key:
            keys[name] = key
        else:
            keys.pop(name, None)
        self._write_file(keys)

    def _keyring_failed(self, exc: Exception) -> None:
        self._broken = type(exc).__name__
        log.warning("the system keyring failed (%s); API keys go to %s", self._broken, self._file)

    def _read_file(self) -> dict[str, str]:
        try:
            data = json.loads(self._file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("cannot read the API key file %s (%s)", self._file, type(exc).__name__)
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): v for k, v in data.items() if isinstance(v, str)}

    def _write_file(self, keys: dict[str, str]) -> None:
        self._file.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{self._file.name}.", dir=self._file.parent)
        try:
            os.chmod(temp, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(keys, handle)
            os.replace(temp, self._file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
