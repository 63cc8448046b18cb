"""Builds the engines a configuration asks for (cheap: nothing loads until ``load``)."""

from __future__ import annotations

from typing import Final

from backend.config import LLMConfig, STTConfig, TTSConfig
from backend.engines.base import EngineError, LLMEngine, TTSEngine
from backend.engines.llm.llama_local import LlamaLocalLLM
from backend.engines.llm.openai_chat import OpenAIChatLLM
from backend.engines.stt.base import STTEngine
from backend.engines.stt.openai_transcribe import OpenAITranscribeSTT
from backend.engines.stt.whisper_local import WhisperLocalSTT
from backend.engines.tts.openai_speech import OpenAISpeechTTS
from backend.engines.tts.piper_local import PiperTTS
from backend.models.manager import ModelManager
from backend.models.whisper_models import WhisperModels

LLM_PROVIDERS: Final = ("embedded", "openai")
TTS_PROVIDERS: Final = ("embedded", "openai", "off")
STT_PROVIDERS: Final = ("embedded", "openai", "off")


def build_llm(config: LLMConfig, models: ModelManager) -> LLMEngine:
    """The language model for ``config.provider``; the embedded model is a catalog key or a path.

    Raises ``EngineError`` naming the allowed providers when the provider is unknown.
    """
    provider = config.provider.strip().lower()
    if provider == "embedded":
        return LlamaLocalLLM(config, models)
    if provider == "openai":
        return OpenAIChatLLM(config)
    raise EngineError(f"Unknown llm.provider {config.provider!r}: use one of {', '.join(LLM_PROVIDERS)}.")


def build_tts(config: TTSConfig, models: ModelManager) -> TTSEngine | None:
    """The voice for ``config.provider``, or None when speech is ``off``.

    Raises ``EngineError`` naming the allowed providers when the provider is unknown.
    """
    provider = config.provider.strip().lower()
    if provider == "off":
        return None
    if provider == "embedded":
        return PiperTTS(config, models)
    if provider == "openai":
        return OpenAISpeechTTS(config)
    raise EngineError(f"Unknown tts.provider {config.provider!r}: use one of {', '.join(TTS_PROVIDERS)}.")


def build_stt(config: STTConfig, models: ModelManager) -> STTEngine | None:
    """Speech recognition for ``config.provider`` (None when ``off``): faster-whisper or an OpenAI endpoint.

    Raises ``EngineError`` naming the allowed providers when the provider is unknown.
    """
    provider = config.provider.strip().lower()
    if provider == "off":
        return None
    if provider == "embedded":
        return WhisperLocalSTT(config, WhisperModels(models.data_dir))
    if provider == "openai":
        return OpenAITranscribeSTT(config)
    raise EngineError(f"Unknown stt.provider {config.provider!r}: use one of {', '.join(STT_PROVIDERS)}.")


def stt_gives_partials(engine: STTEngine) -> bool:
    """Whether partial transcripts are worth asking for: local engines only (a remote call costs money)."""
    return isinstance(engine, WhisperLocalSTT)
