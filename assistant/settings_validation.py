"""Checks for the settings dialog (Qt-free): each problem is a message for one field.

``local_problems`` is instant (files, numbers, URL syntax). ``remote_problems``
talks to servers (is the URL reachable, is the key accepted) with short timeouts
and blocks while it does: the dialog runs it off the GUI thread. Field names are
``section.key`` as in the config file, e.g. ``llm.api_key``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from backend.config import Config, LLMConfig, STTConfig, TTSConfig
from backend.models.catalog import LLM_MODELS

GGUF_MAGIC: Final = b"GGUF"
NETWORK_TIMEOUT_S: Final = 4.0
EMBEDDED_VOICES: Final = ("joe",)
EMBEDDED_STT_MODELS: Final = ("tiny", "base", "tiny.en", "base.en")
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})

Problems = dict[str, str]


# ---- local checks ------------------------------------------------------------------


def check_gguf(text: str) -> str:
    """"" when ``text`` names a readable GGUF model file, else what is wrong."""
    path = Path(text).expanduser()
    if not path.exists():
        return f"There is no file at {path}."
    if not path.is_file():
        return f"{path} is a folder, not a model file."
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        return f"Cannot read {path} ({exc.strerror or exc})."
    if magic != GGUF_MAGIC:
        return f"{path.name} is not a GGUF model file (it does not start with 'GGUF')."
    return ""


def check_embedded_llm(model: str) -> str:
    name = model.strip()
    if not name:
        return "Choose a model, or the path of a .gguf file."
    if name in LLM_MODELS:
        return ""
    if "/" not in name and "\\" not in name and not name.endswith(".gguf"):
        return f"Unknown model {name!r}: use {', '.join(LLM_MODELS)} or the path of a .gguf file."
    return check_gguf(name)


def check_embedded_voice(voice: str) -> str:
    name = voice.strip()
    if not name or name in EMBEDDED_VOICES:
        return ""
    path = Path(name).expanduser()
    if path.suffix != ".onnx":
        return f"Unknown voice {name!r}: use {', '.join(EMBEDDED_VOICES)} or the path of a piper .onnx voice."
    if not path.is_file():
        return f"There is no voice file at {path}."
    if not Path(f"{path}.json").is_file():
        return f"The voice needs its settings file next to it: {path.name}.json is missing."
    return ""


def check_embedded_stt(model: str) -> str:
    name = model.strip()
    if not name or name in EMBEDDED_STT_MODELS:
        return ""
    path = Path(name).expanduser()
    if not path.is_dir():
        return f"Unknown speech model {name!r}: use tiny, base or the folder of a CTranslate2 Whisper model."
    if not (path / "model.bin").is_file():
        return f"{path} has no model.bin: it is not a CTranslate2 Whisper model folder."
    return ""


def check_url_syntax(url: str) -> str:
    text = url.strip()
    if not text:
        return "Enter the server's URL, e.g. http://127.0.0.1:8080/v1."
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "The URL must start with http:// or https:// and name a host."
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "The URL has an invalid port."
    return ""


def _remote_problems(name: str, section: LLMConfig | TTSConfig | STTConfig, problems: Problems) -> None:
    if section.provider != "openai":
        return
    if section.base_url.strip():
        url_problem = check_url_syntax(section.base_url)
        if url_problem:
            problems[f"{name}.base_url"] = url_problem
    elif not section.api_key.strip():
        problems[f"{name}.api_key"] = "OpenAI needs an API key."
    if not section.model.strip():
        problems[f"{name}.model"] = "Enter the model name the server uses."


def local_problems(config: Config) -> Problems:
    """Problems found without the network, by field."""
    problems: Problems = {}
    if config.llm.provider == "embedded" and (message := check_embedded_llm(config.llm.model)):
        problems["llm.model"] = message
    if config.tts.provider == "embedded" and (message := check_embedded_voice(config.tts.voice)):
        problems["tts.voice"] = message
    if config.stt.provider == "embedded" and (message := check_embedded_stt(config.stt.model)):
        problems["stt.model"] = message
    for name, section in (("llm", config.llm), ("tts", config.tts), ("stt", config.stt)):
        _remote_problems(name, section, problems)
    if not 0.25 <= config.tts.speed <= 4.0:
        problems["tts.speed"] = "The speech rate must be between 0.25 and 4."
    if not 0.0 < config.audio.vad_threshold < 1.0:
        problems["audio.vad_threshold"] = "The sensitivity must be between 0 and 1."
    if not 100 <= config.audio.end_silence_ms <= 5000:
        problems["audio.end_silence_ms"] = "The end-of-speech silence must be between 100 and 5000 ms."
    if not config.llm.system_prompt.strip():
        problems["llm.system_prompt"] = "The system prompt cannot be empty."
    return problems


# ---- network checks (blocking: run them off the GUI thread) -------------------------


def _open(url: str, key: str, timeout_s: float) -> tuple[int, bytes]:
    """GETs ``url`` (with a bearer key if given); returns the status and body, or raises OSError."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "parley-settings"})
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    handlers: list[urllib.request.BaseHandler] = []
    if urlsplit(url).hostname in _LOOPBACK:
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return int(response.status), response.read(256 * 1024)
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""


def check_server(base_url: str, key: str, timeout_s: float = NETWORK_TIMEOUT_S) -> tuple[str, str]:
    """Asks ``base_url``/models; returns (URL problem, key problem), each "" when fine."""
    url = base_url.rstrip("/") + "/models"
    try:
        status, body = _open(url, key, timeout_s)
    except TimeoutError:
        return f"No answer from {base_url} within {timeout_s:.0f} s.", ""
    except urllib.error.URLError as exc:
        reason = exc.reason.strerror if isinstance(exc.reason, OSError) and exc.reason.strerror else exc.reason
        return f"Cannot reach {base_url} ({reason}).", ""
    except OSError as exc:
        return f"Cannot reach {base_url} ({exc.strerror or exc}).", ""
    if status in (401, 403):
        return "", "The server refused this API key." if key else "The server needs an API key."
    if status >= 500:
        return f"The server at {base_url} answered with an error ({status}).", ""
    if status == 200 and body:
        try:
            json.loads(body)
        except ValueError:
            return f"{base_url} answered, but not like an OpenAI-compatible API (is /v1 missing?).", ""
    return "", ""


def remote_problems(config: Config, timeout_s: float = NETWORK_TIMEOUT_S) -> Problems:
    """Reachability and key problems of every OpenAI-compatible engine, by field (blocking)."""
    problems: Problems = {}
    checked: dict[tuple[str, str], tuple[str, str]] = {}
    for name, section in (("llm", config.llm), ("tts", config.tts), ("stt", config.stt)):
        if section.provider != "openai":
            continue
        base_url = section.base_url.strip() or "https://api.openai.com/v1"
        if check_url_syntax(base_url):
            continue  # already reported by local_problems
        target = (base_url, section.api_key)
        if target not in checked:
            checked[target] = check_server(base_url, section.api_key, timeout_s)
        url_problem, key_problem = checked[target]
        if url_problem:
            problems[f"{name}.base_url" if section.base_url.strip() else f"{name}.provider"] = url_problem
        if key_problem:
            problems[f"{name}.api_key"] = key_problem
    return problems
