"""Compares echo cancellers on a simulated speaker-to-microphone echo (a benchmark, not a test).

The far end (what Parley plays) is a piper reply in the packaged voice. The
microphone hears it through a synthetic room (a delayed, attenuated direct path
plus decaying reflections), with low noise, and in the "double talk" case a
person (espeak-ng) starting to speak in the middle while the reply goes on.
Each candidate processes 10 ms frames of 16 kHz int16 audio and is scored on:

- ERLE: echo return loss enhancement (dB) on the echo-only part, over the whole
  part and after the first 2 s (converged);
- false starts: utterances the VAD (Silero, threshold 0.5) detects in the echo-only
  output (should be 0: Parley must not barge in on itself);
- p(echo): the VAD's highest speech probability on the echo-only output, and
  p(person): its highest on the person's part of the double-talk output (the room
  between them is where a barge-in threshold can sit);
- heard: whether the VAD detects the person's utterance in the double-talk output;
- kept: how much of the person's voice survives the double talk (dB; the output's
  projection on the clean utterance, after aligning for the canceller's own delay),
  and P/R, the person-to-residue ratio there (dB; residue = echo left + distortion);
- with ``--transcribe``, Whisper tiny.en's reading of the double-talk part and its WER;
- us/frame: processing time per 10 ms frame.

Run: ``python -m assistant.bench.aec_eval [--transcribe]``. Candidates that are not
installed are listed as such (``pip install livekit pywebrtc-audio speexdsp-aec pyaec``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from assistant.audio.resample import resample
from assistant.audio.vad import SileroVad, UtteranceSegmenter

Pcm16 = npt.NDArray[np.int16]
Floats = npt.NDArray[np.float64]

RATE: Final = 16000
FRAME: Final = 160  # 10 ms
REPLY_TEXT: Final = (
    "The weather tomorrow looks mild, with light clouds in the morning and some sun after lunch. "
    "Temperatures should reach about eighteen degrees, so a light jacket will be enough. "
    "If you plan to walk in the park, the afternoon is the best time to go."
)
PERSON_TEXT: Final = "Stop, what about the weekend?"
CONVERGED_AFTER_S: Final = 2.0


class Canceller(Protocol):
    name: str

    def process(self, mic: Pcm16, reference: Pcm16) -> Pcm16: ...


@dataclass(frozen=True)
class Room:
    delay_ms: int
    gain_db: float

    @property
    def label(self) -> str:
        return f"{self.delay_ms} ms, {self.gain_db:+.0f} dB"


ROOMS: Final = (Room(30, -6.0), Room(60, -12.0), Room(120, -20.0))


# ---- signals ------------------------------------------------------------------------------


def piper_reply(text: str = REPLY_TEXT) -> Pcm16:
    """The reply in the packaged piper voice, resampled to 16 kHz."""
    from piper import PiperVoice

    from backend.config import data_dir
    from backend.models.manager import ModelManager

    onnx, config = ModelManager(data_dir()).voice_paths("joe")
    voice = PiperVoice.load(onnx, config_path=config)
    chunks = list(voice.synthesize(text))
    audio = np.concatenate([c.audio_int16_array for c in chunks])
    return resample(audio, chunks[0].sample_rate, RATE)


def espeak_utterance(text: str = PERSON_TEXT) -> Pcm16:
    """A different voice (espeak-ng) speaking ``text``, at 16 kHz."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed for the person's voice (apt install espeak-ng)")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "person.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
        rate, audio = read_wav(path)
    return resample(audio, rate, RATE)


def read_wav(path: Path) -> tuple[int, Pcm16]:
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit samples")
        raw = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        channels = wav.getnchannels()
        rate = wav.getframerate()
    audio = raw.reshape(-1, channels).mean(axis=1) if channels > 1 else raw
    return rate, audio.astype(np.int16)


