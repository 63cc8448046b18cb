"""Voice activity detection: Silero VAD on onnxruntime, and an utterance segmenter on top.

No Qt and no I/O: the caller feeds 16 kHz mono int16 samples (blocks of any size)
and gets events back. ``SileroVad`` scores 512-sample frames (32 ms) with the
Silero VAD ONNX model that faster-whisper ships in its ``assets`` folder (found
without importing faster-whisper). Its recurrent state and the audio context the
model expects are read from the model's input signature, not assumed.

``UtteranceSegmenter`` turns frame scores into utterances: ``start`` (carrying a
pre-roll of the audio just before the onset, so the first syllable is not cut),
``speech`` for every following frame, and ``end`` after ``end_silence_ms`` of
silence. An optional webrtcvad prefilter skips the model on frames that webrtcvad
calls silent while nobody is speaking.
"""

from __future__ import annotations

import importlib.util
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

Pcm16: TypeAlias = npt.NDArray[np.int16]
VadEventKind: TypeAlias = Literal["start", "speech", "end"]

SAMPLE_RATE: Final = 16000
FRAME_SAMPLES: Final = 512
"""Silero VAD's window at 16 kHz (32 ms)."""
FRAME_MS: Final = FRAME_SAMPLES * 1000 / SAMPLE_RATE

DEFAULT_THRESHOLD: Final = 0.5
DEFAULT_END_SILENCE_MS: Final = 600
DEFAULT_PRE_ROLL_MS: Final = 300
DEFAULT_MIN_SPEECH_MS: Final = 96
DEFAULT_MAX_UTTERANCE_S: Final = 30.0
HYSTERESIS: Final = 0.15
"""A frame counts as silence below ``threshold - HYSTERESIS`` (as Silero recommends)."""

_AUDIO_INPUT_NAMES: Final = ("input", "x", "audio")
_RATE_INPUT_NAMES: Final = ("sr", "sample_rate")
_PREFILTER_SAMPLES: Final = 480  # webrtcvad takes 10, 20 or 30 ms frames


class VadError(RuntimeError):
    """The VAD model is missing or not of a shape this code understands (message is user-facing)."""


class FrameScorer(Protocol):
    """Scores one 512-sample frame: the probability (0..1) that it holds speech."""

    def probability(self, frame: Pcm16) -> float: ...

    def reset(self) -> None: ...


def silero_model_path() -> Path:
    """The Silero VAD ONNX file inside the installed faster-whisper package (not imported)."""
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise VadError("Voice detection needs faster-whisper: install it with `pip install faster-whisper`.")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location, "assets").glob("silero_vad*.onnx"), reverse=True)
        if found:
            return found[0]
    raise VadError(
        "The installed faster-whisper has no Silero VAD model in its assets; "
        "reinstall it with `pip install --force-reinstall faster-whisper`."
    )


class SileroVad:
    """A ``FrameScorer`` running Silero VAD on onnxruntime with one thread.

    Not thread-safe: use one instance per audio stream, from one thread at a time.
    """

    def __init__(self, model_path: Path | None = None) -> None:
        path = model_path or silero_model_path()
        try:
            import onnxruntime
        except ImportError as exc:
            raise VadError(f"Voice detection needs onnxruntime ({exc}): `pip install onnxruntime`.") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise VadError(f"The voice detection model {path} cannot be loaded: {exc}") from None
        self._signature = _Signature.read(self._session.get_inputs(), self._session.get_outputs(), path)
        self._states: dict[str, npt.NDArray[np.float32]] = {}
        self._context = np.zeros(self._signature.context_samples, dtype=np.float32)
        self.reset()

    @property
    def context_samples(self) -> int:
        """Samples of the previous frame the model sees before each new frame (64 for v5/v6)."""
        return self._signature.context_samples

    def reset(self) -> None:
        """Forgets the recurrent state and the audio context (start of a new stream)."""
        self._states = {name: np.zeros(shape, dtype=np.float32) for name, shape in self._signature.states}
        self._context = np.zeros(self._signature.context_samples, dtype=np.float32)

    def probability(self, frame: Pcm16) -> float:
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(f"a VAD frame has {FRAME_SAMPLES} samples, got shape {frame.shape}")
        audio = frame.astype(np.float32) / 32768.0
        window = np.concatenate([self._context, audio])[None, :] if self._context.size else audio[None, :]
        feeds: dict[str, Any] = {self._signature.audio_input: window, **self._states}
        if self._signature.rate_input is not None:
            feeds[self._signature.rate_input] = np.array(SAMPLE_RATE, dtype=np.int64)
        outputs = self._session.run(None, feeds)
        for (name, _), value in zip(self._signature.states, outputs[1:], strict=True):
            self._states[name] = np.asarray(value, dtype=np.float32)
        if self._context.size:
            self._context = audio[-self._context.size :]
        return float(np.asarray(outputs[0]).reshape(-1)[0])


