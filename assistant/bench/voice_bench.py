"""``parley-bench voice``: spoken questions through the real capture path, timed the way a person hears them.

The benchmark starts the real embedded backend (fast LLM, Whisper tiny.en by
default), opens a private virtual sound card (``virtual_room``: a PulseAudio null
sink as the speakers, its monitor as the microphone) and runs the app's own voice
path on it: ``Microphone`` -> ``VoiceInput`` (hands-free, echo cancellation on) ->
``BackendConnection``, replies through ``AudioPlayer``. Spoken questions are made
with espeak-ng at run time and played into the room with ``paplay``.

Phase 1 plays each question and lets its reply play to the end (the microphone
hears the reply too, as from speakers). Phase 2 asks for a long reply and speaks
over it. Every time is on ``time.monotonic`` in this process:

- where a spoken file starts in the microphone's capture is found by correlating
  the captured audio with the file, so "end of speech" is the moment the last
  voiced sample of the question reached the microphone;
- when sound started or stopped is read from the player's tap: the exact samples
  handed to the sound card, on the card's own clock (PortAudio's DAC time), then
  moved onto the microphone's clock by the delay the echo model measured between the
  two (``VoiceInput.echo_delay_s``: the device clocks are mapped onto
  ``time.monotonic`` with errors of tens of milliseconds, so the start of speech and
  the end of the reply's sound are compared as the microphone heard them).

Figures (median and p90): voice-to-voice (end of speech -> first reply sound),
end-of-speech detection (-> UtteranceEnd sent), STT time (the final
transcription, in the backend), barge-in stop (speech onset over a reply -> the
reply's last sound), echo false triggers (utterances or barge-ins during replies
nobody spoke over; in phase 2, barge-ins before the person spoke), and WER.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from assistant.audio.echo_canceller import OUTPUT_DELAY_SAMPLES
from assistant.audio.playback_tap import PlaybackTap
from assistant.audio.player import AudioPlayer
from assistant.audio.resample import Pcm16, resample
from assistant.backend_supervisor import BackendSupervisor
from assistant.bench.stats import ms, summary
from assistant.bench.virtual_room import VirtualRoom, virtual_room
from assistant.bench.wer import word_error_rate
from assistant.headless_voice import HeadlessVoiceClient, VoiceTurnRecord
from assistant.net.backend_connection import BackendConnection
from assistant.voice_input import VoiceInput, VoiceSettings

log = logging.getLogger("parley.bench.voice")

RATE: Final = 16000
VOICE_QUESTIONS: Final = (
    "What is the weather like in Paris today?",
    "How far away is the moon from the earth?",
    "Can you tell me a short story about a brave little cat?",
    "I would like to learn how to cook pasta.",
    "Remind me to call my mother tomorrow morning.",
    "Please play some quiet music in the living room.",
    "Why is the sky blue?",
    "How do bees make honey?",
    "What should I pack for a weekend hiking trip?",
    "Give me some tips for sleeping better.",
    "How do vaccines help the body fight disease?",
    "What causes the seasons on earth?",
)
WARM_UP: Final = "Say hello in one sentence."
LONG_REQUEST: Final = "Tell me a long story about a dragon who learns to fly, in many sentences."
INTERRUPTIONS: Final = (
    "Stop, wait a moment.",
    "Hold on, that is enough.",
    "Sorry, can I ask something else?",
    "Wait, stop please.",
)
AUDIBLE: Final = 100  # |sample| above about -50 dBFS counts as sound
TURN_TIMEOUT_S: Final = 120.0
ECHO_TAIL_S: Final = 0.6
CAPTURE_KEEP_S: Final = 120.0


@dataclass(frozen=True)
class SpokenFile:
    """A question or interruption spoken by espeak-ng: its WAV file and where its voice starts and ends."""

    text: str
    path: Path
    audio: Pcm16
    voiced_start_s: float
    voiced_end_s: float


def speak_to_file(text: str, path: Path) -> SpokenFile:
    """espeak-ng speaks ``text`` into a 16 kHz mono WAV (with 0.2 s of silence around it)."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("the voice benchmark needs espeak-ng (apt install espeak-ng)")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(raw), text], check=True, capture_output=True)
    with wave.open(str(raw), "rb") as wav:
        rate = wav.getframerate()
        speech = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
    pad = np.zeros(int(0.2 * RATE), dtype=np.int16)
    audio = np.concatenate([pad, resample(speech, rate, RATE), pad])
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(audio.astype("<i2").tobytes())
    start, end = _voiced_span(audio)
    return SpokenFile(text, path, audio, start / RATE, end / RATE)


