"""Parley's configuration: a TOML file in the platform's config directory.

Every value has a default that works offline. A missing file means defaults; a
file that cannot be read or parsed also means defaults, with a ``notice`` the app
shows, and the file is left untouched. ``PARLEY_CONFIG`` points at another file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

import platformdirs

APP_NAME: Final = "parley"

DEFAULT_SYSTEM_PROMPT: Final = (
    "You are Parley, a friendly voice assistant. Your replies are read aloud, so answer in "
    "plain spoken English: short sentences, no markdown, no lists, no code unless asked. "
    "Keep answers brief, two to four sentences, unless the person asks for more."
)


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    """Where assembled models and other large files live (``PARLEY_DATA_DIR`` overrides)."""
    override = os.environ.get("PARLEY_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME))


def config_path() -> Path:
    override = os.environ.get("PARLEY_CONFIG")
    return Path(override) if override else config_dir() / "config.toml"


@dataclass(frozen=True)
class LLMConfig:
    provider: str = "embedded"  # embedded | openai
    model: str = "default"  # embedded: default | fast | smollm2 | path to .gguf; openai: model name
    base_url: str = ""  # openai: "" means OPENAI_BASE_URL or OpenAI itself
    api_key: str = ""  # openai: "" means OPENAI_API_KEY
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_tokens: int = 400
    temperature: float = 0.6
    context_tokens: int = 4096
    threads: int = 0  # 0: chosen from the core count
    timeout_s: float = 60.0


@dataclass(frozen=True)
class TTSConfig:
    provider: str = "embedded"  # embedded | openai | off
    voice: str = "joe"  # embedded: joe or path to a piper .onnx; openai: voice name
    model: str = "tts-1"  # openai only
    base_url: str = ""
    api_key: str = ""
    speed: float = 1.0
    threads: int = 1
    timeout_s: float = 30.0


@dataclass(frozen=True)
class AudioConfig:
    output_device: str = ""  # "" is the system default; else a device name or index
    speak_replies: bool = True
    # voice input (issue 3)
    input_device: str = ""  # "" is the system default microphone; else a device name or index
    vad_threshold: float = 0.5  # voice detection sensitivity 0..1: lower hears quieter speech (and more noise)
    end_silence_ms: int = 600  # silence that ends an utterance in hands-free mode
    echo_cancellation: bool = True  # off for headphones
    push_to_talk_shortcut: str = "Ctrl+Space"


@dataclass(frozen=True)
class STTConfig:
    """Speech recognition (issue 3)."""

    provider: str = "embedded"  # embedded | openai
    model: str = "tiny"  # embedded: tiny | base | path to a CTranslate2 Whisper folder; openai: model name
    base_url: str = ""  # openai: "" means OPENAI_BASE_URL or OpenAI itself
    api_key: str = ""  # openai: "" means OPENAI_API_KEY
    language: str = ""  # "" detects (tiny is English-only)
    threads: int = 0  # 0: chosen from the core count
    timeout_s: float = 30.0


@dataclass(frozen=True)
class BackendConfig:
    url: str = ""  # "" runs the embedded backend; else ws://host:port of a remote one
    token: str = ""


@dataclass(frozen=True)
class Config:
    llm: LLMConfig = field(default_factory=LLMConfig)
    tts: TTSConfig = field(default_factory=TTSConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    stt: STTConfig = field(default_factory=STTConfig)
    notice: str = ""  # set when the file could not be used as written


_SECTIONS: Final[dict[str, type[Any]]] = {
    "llm": LLMConfig,
    "tts": TTSConfig,
    "audio": AudioConfig,
    "backend": BackendConfig,
    "stt": STTConfig,
}


def _section(cls: type[Any], raw: Any, name: str, problems: list[str]) -> Any:
    if not isinstance(raw, dict):
        problems.append(f"[{name}] is not a table")
        return cls()
    values: dict[str, Any] = {}
    known = {f.name: f for f in fields(cls)}
    for key, value in raw.items():
        f = known.get(key)
        if f is None:
            problems.append(f"unknown setting {name}.{key}")
            continue
        expected = type(getattr(cls(), key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            problems.append(f"{name}.{key} should be {expected.__name__}")
            continue
        values[key] = value
    return cls(**values)


def parse(text: str) -> Config:
    """Builds a config from TOML text; problems are reported in ``notice``."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return Config(notice=f"The settings file is not valid TOML ({exc}); using defaults.")
    problems: list[str] = []
    sections: dict[str, Any] = {}
    for name, value in raw.items():
        cls = _SECTIONS.get(name)
        if cls is None:
            problems.append(f"unknown section [{name}]")
            continue
        sections[name] = _section(cls, value, name, problems)
    notice = ""
    if problems:
        notice = "Some settings were ignored: " + "; ".join(problems) + "."
    return Config(**sections, notice=notice)


def load(path: Path | None = None) -> Config:
    """Reads the config file; never raises and never writes."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError) as exc:
        return Config(notice=f"Could not read settings from {path} ({exc}); using defaults.")
    config = parse(text)
    if config.notice:
        config = replace(config, notice=f"{path}: {config.notice}")
    return config


def resolved_api_key(configured: str) -> str:
    return configured or os.environ.get("OPENAI_API_KEY", "")


def resolved_base_url(configured: str) -> str | None:
    return configured or os.environ.get("OPENAI_BASE_URL") or None


# ---- writing the settings file (issue 4: the settings dialog) -------------------------


class ConfigWriteRefused(Exception):
    """The settings file was not written; ``str(exc)`` says why."""


def to_toml(config: Config) -> str:
    """The whole config as TOML (every setting, so the file documents itself)."""
    import tomli_w

    data = {name: asdict(getattr(config, name)) for name in _SECTIONS}
    return tomli_w.dumps(data)


def save(config: Config, path: Path | None = None, *, replace_damaged: bool = False) -> Path | None:
    """Writes ``config`` atomically (a temporary file renamed over the old one), readable by its owner only.

    A file that cannot be used as written (it loads with a notice) is never replaced
    unless ``replace_damaged``; then it is first copied aside and the copy's path
    returned. Raises ``ConfigWriteRefused`` with a clear message.
    """
    path = path or config_path()
    backup: Path | None = None
    if path.exists() and load(path).notice:
        if not replace_damaged:
            raise ConfigWriteRefused(
                f"The settings file {path} has problems, so it was not overwritten. "
                "Fix it by hand, or choose to replace it (a copy of it is kept)."
            )
        backup = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            shutil.copy2(path, backup)
        except OSError as exc:
            raise ConfigWriteRefused(f"Could not keep a copy of {path} ({exc}); nothing was changed.") from exc
    text = to_toml(config)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o600)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as exc:
        raise ConfigWriteRefused(f"Could not write the settings to {path} ({exc.strerror or exc}).") from exc
    return backup