def room_response(room: Room, seed: int = 7) -> Floats:
    """A direct path after ``delay_ms`` at ``gain_db``, then 60 ms of decaying reflections."""
    rng = np.random.default_rng(seed)
    delay = room.delay_ms * RATE // 1000
    tail = 60 * RATE // 1000
    response = np.zeros(delay + tail, dtype=np.float64)
    gain = 10 ** (room.gain_db / 20)
    response[delay] = gain
    decay = np.exp(-np.arange(1, tail) / (0.015 * RATE))
    response[delay + 1 :] = gain * 0.3 * rng.standard_normal(tail - 1) * decay
    return response


def mic_signal(reference: Pcm16, room: Room, person: Pcm16 | None, person_at: int, seed: int = 3) -> Floats:
    """What the microphone hears: the echo of ``reference``, noise at -66 dBFS, and the person."""
    echo = np.convolve(reference.astype(np.float64), room_response(room))[: reference.size]
    noise = np.random.default_rng(seed).standard_normal(reference.size) * 32768 * 10 ** (-66 / 20)
    mic = echo + noise
    if person is not None:
        end = min(reference.size, person_at + person.size)
        mic[person_at:end] += person[: end - person_at].astype(np.float64)
    return mic


def to_pcm(values: Floats) -> Pcm16:
    return np.clip(np.rint(values), -32768, 32767).astype(np.int16)


# ---- candidates ---------------------------------------------------------------------------------


class PassThrough:
    name = "none (pass-through)"

    def process(self, mic: Pcm16, reference: Pcm16) -> Pcm16:
        return mic


class LiveKitApm:
    """livekit's rtc.AudioProcessingModule (WebRTC AEC3 through livekit's Rust FFI)."""

    def __init__(self, *, noise_suppression: bool = False) -> None:
        from livekit import rtc

        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=True, noise_suppression=noise_suppression, high_pass_filter=True
        )
        self._apm.set_stream_delay_ms(0)
        self.name = "livekit APM" + (" + NS" if noise_suppression else "")

    def process(self, mic: Pcm16, reference: Pcm16) -> Pcm16:
        far = self._rtc.AudioFrame(reference.tobytes(), RATE, 1, FRAME)
        self._apm.process_reverse_stream(far)
        near = self._rtc.AudioFrame(mic.tobytes(), RATE, 1, FRAME)
        self._apm.process_stream(near)
        return np.frombuffer(bytes(near.data.cast("B")), dtype=np.int16).copy()


class PyWebrtcAudio:
    """pywebrtc-audio (WebRTC AEC3, C++ with the GIL released)."""

    def __init__(self, *, noise_suppression: bool = False) -> None:
        import pywebrtc_audio

        self._processor: Any = pywebrtc_audio.AudioProcessor(
            sample_rate=RATE, echo_cancellation=True, noise_suppression=noise_suppression
        )
        self.name = "pywebrtc-audio AEC3" + (" + NS" if noise_suppression else "")

    def process(self, mic: Pcm16, reference: Pcm16) -> Pcm16:
        out: Pcm16 = self._processor.process(mic, reference)
        return out


class SpeexdspCtypes:
    """speexdsp-aec: libspeexdsp's echo canceller (the system library through ctypes)."""

    def __init__(self, tail_ms: int = 250) -> None:
        from speexdsp_aec import SpeexAec

        self._aec: Any = SpeexAec(sample_rate=RATE, frame_ms=10, filter_tail_ms=tail_ms)
        self.name = f"speexdsp-aec (tail {tail_ms} ms)"

    def process(self, mic: Pcm16, reference: Pcm16) -> Pcm16:
        return np.frombuffer(self._aec.process(mic, reference), dtype=np.int16).copy()


