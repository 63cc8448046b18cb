"""How the settings dialog sees the configuration (Qt-free).

Each engine is offered as a *provider choice*: the embedded model, OpenAI, an
OpenAI-compatible server at a custom URL, or (speech only) off. In the config
file that is ``provider`` plus ``base_url``: "custom" is ``openai`` with a URL.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final, Literal, TypeAlias

from backend.config import Config, LLMConfig, STTConfig, TTSConfig
from backend.protocol import Configure, EngineSettings

Choice: TypeAlias = Literal["embedded", "openai", "custom", "off"]
EngineName: TypeAlias = Literal["llm", "tts", "stt"]

CHOICES: Final[dict[EngineName, tuple[Choice, ...]]] = {
    "llm": ("embedded", "openai", "custom"),
    "tts": ("embedded", "openai", "custom", "off"),
    "stt": ("embedded", "openai", "custom", "off"),
}
CHOICE_LABELS: Final[dict[Choice, str]] = {
    "embedded": "Embedded (on this computer)",
    "openai": "OpenAI",
    "custom": "OpenAI-compatible server (custom URL)",
    "off": "Off (text only)",
}
EMBEDDED_MODELS: Final[dict[EngineName, tuple[str, ...]]] = {
    "llm": ("default", "fast"),
    "tts": ("joe",),
    "stt": ("tiny", "base"),
}
OPENAI_MODELS: Final[dict[EngineName, str]] = {"llm": "gpt-4o-mini", "tts": "tts-1", "stt": "whisper-1"}
OPENAI_VOICES: Final = ("alloy", "echo", "fable", "onyx", "nova", "shimmer")
OPENAI_URL: Final = "https://api.openai.com/v1"

Section: TypeAlias = LLMConfig | TTSConfig | STTConfig


def choice_of(section: Section) -> Choice:
    provider = section.provider.strip().lower()
    if provider == "off":
        return "off"
    if provider == "openai":
        return "custom" if section.base_url.strip() else "openai"
    return "embedded"


def provider_of(choice: Choice) -> str:
    return "openai" if choice in ("openai", "custom") else choice


def engine_settings(config: Config, name: EngineName) -> EngineSettings:
    """One engine's settings as the backend takes them (keys included: they travel to our own backend)."""
    if name == "llm":
        llm = config.llm
        return EngineSettings(provider=llm.provider, model=llm.model, base_url=llm.base_url, api_key=llm.api_key)
    if name == "tts":
        tts = config.tts
        return EngineSettings(
            provider=tts.provider,
            model=tts.model,
            base_url=tts.base_url,
            api_key=tts.api_key,
            voice=tts.voice,
            speed=tts.speed,
        )
    stt = config.stt
    return EngineSettings(provider=stt.provider, model=stt.model, base_url=stt.base_url, api_key=stt.api_key)


def configure_message(config: Config) -> Configure:
    return Configure(
        llm=engine_settings(config, "llm"),
        tts=engine_settings(config, "tts"),
        stt=engine_settings(config, "stt"),
        system_prompt=config.llm.system_prompt,
    )


def has_api_keys(config: Config) -> bool:
    return any(section.api_key for section in (config.llm, config.tts, config.stt))


def without_api_keys(config: Config) -> Config:
    """The config as written to the file when the keys live in the keyring."""
    return replace(
        config,
        llm=replace(config.llm, api_key=""),
        tts=replace(config.tts, api_key=""),
        stt=replace(config.stt, api_key=""),
    )


def with_api_keys(config: Config, keys: dict[EngineName, str]) -> Config:
    """``config`` with the given keys filled in where the file has none."""
    return replace(
        config,
        llm=replace(config.llm, api_key=config.llm.api_key or keys.get("llm", "")),
        tts=replace(config.tts, api_key=config.tts.api_key or keys.get("tts", "")),
        stt=replace(config.stt, api_key=config.stt.api_key or keys.get("stt", "")),
    )