def _voiced_span(audio: Pcm16, level_dbfs: float = -40.0, window: int = 160) -> tuple[int, int]:
    frames = audio[: audio.size - audio.size % window].astype(np.float64).reshape(-1, window)
    loud = np.flatnonzero(np.sqrt(np.mean(frames**2, axis=1)) > 32768 * 10 ** (level_dbfs / 20))
    if loud.size == 0:
        return 0, audio.size
    return int(loud[0] * window), int((loud[-1] + 1) * window)


@dataclass(frozen=True)
class Detection:
    """The worker silenced the player (a barge-in, or a pause to confirm one)."""

    done_at: float  # when
    heard_at: float  # capture time of the end of the microphone block that made it do so
    echo_delay_s: float  # the echo delay measured then (tap clock -> capture clock)
    by_echo_model: bool  # noticed by the echo model (else the level rule, or Silero)


class CaptureLog:
    """The clean microphone audio with its capture times, kept from the worker thread (bounded)."""

    def __init__(self, keep_s: float = CAPTURE_KEEP_S) -> None:
        self._blocks: deque[tuple[float, Pcm16]] = deque()
        self._samples = 0
        self._limit = int(keep_s * RATE)
        self._lock = threading.Lock()
        self.detections: list[Detection] = []  # each time the worker silenced the player
        self.echo_delay: Callable[[], float | None] = lambda: None

    def on_step(self, step: Any) -> None:
        result = step.result
        with self._lock:
            if result.audio.size:
                # the echo canceller delays what it outputs: date each sample by when it was captured
                self._blocks.append((result.captured_at - OUTPUT_DELAY_SAMPLES / RATE, result.audio.copy()))
                self._samples += result.audio.size
            while self._samples > self._limit:
                self._samples -= self._blocks.popleft()[1].size
        if step.barged_in_at is not None or step.held_at is not None:
            heard_at = result.captured_at + result.audio.size / RATE
            self.detections.append(
                Detection(step.done_at, heard_at, self.echo_delay() or 0.0, result.onset_by_echo_model)
            )

    def locate(self, spoken: Pcm16, after: float, before: float) -> float | None:
        """When the first sample of ``spoken`` reached the microphone, between ``after`` and ``before``."""
        with self._lock:
            blocks = [(t, a) for t, a in self._blocks if after <= t <= before]
        if not blocks:
            return None
        start = blocks[0][0]
        captured = np.concatenate([a for _, a in blocks]).astype(np.float64)
        reference = spoken.astype(np.float64)
        if captured.size < reference.size // 2:
            return None
        size = 1 << int(np.ceil(np.log2(captured.size + reference.size)))
        correlation = np.fft.irfft(np.fft.rfft(captured, size) * np.conj(np.fft.rfft(reference, size)), size)
        lag = int(np.argmax(correlation[: captured.size]))
        return start + lag / RATE


def first_sound_after(tap: PlaybackTap, after: float, within_s: float = 10.0) -> float | None:
    """The card-clock time of the first audible sample played after ``after``."""
    played = tap.read(after, int(within_s * RATE))
    loud = np.flatnonzero(np.abs(played.astype(np.int32)) > AUDIBLE)
    return after + loud[0] / RATE if loud.size else None


def last_sound_before(tap: PlaybackTap, since: float, until: float) -> float | None:
    """The card-clock time just after the last audible sample played between ``since`` and ``until``."""
    played = tap.read(since, max(1, int((until - since) * RATE)))
    loud = np.flatnonzero(np.abs(played.astype(np.int32)) > AUDIBLE)
    return since + (loud[-1] + 1) / RATE if loud.size else None


@dataclass
class QuestionRun:
    text: str
    transcript: str = ""
    status: str = ""
    speech_end_at: float | None = None
    end_sent_at: float | None = None
    transcript_at: float | None = None
    first_sound_at: float | None = None
    stt_s: float = 0.0
    false_triggers: int = 0
    backend_ttfa_s: float | None = None  # the backend's turn start -> first audio frame sent

    def since_end(self, at: float | None) -> float | None:
        return None if at is None or self.speech_end_at is None else at - self.speech_end_at