class PyAec:
    """pyaec (aec-rs: a Rust port of speexdsp's canceller plus its preprocessor)."""

    def __init__(self, tail_ms: int = 250) -> None:
        import pyaec

        self._aec: Any = pyaec.Aec(FRAME, tail_ms * RATE // 1000, RATE, True)
        self.name = f"pyaec (tail {tail_ms} ms)"

    def process(self, mic: Pcm16, reference: Pcm16) -> Pcm16:
        return np.asarray(self._aec.cancel_echo(mic.tolist(), reference.tolist()), dtype=np.int16)


def parley_canceller() -> Canceller:
    """Parley's own wrapper (assistant/audio/echo_canceller.py), to check it matches its backend."""
    from assistant.audio.echo_canceller import EchoCanceller

    class Wrapped:
        name = "parley EchoCanceller"

        def __init__(self) -> None:
            self._inner = EchoCanceller(enabled=True)

        def process(self, mic: Pcm16, reference: Pcm16) -> Pcm16:
            return self._inner.process(mic, reference)

    return Wrapped()


FACTORIES: Final[tuple[tuple[str, Callable[[], Canceller]], ...]] = (
    ("none", PassThrough),
    ("livekit", LiveKitApm),
    ("livekit+ns", lambda: LiveKitApm(noise_suppression=True)),
    ("pywebrtc", PyWebrtcAudio),
    ("pywebrtc+ns", lambda: PyWebrtcAudio(noise_suppression=True)),
    ("speexdsp", SpeexdspCtypes),
    ("pyaec", PyAec),
    ("parley", parley_canceller),
)


# ---- measuring --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    erle_db: float
    erle_converged_db: float
    false_starts: int
    echo_probability: float
    person_probability: float
    heard: bool
    kept_db: float
    person_to_residue_db: float
    us_per_frame: float
    transcript: str


def run(canceller: Canceller, mic: Pcm16, reference: Pcm16) -> tuple[Pcm16, float]:
    """Processes 10 ms frames; returns the output and the mean time per frame (us)."""
    frames = mic.size // FRAME
    out = np.zeros(frames * FRAME, dtype=np.int16)
    started = time.perf_counter()
    for i in range(frames):
        window = slice(i * FRAME, (i + 1) * FRAME)
        processed = canceller.process(mic[window], reference[window])
        out[window][: processed.size] = processed[:FRAME]
    elapsed = time.perf_counter() - started
    return out, elapsed / max(frames, 1) * 1e6


def energy(values: npt.NDArray[Any]) -> float:
    return float(np.mean(np.square(values.astype(np.float64)))) + 1e-9


def vad_run(audio: Pcm16) -> tuple[list[int], npt.NDArray[np.float64]]:
    """Where the segmenter starts utterances (sample positions), and each 32 ms frame's probability."""
    segmenter = UtteranceSegmenter(SileroVad())
    starts: list[int] = []
    probabilities: list[float] = []
    for offset in range(0, audio.size - audio.size % 512, 512):
        for event in segmenter.feed(audio[offset : offset + 512]):
            if event.kind == "start":
                starts.append(event.sample - event.audio.size)
        probabilities.append(segmenter.last_probability)
    return starts, np.asarray(probabilities, dtype=np.float64)


def aligned_gain(output: Floats, clean: Floats, max_lag: int = 400) -> tuple[int, float]:
    """The lag (samples) at which ``output`` best matches ``clean``, and the gain there."""
    lags = range(min(max_lag, output.size - clean.size) + 1)
    dots = [float(np.dot(clean, output[lag : lag + clean.size])) for lag in lags]
    best = int(np.argmax(dots))
    return best, dots[best] / (float(np.dot(clean, clean)) + 1e-9)


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref = "".join(c if c.isalnum() or c == "'" else " " for c in reference.lower()).split()
    hyp = "".join(c if c.isalnum() or c == "'" else " " for c in hypothesis.lower()).split()
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        previous, row[0] = row[:], i
        for j, other in enumerate(hyp, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (word != other))
    return row[len(hyp)] / max(len(ref), 1)


def score(
    factory: Callable[[], Canceller],
    reference: Pcm16,
    person: Pcm16,
    room: Room,
    transcribe: Callable[[Pcm16], str] | None,
) -> Score:
    converged = int(CONVERGED_AFTER_S * RATE)
    echo_mic = to_pcm(mic_signal(reference, room, None, 0))
    echo_out, us = run(factory(), echo_mic, reference)
    erle = 10 * np.log10(energy(echo_mic[: echo_out.size]) / energy(echo_out))
    erle_late = 10 * np.log10(energy(echo_mic[converged : echo_out.size]) / energy(echo_out[converged:]))
    echo_starts, echo_probabilities = vad_run(echo_out)

    person_at = reference.size // 2
    talk_mic = to_pcm(mic_signal(reference, room, person, person_at))
    talk_out, _ = run(factory(), talk_mic, reference)
    end = min(person_at + person.size, talk_out.size - 400)
    clean = person[: end - person_at].astype(np.float64)
    lag, gain = aligned_gain(talk_out[person_at : end + 400].astype(np.float64), clean)
    heard_part = talk_out[person_at + lag : end + lag].astype(np.float64)
    residue = heard_part - gain * clean
    kept = 20 * np.log10(max(gain, 1e-6))
    person_to_residue = 10 * np.log10(energy(gain * clean) / energy(residue))
    starts, talk_probabilities = vad_run(talk_out)
    heard = any(person_at - RATE // 2 <= s <= end for s in starts)
    person_probability = float(talk_probabilities[person_at // 512 : end // 512 + 1].max())
    text = ""
    if transcribe is not None:
        text = transcribe(talk_out[person_at : end + RATE // 2])
    return Score(
        erle_db=float(erle),
        erle_converged_db=float(erle_late),
        false_starts=len(echo_starts),
        echo_probability=float(echo_probabilities.max()),
        person_probability=person_probability,
        heard=heard,
        kept_db=float(kept),
        person_to_residue_db=float(person_to_residue),
        us_per_frame=us,
        transcript=text,
    )


def whisper_transcriber() -> Callable[[Pcm16], str]:
    import asyncio

    from faster_whisper import WhisperModel

    from backend.config import data_dir
    from backend.models.whisper_models import WhisperModels

    location = asyncio.run(WhisperModels(data_dir()).ensure("tiny", lambda step, fraction: None))
    model = WhisperModel(str(location.path), device="cpu", compute_type="int8", cpu_threads=1, local_files_only=True)

    def transcribe(audio: Pcm16) -> str:
        segments, _ = model.transcribe(
            audio.astype(np.float32) / 32768.0, language="en", beam_size=1, without_timestamps=True
        )
        return " ".join(s.text.strip() for s in segments)

    return transcribe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help=f"candidates to run: {', '.join(n for n, _ in FACTORIES)}")
    parser.add_argument("--transcribe", action="store_true", help="also transcribe the person (Whisper tiny.en)")
    args = parser.parse_args(argv)
    reference = piper_reply()
    person = espeak_utterance()
    print(f"far end: piper reply, {reference.size / RATE:.1f} s; person: espeak-ng, {person.size / RATE:.1f} s")
    transcribe = whisper_transcriber() if args.transcribe else None
    columns = ("ERLE", "conv.", "false", "p(echo)", "p(pers)", "heard", "kept", "P/R", "us/10ms")
    header = f"{'candidate':30} {'room':15} " + " ".join(f"{c:>7}" for c in columns)
    print(header)
    print("-" * len(header))
    for key, factory in FACTORIES:
        if args.only and key not in args.only:
            continue
        try:
            label = factory().name
        except Exception as exc:  # not installed, or the library refuses to start
            print(f"{key:30} not available: {exc}")
            continue
        for room in ROOMS:
            r = score(factory, reference, person, room, transcribe)
            line = (
                f"{label:30} {room.label:15} {r.erle_db:7.1f} {r.erle_converged_db:7.1f} {r.false_starts:7d} "
                f"{r.echo_probability:7.2f} {r.person_probability:7.2f} {'yes' if r.heard else 'NO':>7} "
                f"{r.kept_db:7.1f} {r.person_to_residue_db:7.1f} {r.us_per_frame:7.0f}"
            )
            if transcribe is not None:
                line += f"  WER {word_error_rate(PERSON_TEXT, r.transcript):4.0%} {r.transcript!r}"
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
