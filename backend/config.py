"""Parley's configuration: a TOML file in the platform's config directory.

Every value has a default that works offline. A missing file means defaults; a
file that cannot be read or parsed also means defaults, with a ``notice`` the app
shows, and the file is left untouched. ``PARLEY_CONFIG`` points at another file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
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
    notice: str = ""  # set when the file could not be used as written


_SECTIONS: Final[dict[str, type[Any]]] = {
    "llm": LLMConfig,
    "tts": TTSConfig,
    "audio": AudioConfig,
    "backend": BackendConfig,
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