@dataclass
class BargeInRun:
    onset_at: float | None = None
    detected_at: float | None = None
    heard_at: float | None = None  # capture time of the end of the microphone block that triggered the stop
    echo_delay_s: float = 0.0  # tap clock -> microphone clock, as measured on the echo
    by_echo_model: bool = False
    silent_at: float | None = None
    sounding_at_onset: bool = False
    heard_s: float = 0.0
    false_triggers: int = 0  # barge-ins before the person spoke: the long reply's own echo

    @property
    def stop_s(self) -> float | None:
        if self.onset_at is None or self.silent_at is None:
            return None
        return max(0.0, self.silent_at - self.onset_at)


@dataclass
class VoiceBenchRun:
    llm: str = ""
    stt: str = ""
    questions: list[QuestionRun] = field(default_factory=list)
    barge_ins: list[BargeInRun] = field(default_factory=list)
    output_latency_s: float = 0.0
    diagnostics: dict[str, int] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        answered = [q for q in self.questions if q.speech_end_at is not None]
        stopped = [b for b in self.barge_ins if b.sounding_at_onset]

        def values(items: list[float | None]) -> list[float]:
            return [v for v in items if v is not None]

        return {
            "llm": self.llm,
            "stt": self.stt,
            "questions": len(self.questions),
            "voice_to_voice_s": summary(values([q.since_end(q.first_sound_at) for q in answered])),
            "end_of_speech_detection_s": summary(values([q.since_end(q.end_sent_at) for q in answered])),
            "transcript_after_end_s": summary(values([q.since_end(q.transcript_at) for q in answered])),
            "stt_s": summary([q.stt_s for q in answered if q.stt_s > 0]),
            "barge_in_stop_s": summary(values([b.stop_s for b in stopped])),
            "barge_in_detection_s": summary(
                values([b.detected_at - b.onset_at for b in stopped if b.detected_at and b.onset_at])
            ),
            "barge_ins": len(self.barge_ins),
            "barge_ins_measured": len(values([b.stop_s for b in stopped])),
            "echo_false_triggers": sum(q.false_triggers for q in self.questions),
            "echo_false_triggers_barge_in_phase": sum(b.false_triggers for b in self.barge_ins),
            "wer": round(word_error_rate([q.text for q in self.questions], [q.transcript for q in self.questions]), 4),
            "output_latency_s": round(self.output_latency_s, 4),
            "failed": [q.text for q in self.questions if q.status != "completed"],
            "diagnostics": self.diagnostics,
            "transcripts": [q.transcript for q in self.questions],
        }


