"""Live settings: turns the app's ``Configure`` into engine swaps, rebuilding only what changed.

A setting that does not change what an engine does (an API key for an embedded
model, say) does not reload it; the system prompt never reloads anything and
takes effect at the next question. Swaps run one at a time in a task owned here,
so the connection keeps answering (Cancel, questions) while models load.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from typing import Any, Final

from backend.config import Config, LLMConfig, STTConfig, TTSConfig
from backend.engine_hub import EngineHub
from backend.engines import factory
from backend.engines.base import EngineError
from backend.models.manager import ModelManager
from backend.protocol import Configure, EngineSettings

log = logging.getLogger("parley.reconfigure")

Builder = Callable[[Any], Any]
"""Builds one engine from its config section (cheap; nothing loads until ``load``)."""

PROVIDERS: Final[dict[str, tuple[str, ...]]] = {
    "llm": ("embedded", "openai"),
    "tts": ("embedded", "openai", "off"),
    "stt": ("embedded", "openai", "off"),
}
SWAP_CANCEL_TIMEOUT_S: Final = 15.0
_REMOTE_ONLY: Final = ("base_url", "api_key", "timeout_s")


def default_builders(models: ModelManager) -> dict[str, Builder]:
    """The product's engine factories, by engine name (STT only when the factory has it)."""
    builders: dict[str, Builder] = {
        "llm": lambda section: factory.build_llm(section, models),
        "tts": lambda section: factory.build_tts(section, models),
    }
    build_stt = getattr(factory, "build_stt", None)
    if build_stt is not None:
        builders["stt"] = lambda section: build_stt(section, models)
    return builders


def merged(config: Config, message: Configure) -> Config:
    """``config`` with the engine settings of ``message`` (other fields keep their values)."""
    llm = _apply(config.llm, message.llm, ("provider", "model", "base_url", "api_key"))
    if message.system_prompt.strip():
        llm = replace(llm, system_prompt=message.system_prompt)
    tts = _apply(config.tts, message.tts, ("provider", "model", "base_url", "api_key", "voice", "speed"))
    stt = _apply(config.stt, message.stt, ("provider", "model", "base_url", "api_key"))
    return replace(config, llm=llm, tts=tts, stt=stt)


def _apply(section: Any, settings: EngineSettings, names: tuple[str, ...]) -> Any:
    values = {name: getattr(settings, name) for name in names}
    if "voice" in values and not values["voice"]:
        del values["voice"]  # no voice given: keep the configured one
    if "model" in values and not values["model"]:
        del values["model"]
    return replace(section, **values)


def problems(message: Configure) -> list[str]:
    """What cannot work in ``message`` (unknown providers, a remote engine without a model name)."""
    found: list[str] = []
    for name, settings in (("llm", message.llm), ("tts", message.tts), ("stt", message.stt)):
        provider = settings.provider.strip().lower()
        if provider not in PROVIDERS[name]:
            found.append(f"{name}: unknown provider {settings.provider!r} (use {', '.join(PROVIDERS[name])})")
        if name == "tts" and not 0.25 <= settings.speed <= 4.0:
            found.append(f"tts: the speech rate {settings.speed} is outside 0.25..4")
    return found


def engine_key(section: LLMConfig | TTSConfig | STTConfig) -> tuple[Any, ...]:
    """The settings that decide what an engine does; equal keys mean no reload."""
    values = {f.name: getattr(section, f.name) for f in fields(section)}
    values.pop("system_prompt", None)
    if str(values.get("provider", "")).strip().lower() != "openai":
        for name in _REMOTE_ONLY:
            values.pop(name, None)
    return tuple(sorted(values.items()))


class EngineConfigurator:
    """Owns the backend's current config and applies ``Configure`` messages to the hub."""

    def __init__(
        self,
        hub: EngineHub,
        config: Config,
        builders: Mapping[str, Builder],
        on_system_prompt: Callable[[str], None] | None = None,
    ) -> None:
        self._hub = hub
        self._config = config
        self._builders = dict(builders)
        self._on_system_prompt = on_system_prompt
        self._task: asyncio.Task[None] | None = None

    @property
    def config(self) -> Config:
        return self._config

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def configure(self, message: Configure) -> str:
        """Applies ``message``; returns "" or why it was refused (nothing changes then).

        Engines that changed are rebuilt here and loaded in the background (a newer
        request waits for the previous swap to finish first).
        """
        found = problems(message)
        if found:
            return "These settings cannot be used: " + "; ".join(found) + "."
        new = merged(self._config, message)
        rebuild_all = self._hub.status.state == "error"
        replacements: dict[str, Any] = {}
        try:
            for name, builder in self._builders.items():
                old_section, new_section = getattr(self._config, name), getattr(new, name)
                if rebuild_all or engine_key(old_section) != engine_key(new_section):
                    replacements[name] = builder(new_section)
        except EngineError as exc:
            return exc.user_message
        if new.llm.system_prompt != self._config.llm.system_prompt and self._on_system_prompt is not None:
            self._on_system_prompt(new.llm.system_prompt)
        self._config = new
        if replacements:
            log.info("settings changed: reloading %s", ", ".join(sorted(replacements)))
            previous = self._task
            self._task = asyncio.create_task(self._swap(previous, replacements), name="engine-swap")
        return ""

    async def _swap(self, previous: asyncio.Task[None] | None, replacements: dict[str, Any]) -> None:
        """Waits for the previous swap, then swaps; on cancel, the hub reports an error state."""
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        await self._hub.swap(replacements)

    async def wait_idle(self, timeout_s: float) -> None:
        """Waits until no swap is running (tests)."""
        task = self._task
        if task is not None and not task.done():
            await asyncio.wait([task], timeout=timeout_s)

    async def aclose(self) -> None:
        """Cancels a running swap and awaits it (bounded)."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=SWAP_CANCEL_TIMEOUT_S)