@dataclass(frozen=True)
class _Signature:
    """What the model's inputs say: the audio input, its context length, the state tensors."""

    audio_input: str
    context_samples: int
    rate_input: str | None
    states: tuple[tuple[str, tuple[int, ...]], ...]  # input name and shape, in output order

    @staticmethod
    def read(inputs: Sequence[Any], outputs: Sequence[Any], path: Path) -> _Signature:
        names = [i.name for i in inputs]
        audio = next((i for i in inputs if i.name in _AUDIO_INPUT_NAMES), None)
        if audio is None or len(audio.shape) != 2:
            raise VadError(f"{path} is not a Silero VAD model this version understands (inputs {names}).")
        width = audio.shape[1]
        context = width - FRAME_SAMPLES if isinstance(width, int) else 0
        if context < 0:
            raise VadError(f"{path} expects {width}-sample windows; Parley feeds {FRAME_SAMPLES}.")
        rate = next((i.name for i in inputs if i.name in _RATE_INPUT_NAMES), None)
        state_inputs = [i for i in inputs if i.name not in (audio.name, rate)]
        if len(outputs) != len(state_inputs) + 1:
            raise VadError(f"{path} has {len(outputs)} outputs for {len(state_inputs)} state inputs.")
        states: list[tuple[str, tuple[int, ...]]] = []
        for state in state_inputs:
            shape = tuple(d if isinstance(d, int) else 1 for d in state.shape)
            if "float" not in state.type:
                raise VadError(f"{path}: unexpected state input {state.name} of type {state.type}.")
            states.append((state.name, shape))
        # Outputs after the probability return the states in the same order as the inputs.
        for (name, shape), out in zip(states, outputs[1:], strict=True):
            out_shape = tuple(d if isinstance(d, int) else 1 for d in out.shape)
            if out_shape != shape:
                raise VadError(f"{path}: state {name} {shape} does not match output {out.name} {out_shape}.")
        return _Signature(audio.name, context, rate, tuple(states))


@dataclass(frozen=True)
class VadEvent:
    """One step of an utterance.

    ``start``: speech began; ``audio`` is the pre-roll plus the frames that confirmed it.
    ``speech``: one more frame of the utterance. ``end``: the utterance is over; ``audio``
    is its last frame (silence included up to ``end_silence_ms``). ``sample`` is the
    stream position just after ``audio``; ``probability`` the last frame's score.
    """

    kind: VadEventKind
    audio: Pcm16
    probability: float
    sample: int