class _Problems:
    """A ``VoiceListener`` that only keeps problems (the benchmark has no window)."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def on_state(self, state: str) -> None:
        pass

    def on_level(self, dbfs: float) -> None:
        pass

    def on_problem(self, message: str) -> None:
        log.warning("voice input: %s", message)
        self.problems.append(message)

    def on_barge_in(self, heard_s: float) -> None:
        pass


class _Bench:
    def __init__(self, room: VirtualRoom, client: HeadlessVoiceClient, voice: VoiceInput, log: CaptureLog) -> None:
        self.room = room
        self.client = client
        self.voice = voice
        self.capture = log
        assert client.player is not None
        self.player: AudioPlayer = client.player

    def _new_records(self, before: set[int]) -> list[VoiceTurnRecord]:
        return [r for turn, r in self.client.records.items() if turn not in before]

    async def question(self, spoken: SpokenFile) -> QuestionRun:
        """Plays one question, waits for its reply to play out; measures on the way."""
        run = QuestionRun(spoken.text)
        before = set(self.client.records)
        barge_ins = len(self.client.barge_ins)
        played_at = time.monotonic()
        await self.room.play_file(spoken.path)

        def answered() -> bool:
            new = self._new_records(before)
            return bool(new) and bool(new[0].status) and self.player.drained

        await self.client.wait_for(answered, TURN_TIMEOUT_S)
        await asyncio.sleep(ECHO_TAIL_S)  # the reply's echo fades before the next question
        new = self._new_records(before)
        record = new[0]
        run.false_triggers = len(new) - 1 + len(self.client.barge_ins) - barge_ins
        run.transcript, run.status, run.stt_s = record.transcript or "", record.status, record.stt_s
        run.end_sent_at, run.transcript_at = record.ended_at, record.transcript_at
        run.backend_ttfa_s = record.timings.ttfa_s
        heard_at = self.capture.locate(spoken.audio, played_at - 0.5, played_at + spoken.audio.size / RATE + 2.0)
        if heard_at is not None:
            run.speech_end_at = heard_at + spoken.voiced_end_s
            delay = self.voice.echo_delay_s or 0.0
            played = first_sound_after(self.voice.playback_tap, run.speech_end_at - delay)
            run.first_sound_at = None if played is None else played + delay
            if played is None:
                log.warning("no reply sound found after the end of %r (echo delay %.3f s)", spoken.text, delay)
        return run

    async def barge_in(self, spoken: SpokenFile, after_s: float) -> BargeInRun:
        """Asks for a long reply, speaks over it ``after_s`` into its sound, measures the stop."""
        run = BargeInRun()
        if self.client.connection is not None:  # a fresh conversation: earlier interruptions must not shorten it
            self.client.connection.reset_conversation()
        before = len(self.client.barge_ins)
        self.client.ask(LONG_REQUEST)
        try:
            await self.client.wait_for(lambda: self.player.is_playing and self.player.played_seconds >= after_s, 30.0)
        except TimeoutError:
            log.warning("no reply played for %.1f s (cut short by its own echo?); trial skipped", after_s)
            self.client.stop()
            return run
        finally:
            run.false_triggers = len(self.client.barge_ins) - before  # nobody has spoken yet
        barge_ins = len(self.client.barge_ins)
        detections = len(self.capture.detections)
        played_at = time.monotonic()
        await self.room.play_file(spoken.path)
        try:
            await self.client.wait_for(lambda: len(self.client.barge_ins) > barge_ins, 5.0)
        except TimeoutError:
            log.warning("no barge-in for %r", spoken.text)
            self.client.stop()
            return run
        detection = self.capture.detections[detections] if len(self.capture.detections) > detections else None
        heard_at = self.capture.locate(spoken.audio, played_at - 0.5, played_at + spoken.audio.size / RATE + 1.0)
        if heard_at is not None:
            run.onset_at = heard_at + spoken.voiced_start_s
            tap = self.voice.playback_tap
            run.echo_delay_s = delay = detection.echo_delay_s if detection is not None else 0.0
            run.by_echo_model = detection is not None and detection.by_echo_model
            played_until = last_sound_before(tap, run.onset_at - delay - 0.05, time.monotonic())
            run.silent_at = None if played_until is None else played_until + delay
            around = tap.read(run.onset_at - delay - 0.05, int(0.1 * RATE))
            run.sounding_at_onset = bool(np.any(np.abs(around.astype(np.int32)) > AUDIBLE))
        if detection is not None:
            run.detected_at, run.heard_at = detection.done_at, detection.heard_at
        run.heard_s = self.client.barge_ins[barge_ins][1]
        # the interruption became a question: let it be transcribed, then stop its reply
        with contextlib.suppress(TimeoutError):  # no words in it: no question, nothing to wait for
            await self.client.wait_for(lambda: self.voice.state == "listening", 10.0)
        await asyncio.sleep(0.3)
        self.client.stop()
        await asyncio.sleep(ECHO_TAIL_S)
        return run


async def bench_voice(
    llm_model: str, stt_model: str, question_count: int, barge_in_count: int, ready_timeout_s: float
) -> VoiceBenchRun:
    """Runs both phases on a fresh backend; see the module docstring."""
    result = VoiceBenchRun()
    with virtual_room() as room, tempfile.TemporaryDirectory(prefix="parley-voice-bench-") as folder:
        texts = VOICE_QUESTIONS[: max(1, question_count)]
        questions = [speak_to_file(t, Path(folder, f"q{i}.wav")) for i, t in enumerate(texts)]
        interruptions = [speak_to_file(t, Path(folder, f"i{i}.wav")) for i, t in enumerate(INTERRUPTIONS)]
        warm_up = speak_to_file(WARM_UP, Path(folder, "warm-up.wav"))
        player = AudioPlayer()
        player.open(22050)
        client = HeadlessVoiceClient(player)
        problems = _Problems()
        capture = CaptureLog()
        voice = VoiceInput(client, problems, VoiceSettings(), player=lambda: player, tap=PlaybackTap(seconds=60.0))
        voice.on_step = capture.on_step
        capture.echo_delay = lambda: voice.echo_delay_s
        supervisor = BackendSupervisor(extra_args=["--llm-model", llm_model, "--stt-model", stt_model])
        connection: BackendConnection | None = None
        try:
            url = await supervisor.start()
            connection = BackendConnection(url, supervisor.token, client)
            client.connection = connection
            await connection.connect()
            status = await client.wait_ready(ready_timeout_s)
            result.llm, result.stt = status.llm, status.stt
            if not voice.set_hands_free(True):
                raise RuntimeError(f"voice input could not start: {'; '.join(problems.problems)}")
            result.output_latency_s = player.output_latency
            bench = _Bench(room, client, voice, capture)
            await bench.question(warm_up)  # loads the models' caches; not counted
            for i, spoken in enumerate(questions, 1):
                run = await bench.question(spoken)
                result.questions.append(run)
                print(
                    f"  question {i:2d}/{len(questions)} v2v {ms(run.since_end(run.first_sound_at))}"
                    f" end detected {ms(run.since_end(run.end_sent_at))} stt {ms(run.stt_s)}"
                    f" transcript {ms(run.since_end(run.transcript_at))} backend ttfa {ms(run.backend_ttfa_s)}"
                    f" false triggers {run.false_triggers} {run.status}: {run.transcript!r}",
                    file=sys.stderr,
                    flush=True,
                )
            for i in range(barge_in_count):
                spoken = interruptions[i % len(interruptions)]
                barge = await bench.barge_in(spoken, after_s=1.5 + 0.37 * (i % 4))
                result.barge_ins.append(barge)
                detected = barge.detected_at - barge.onset_at if barge.detected_at and barge.onset_at else None
                heard = barge.heard_at - barge.onset_at if barge.heard_at and barge.onset_at else None
                delivered = barge.detected_at - barge.heard_at if barge.detected_at and barge.heard_at else None
                print(
                    f"  barge-in {i + 1:2d}/{barge_in_count} stop {ms(barge.stop_s)} detected {ms(detected)}"
                    f" (speech heard {ms(heard)}, block delivered and processed {ms(delivered)},"
                    f" echo delay {ms(barge.echo_delay_s)}, by {'the echo model' if barge.by_echo_model else 'level'})"
                    f" {'(reply sounding)' if barge.sounding_at_onset else '(not measured)'}"
                    f" false triggers before it {barge.false_triggers}",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            result.diagnostics = {
                "holds": voice.holds,
                "false_holds": voice.false_holds,
                "player_underruns": player.underruns,
                "device_underflows": player.device_underflows,
                "tap_reanchors": voice.playback_tap.reanchors,
            }
            voice.close()
            if connection is not None:
                await connection.close()
            await supervisor.stop()
            player.close()
    return result


def print_voice_report(figures: dict[str, Any]) -> None:
    print(f"voice: llm {figures['llm']}, stt {figures['stt']}, {figures['questions']} spoken questions")
    for key, label in (
        ("voice_to_voice_s", "voice-to-voice (end of speech -> first sound)"),
        ("end_of_speech_detection_s", "end-of-speech detection"),
        ("transcript_after_end_s", "final transcript after end of speech"),
        ("stt_s", "STT time (final transcription)"),
        ("barge_in_stop_s", "barge-in stop (onset -> silence)"),
        ("barge_in_detection_s", "barge-in detection (onset -> player flushed)"),
    ):
        print(f"  {label:48s} median {figures[key]['median']} s  p90 {figures[key]['p90']} s")
    print(f"  {'barge-ins measured':48s} {figures['barge_ins_measured']} of {figures['barge_ins']}")
    print(f"  {'echo false triggers':48s} {figures['echo_false_triggers']}")
    print(f"  {'echo false triggers, barge-in phase':48s} {figures['echo_false_triggers_barge_in_phase']}")
    print(f"  {'WER':48s} {figures['wer'] * 100:.1f}%")
    print(f"  {'output device latency':48s} {figures['output_latency_s']} s")
    print(f"  {'diagnostics':48s} {figures['diagnostics']}")
    if figures["failed"]:
        print(f"  failed questions: {figures['failed']}")
