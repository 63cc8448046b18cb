"""``parley --check-bundle``: checks that every packaged component loads and works.

Run inside an installed bundle (or from source) it exercises, for real and offline:
the Qt platform plugin and fonts (a widget is shown and grabbed), PortAudio, both
language models (found in the bundle; the fast one answers a few tokens), the Piper
voice (espeak-ng data, onnxruntime), Whisper tiny (CTranslate2) transcribing what the
voice said, the Silero VAD and webrtcvad on that speech, the echo canceller, and the
keyring backends (API keys).
Prints one JSON line ``{"ok": ..., "checks": {name: {"ok": ..., "detail": ...}}}``
and exits 0 only when every check passed. In a bundle nothing is written: every
model is used where it lies.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SPOKEN = "Hello from Parley."
SPOKEN_WORDS = frozenset({"hello", "from", "parley"})


@dataclass(frozen=True)
class _WhisperSettings:
    """The STT settings the check uses (an ``STTSettings``)."""

    model: str = "tiny"
    base_url: str = ""
    api_key: str = ""
    language: str = "en"
    threads: int = 0
    timeout_s: float = 60.0


class Checks:
    """Runs named checks in order, keeping what each found; later checks use earlier results."""

    def __init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}
        self.speech_16k: np.ndarray[Any, np.dtype[np.int16]] | None = None

    def run(self, name: str, check: Callable[[], str]) -> None:
        started = time.monotonic()
        try:
            detail, ok = check(), True
        except Exception as exc:  # every failure becomes a line in the report
            detail, ok = f"{type(exc).__name__}: {exc}", False
        self.results[name] = {"ok": ok, "detail": detail, "seconds": round(time.monotonic() - started, 2)}
        print(f"check-bundle: {name}: {'ok' if ok else 'FAILED'}: {detail}", file=sys.stderr, flush=True)


def _in_bundle(path: Path) -> str:
    from backend.models.bundled import bundle_root

    root = bundle_root()
    return "in the bundle" if root is not None and path.is_relative_to(root) else "outside the bundle"


def check_qt() -> str:
    if not (os.environ.get("QT_QPA_PLATFORM") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # no screen: Qt would abort the process
    from PySide6.QtCore import QLibraryInfo, qVersion
    from PySide6.QtGui import QFontDatabase
    from PySide6.QtWidgets import QApplication, QLabel

    plugins = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    platforms = sorted(f.name.split(".")[0].removeprefix("lib").removeprefix("q") for f in plugins.iterdir())
    needed = {"linux": {"xcb", "offscreen"}, "win32": {"windows"}, "darwin": {"cocoa"}}.get(sys.platform, set())
    if needed - set(platforms):
        raise RuntimeError(f"platform plugins missing: {sorted(needed - set(platforms))} (found {platforms})")
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    label = QLabel("Parley speaks")
    label.show()
    app.processEvents()
    picture = label.grab()
    label.close()
    if picture.isNull():
        raise RuntimeError("the widget could not be drawn")
    families = QFontDatabase.families()
    if not families:
        raise RuntimeError("no fonts found")
    return f"Qt {qVersion()} on {app.platformName()} (plugins {', '.join(platforms)}), {len(families)} font families"


def check_audio() -> str:
    import sounddevice

    devices = sounddevice.query_devices()
    count = len(devices) if isinstance(devices, list) else len(list(devices))
    return f"{sounddevice.get_portaudio_version()[1].split(',')[0]}, {count} device(s)"


async def check_llm() -> str:
    from backend.config import LLMConfig, data_dir
    from backend.engines.base import ChatMessage
    from backend.engines.llm.llama_local import LlamaLocalLLM
    from backend.models.manager import ModelManager

    manager = ModelManager(data_dir())
    places = []
    for key in ("default", "fast"):
        path = await manager.ensure_llm(key, lambda _step, _fraction: None)
        places.append(f"{key}: {path.name} {_in_bundle(path)}")
    engine = LlamaLocalLLM(LLMConfig(model="fast", max_tokens=8, threads=1), manager)
    try:
        await engine.load(lambda _step, _fraction: None)
        pieces = [piece async for piece in engine.stream([ChatMessage("user", "Say hello.")])]
    finally:
        await engine.aclose()
    reply = "".join(pieces).strip()
    if not reply:
        raise RuntimeError("the fast model produced no text")
    return "; ".join(places) + f"; fast answered {reply!r}"


async def check_tts(checks: Checks) -> str:
    from assistant.audio.resample import resample
    from backend.config import TTSConfig, data_dir
    from backend.engines.tts.piper_local import PiperTTS
    from backend.models.manager import ModelManager

    manager = ModelManager(data_dir())
    onnx, _config = manager.voice_paths("joe")
    engine = PiperTTS(TTSConfig(), manager)
    try:
        await engine.load(lambda _step, _fraction: None)
        chunks = [chunk async for chunk in engine.synthesize(SPOKEN)]
        rate = engine.sample_rate
    finally:
        await engine.aclose()
    audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    seconds = audio.size / rate if rate else 0.0
    if seconds < 0.5:
        raise RuntimeError(f"the voice produced only {seconds:.2f} s of audio")
    checks.speech_16k = resample(audio, rate, 16000)
    return f"voice {onnx.name} {_in_bundle(onnx)}: {seconds:.2f} s at {rate} Hz"


async def check_stt(checks: Checks) -> str:
    from backend.config import data_dir
    from backend.engines.stt.whisper_local import WhisperLocalSTT
    from backend.models.whisper_models import WhisperModels

    if checks.speech_16k is None:
        raise RuntimeError("no speech to transcribe (the voice check failed)")
    engine = WhisperLocalSTT(_WhisperSettings(), WhisperModels(data_dir()))
    try:
        await engine.load(lambda _step, _fraction: None)
        text = await engine.transcribe(checks.speech_16k)
    finally:
        await engine.aclose()
    heard = set(re.findall(r"[a-z]+", text.lower()))
    if len(heard & SPOKEN_WORDS) < 2:  # piper's voice varies from run to run: "a low from Parley" happens
        raise RuntimeError(f"Whisper heard {text!r}, expected {SPOKEN!r}")
    return f"{engine.name} heard {text!r}"


def check_vad(checks: Checks) -> str:
    import webrtcvad

    from assistant.audio.vad import FRAME_SAMPLES, SileroVad, silero_model_path

    if checks.speech_16k is None:
        raise RuntimeError("no speech to score (the voice check failed)")
    speech = checks.speech_16k
    vad = SileroVad()
    frames = [speech[i : i + FRAME_SAMPLES] for i in range(0, speech.size - FRAME_SAMPLES + 1, FRAME_SAMPLES)]
    peak = max(vad.probability(frame) for frame in frames)
    if peak < 0.5:
        raise RuntimeError(f"Silero VAD found no speech in speech (peak {peak:.2f})")
    prefilter = webrtcvad.Vad(2)
    voiced = sum(prefilter.is_speech(speech[i : i + 480].tobytes(), 16000) for i in range(0, speech.size - 480, 480))
    if voiced == 0:
        raise RuntimeError("webrtcvad found no speech in speech")
    model = silero_model_path()
    return f"Silero ({model.name} {_in_bundle(model)}) peak {peak:.2f}; webrtcvad {voiced} voiced frames"


def check_echo_canceller() -> str:
    from assistant.audio.echo_canceller import FRAME_SAMPLES, EchoCanceller

    canceller = EchoCanceller(enabled=True)
    silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    out = canceller.process(silence, silence)
    if np.asarray(out).shape != (FRAME_SAMPLES,):
        raise RuntimeError(f"the echo canceller returned shape {np.asarray(out).shape}")
    return "WebRTC AEC3 processed a frame"


def check_keyring() -> str:
    import importlib
    import importlib.metadata

    import keyring

    importlib.import_module("keyring.backends.SecretService")  # GNOME Keyring, KWallet 6 (D-Bus)
    importlib.import_module("keyring.backends.kwallet")
    backend = type(keyring.get_keyring())
    return f"keyring {importlib.metadata.version('keyring')}, here {backend.__module__}.{backend.__name__}"


def run_checks() -> dict[str, Any]:
    """Runs every check; returns the report."""
    checks = Checks()
    checks.run("qt", check_qt)
    checks.run("audio", check_audio)
    checks.run("llm", lambda: asyncio.run(check_llm()))
    checks.run("tts", lambda: asyncio.run(check_tts(checks)))
    checks.run("stt", lambda: asyncio.run(check_stt(checks)))
    checks.run("vad", lambda: check_vad(checks))
    checks.run("echo_canceller", check_echo_canceller)
    checks.run("keyring", check_keyring)
    return {"ok": all(r["ok"] for r in checks.results.values()), "checks": checks.results}


def main(argv: list[str] | None = None) -> int:
    del argv  # no options
    report = run_checks()
    print(json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main())