class UtteranceSegmenter:
    """Cuts a 16 kHz stream into utterances. ``feed`` takes blocks of any size.

    ``threshold`` is the sensitivity (lower hears quieter speech and more noise);
    speech starts after ``min_speech_ms`` of frames at or above it and ends after
    ``end_silence_ms`` of frames below ``threshold - 0.15``. An utterance longer than
    ``max_utterance_s`` is ended there.
    """

    def __init__(
        self,
        scorer: FrameScorer,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        end_silence_ms: int = DEFAULT_END_SILENCE_MS,
        pre_roll_ms: int = DEFAULT_PRE_ROLL_MS,
        min_speech_ms: int = DEFAULT_MIN_SPEECH_MS,
        max_utterance_s: float = DEFAULT_MAX_UTTERANCE_S,
        prefilter: bool = False,
        prefilter_mode: int = 1,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
        if end_silence_ms <= 0 or pre_roll_ms < 0 or min_speech_ms < 0 or max_utterance_s <= 0:
            raise ValueError("durations must be positive")
        self._scorer = scorer
        self._threshold = threshold
        self._silence_threshold = max(threshold - HYSTERESIS, 0.01)
        self.end_silence_ms = end_silence_ms
        self._end_frames = max(1, math.ceil(end_silence_ms / FRAME_MS))
        self._start_frames = max(1, math.ceil(min_speech_ms / FRAME_MS))
        self._max_frames = max(1, math.ceil(max_utterance_s * 1000 / FRAME_MS))
        self._pre_roll: deque[Pcm16] = deque(maxlen=max(0, math.ceil(pre_roll_ms / FRAME_MS)))
        self._prefilter = _WebrtcPrefilter(prefilter_mode) if prefilter else None
        self._pending = np.zeros(0, dtype=np.int16)
        self._candidate: list[Pcm16] = []  # speech frames not yet confirmed as an utterance
        self._speaking = False
        self._silent_frames = 0
        self._utterance_frames = 0
        self._position = 0
        self.frames_scored = 0
        self.frames_skipped = 0
        self.last_probability = 0.0

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def silent_frames(self) -> int:
        """Frames of silence since the last speech frame of the utterance in progress (0 when none)."""
        return self._silent_frames if self._speaking else 0

    @property
    def threshold(self) -> float:
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        """Changes the sensitivity at once, e.g. lower while a reply plays through the echo canceller."""
        if not 0.0 < value < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {value}")
        self._threshold = value
        self._silence_threshold = max(value - HYSTERESIS, 0.01)

    def feed(self, samples: Pcm16) -> list[VadEvent]:
        """Adds samples (1-D int16, 16 kHz) and returns the events of the frames completed."""
        block = np.asarray(samples)
        if block.ndim != 1 or block.dtype != np.int16:
            raise ValueError(f"feed takes 1-D int16 samples, got {block.dtype} of shape {block.shape}")
        data = np.concatenate([self._pending, block])  # a copy: events never alias the caller's buffer
        whole = data.size - data.size % FRAME_SAMPLES
        self._pending = data[whole:].copy()
        events: list[VadEvent] = []
        for offset in range(0, whole, FRAME_SAMPLES):
            event = self._frame(data[offset : offset + FRAME_SAMPLES])
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[VadEvent]:
        """Ends the utterance in progress, if any (e.g. the push-to-talk key was released)."""
        if not self._speaking:
            return []
        tail = self._pending
        self._pending = np.zeros(0, dtype=np.int16)
        self._position += tail.size
        self._finish()
        return [VadEvent("end", tail, self.last_probability, self._position)]

    def reset(self) -> None:
        """Drops any utterance in progress and the model's state (a new stream starts)."""
        self._scorer.reset()
        self._pre_roll.clear()
        self._candidate = []
        self._pending = np.zeros(0, dtype=np.int16)
        self._position = 0
        self._finish()

    def _finish(self) -> None:
        self._speaking = False
        self._silent_frames = 0
        self._utterance_frames = 0

    def _score(self, frame: Pcm16) -> float:
        idle = not self._speaking and not self._candidate
        if self._prefilter is not None and idle and not self._prefilter.maybe_speech(frame):
            self.frames_skipped += 1
            return 0.0
        self.frames_scored += 1
        return self._scorer.probability(frame)

    def _frame(self, frame: Pcm16) -> VadEvent | None:
        probability = self._score(frame)
        self.last_probability = probability
        self._position += FRAME_SAMPLES
        if self._speaking:
            return self._frame_in_speech(frame, probability)
        if probability >= self._threshold:
            self._candidate.append(frame)
            if len(self._candidate) < self._start_frames:
                return None
            audio = np.concatenate([*self._pre_roll, *self._candidate])
            self._pre_roll.clear()
            self._utterance_frames = len(self._candidate)
            self._candidate = []
            self._speaking = True
            self._silent_frames = 0
            return VadEvent("start", audio, probability, self._position)
        # Not (or no longer) speech: unconfirmed frames become pre-roll for the next onset.
        for pending in self._candidate:
            self._pre_roll.append(pending)
        self._candidate = []
        self._pre_roll.append(frame)
        return None

    def _frame_in_speech(self, frame: Pcm16, probability: float) -> VadEvent:
        self._utterance_frames += 1
        if probability >= self._threshold:
            self._silent_frames = 0
        elif probability < self._silence_threshold or self._silent_frames > 0:
            self._silent_frames += 1
        if self._silent_frames >= self._end_frames or self._utterance_frames >= self._max_frames:
            self._finish()
            return VadEvent("end", frame, probability, self._position)
        return VadEvent("speech", frame, probability, self._position)


class _WebrtcPrefilter:
    """webrtcvad on the first 30 ms of a frame: a cheap "certainly not speech" check."""

    def __init__(self, mode: int) -> None:
        try:
            import webrtcvad
        except ImportError as exc:
            raise VadError(f"The VAD prefilter needs webrtcvad-wheels ({exc}).") from None
        self._vad = webrtcvad.Vad(min(max(mode, 0), 3))

    def maybe_speech(self, frame: Pcm16) -> bool:
        return bool(self._vad.is_speech(frame[:_PREFILTER_SAMPLES].tobytes(), SAMPLE_RATE))


def level_dbfs(samples: Pcm16) -> float:
    """The RMS level of int16 samples in dB full scale (-96 for silence), for a level meter."""
    if samples.size == 0:
        return -96.0
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))
    return max(20.0 * math.log10(max(rms, 1e-9) / 32768.0), -96.0)


def utterance_audio(events: Sequence[VadEvent]) -> Pcm16:
    """Joins the audio of one utterance's events (start, speech..., end) into one array."""
    if not events:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate([e.audio for e in events]).astype(np.int16, copy=False)
