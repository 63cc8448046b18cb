"""Finding the sound output device, with clear messages when there is none.

``sounddevice`` is imported lazily: without the PortAudio library its import raises
``OSError``, and the app must still start (in text-only mode).
"""

from __future__ import annotations

from types import ModuleType
from typing import Final

TEXT_ONLY: Final = "Parley will answer in text only."


class AudioUnavailable(Exception):
    """No sound output is possible; ``user_message`` says why and what to do."""

    def __init__(self, user_message: str, detail: str = "") -> None:
        super().__init__(user_message if not detail else f"{user_message} ({detail})")
        self.user_message = user_message
        self.detail = detail


def load_sounddevice() -> ModuleType:
    """Imports sounddevice; raises ``AudioUnavailable`` when PortAudio is missing."""
    try:
        import sounddevice
    except OSError as exc:
        raise AudioUnavailable(
            "Sound output needs the PortAudio library, which was not found "
            f"(on Debian or Ubuntu: sudo apt install libportaudio2). {TEXT_ONLY}",
            str(exc),
        ) from exc
    module: ModuleType = sounddevice
    return module


def parse_device(configured: str) -> int | str | None:
    """``""`` is the system default, digits are a device index, anything else a name."""
    text = configured.strip()
    if not text:
        return None
    return int(text) if text.isdigit() else text


def no_device_message(configured: str) -> str:
    if parse_device(configured) is None:
        return f"No audio output device was found. {TEXT_ONLY}"
    return (
        f"The audio output device {configured!r} from the settings was not found "
        f'(set audio.output_device to "" for the system default). {TEXT_ONLY}'
    )
