"""Writing the settings file, checking settings, and keeping API keys (all without Qt)."""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from assistant.secrets_store import SecretStore
from assistant.settings_model import choice_of, configure_message, with_api_keys, without_api_keys
from assistant.settings_validation import check_gguf, check_server, check_url_syntax, local_problems, remote_problems
from backend import config as config_module
from backend.config import Config, ConfigWriteRefused, LLMConfig, STTConfig, TTSConfig
from tests.fakes.keyring_backend import MemoryKeyring
from tests.fakes.models_server import ModelsServer


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- config.save ---------------------------------------------------------------------


def test_save_round_trips_atomically_and_privately(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "config.toml"
    config = Config(llm=LLMConfig(model="fast", system_prompt='Say "hi"\nnewline'), tts=TTSConfig(speed=1.5))
    assert config_module.save(config, path) is None
    assert config_module.load(path) == config
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temporary file left
    config_module.save(replace(config, tts=TTSConfig(provider="off")), path)
    assert config_module.load(path).tts.provider == "off"


def test_a_damaged_file_is_never_overwritten_without_consent(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[llm]\nmodel = 3\n", encoding="utf-8")  # loads, with a notice
    with pytest.raises(ConfigWriteRefused, match="has problems"):
        config_module.save(Config(), path)
    assert path.read_text(encoding="utf-8") == "[llm]\nmodel = 3\n"
    backup = config_module.save(Config(), path, replace_damaged=True)
    assert backup is not None and backup.read_text(encoding="utf-8") == "[llm]\nmodel = 3\n"
    assert config_module.load(path).notice == ""


def test_an_unwritable_place_is_a_clear_refusal(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigWriteRefused, match="Could not write"):
        config_module.save(Config(), blocker / "config.toml")


# ---- validation ----------------------------------------------------------------------


def test_gguf_and_url_checks(tmp_path: Path) -> None:
    assert "no file" in check_gguf(str(tmp_path / "none.gguf"))
    assert "folder" in check_gguf(str(tmp_path))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGML....")
    assert "not a GGUF" in check_gguf(str(bad))
    good = tmp_path / "good.gguf"
    good.write_bytes(b"GGUF\x03\x00")
    assert check_gguf(str(good)) == ""
    assert check_url_syntax("http://127.0.0.1:8080/v1") == ""
    assert "http://" in check_url_syntax("127.0.0.1:8080")
    assert "port" in check_url_syntax("http://host:99999/v1")


def test_local_problems_by_field(tmp_path: Path) -> None:
    assert local_problems(Config()) == {}
    config = Config(
        llm=LLMConfig(model="huge", system_prompt=""),
        tts=TTSConfig(voice=str(tmp_path / "v.onnx"), speed=9.0),
        stt=STTConfig(provider="openai", model=""),
    )
    problems = local_problems(config)
    assert set(problems) == {"llm.model", "llm.system_prompt", "tts.voice", "tts.speed", "stt.model", "stt.api_key"}
    assert "Unknown model 'huge'" in problems["llm.model"]


def test_server_checks_tell_unreachable_from_refused_keys() -> None:
    with ModelsServer(key="right") as server:
        assert check_server(server.url, "right") == ("", "")
        assert check_server(server.url, "wrong") == ("", "The server refused this API key.")
        assert check_server(server.url, "") == ("", "The server needs an API key.")
        config = Config(llm=LLMConfig(provider="openai", base_url=server.url, model="m", api_key="wrong"))
        assert remote_problems(config) == {"llm.api_key": "The server refused this API key."}
    url_problem, _ = check_server(f"http://127.0.0.1:{closed_port()}/v1", "", timeout_s=2.0)
    assert url_problem.startswith("Cannot reach")


# ---- keys ------------------------------------------------------------------------------


def test_keys_fall_back_to_an_owner_only_file_with_a_warning(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "keys.json", use_system_keyring=False)
    assert not store.uses_keyring and "keys.json" in store.warning
    store.set("llm", "sk-1")
    store.set("tts", "sk-2")
    assert os.stat(tmp_path / "keys.json").st_mode & 0o777 == 0o600
    assert SecretStore(tmp_path / "keys.json", use_system_keyring=False).get_all() == {"llm": "sk-1", "tts": "sk-2"}
    store.set("llm", "")
    assert store.get_all() == {"tts": "sk-2"}


def test_a_failing_keyring_falls_back_and_says_so(tmp_path: Path) -> None:
    keyring = MemoryKeyring()
    store = SecretStore(tmp_path / "keys.json", backend=keyring)
    store.set("llm", "in-keyring")
    assert store.warning == "" and keyring.passwords
    keyring.broken = True
    store.set("tts", "in-file")
    assert "failed" in store.warning
    assert store.get("tts") == "in-file"


def test_keys_travel_with_the_config_but_not_into_the_file() -> None:
    config = with_api_keys(Config(llm=LLMConfig(provider="openai")), {"llm": "sk-x", "stt": "sk-y"})
    assert (config.llm.api_key, config.tts.api_key, config.stt.api_key) == ("sk-x", "", "sk-y")
    assert without_api_keys(config).llm.api_key == ""
    message = configure_message(config)
    assert message.llm.api_key == "sk-x" and "sk-x" not in repr(message)
    assert choice_of(config.llm) == "openai"
    assert choice_of(LLMConfig(provider="openai", base_url="http://x/v1")) == "custom"
