"""Command-line flags of ``parley-backend serve`` override the settings file, and only what they name."""

from __future__ import annotations

from backend.cli import _apply_overrides, _parser
from backend.config import Config


def test_flags_override_the_settings_they_name() -> None:
    args = _parser().parse_args(["serve", "--llm-model", "fast", "--llm-temperature", "0", "--stt-model", "base"])
    cfg = _apply_overrides(Config(), args)
    assert (cfg.llm.model, cfg.llm.temperature, cfg.stt.model) == ("fast", 0.0, "base")
    assert cfg.llm.system_prompt == Config().llm.system_prompt
    assert cfg.tts == Config().tts


def test_without_flags_the_settings_stay() -> None:
    cfg = _apply_overrides(Config(), _parser().parse_args(["serve"]))
    assert cfg == Config()
