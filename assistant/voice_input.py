"""Speaking to Parley: push-to-talk, hands-free listening and barge-in (Qt-free).

``VoiceInput`` owns the microphone while it is in use and a worker thread that
runs every captured block through the ``CapturePipeline`` (resampling, echo
cancellation, voice detection). Decisions are taken on the event loop's thread,
with one exception: when the person starts speaking over Parley in hands-free
mode, the worker silences the player itself at once (no hop to the loop, no
network round trip), then the loop tells the backend how much was heard.

- Push-to-talk: ``press`` opens a voice turn (interrupting a reply that is being
  heard) and streams everything the microphone hears, starting with a short
  pre-roll, until ``release`` ends it. A press with no speech in it is dropped.
- Hands-free: every utterance the voice detector finds becomes a voice turn. When
  a pause inside it reaches ``PAUSE_MS``, the backend hears ``pause`` and starts
  on the answer early; ``resume`` if speech goes on; ``end`` after the configured
  end-of-speech silence.

Everything the connection needs is behind ``VoiceLink`` (``BackendClient`` in the
app, a headless client in the benchmark); what the person sees goes to a
``VoiceListener`` (the Qt adapter).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, Protocol, TypeAlias

from assistant.audio.capture_pipeline import CapturePipeline, CaptureResult
from assistant.audio.device import AudioUnavailable
from assistant.audio.echo_canceller import EchoCanceller, EchoCancellerUnavailable
from assistant.audio.echo_gate import EchoGate
from assistant.audio.microphone import Microphone
from assistant.audio.near_end import NearEndDetector
from assistant.audio.playback_tap import PlaybackTap
from assistant.audio.resample import Pcm16
from assistant.audio.vad import SileroVad, UtteranceSegmenter, VadError
from assistant.net.backend_connection import AskRefused
from backend.protocol import MAX_UTTERANCE_S, VOICE_SAMPLE_RATE

log = logging.getLogger("parley.app.voice")

VoiceState: TypeAlias = Literal["off", "listening", "hearing", "recording"]
"""off: the microphone is closed; listening: hands-free, waiting for speech; hearing: an
utterance is being streamed (hands-free); recording: push-to-talk is held."""

PAUSE_MS: Final = 120
"""A pause this long inside an utterance lets the backend start on the answer."""
HOLD_CONFIRM_S: Final = 0.8
"""A reply paused for sound over it resumes unless the voice detector hears speech within this time."""
PRE_ROLL_S: Final = 0.3
"""Push-to-talk also sends this much audio from just before the press."""
POLL_S: Final = 0.008
LEVEL_INTERVAL_S: Final = 0.05
MAX_PENDING_RESULTS: Final = 500
WORKER_JOIN_S: Final = 2.0
NOTHING_HEARD: Final = "Nothing was heard while the button was held."
NOTHING_SAID: Final = "Nothing was heard; Parley stopped listening."
TOO_LONG: Final = f"A question can be at most {MAX_UTTERANCE_S:.0f} seconds long; what you said so far was sent."
MAX_UTTERANCE_SAMPLES: Final = int(MAX_UTTERANCE_S * VOICE_SAMPLE_RATE)
ONCE_TIMEOUT_S: Final = 8.0


class VoiceLink(Protocol):
    """What voice input needs from the connection to the backend."""

    def begin_utterance(self) -> int:
        """Opens a voice turn; raises ``AskRefused`` with a message for the person."""
        ...

    def utterance_audio(self, turn_id: int, pcm: bytes) -> None: ...

    def pause_utterance(self, turn_id: int) -> None: ...

    def resume_utterance(self, turn_id: int) -> None: ...

    def end_utterance(self, turn_id: int) -> None: ...

    def cancel_utterance(self, turn_id: int) -> None: ...

    def barge_in(self, heard_s: float) -> None:
        """The reply being heard was cut after ``heard_s`` seconds (its sound is already stopped)."""
        ...


class Playback(Protocol):
    """The audio player, as voice input uses it (from the worker thread too: only these)."""

    @property
    def is_playing(self) -> bool: ...

    @property
    def played_seconds(self) -> float: ...

    def flush(self) -> None: ...

    tap: PlaybackTap | None
    held: bool  # the device plays silence without using up the queue


class VoiceListener(Protocol):
    """What the person should see; called on the event loop's thread."""

    def on_state(self, state: VoiceState) -> None: ...

    def on_level(self, dbfs: float) -> None: ...

    def on_problem(self, message: str) -> None:
        """Voice input cannot work as asked (no microphone...); typing still works."""
        ...

    def on_barge_in(self, heard_s: float) -> None: ...


@dataclass(frozen=True)
class VoiceSettings:
    input_device: str = ""
    vad_threshold: float = 0.5
    end_silence_ms: int = 600
    echo_cancellation: bool = True


@dataclass
class _Step:
    """One processed block on its way from the worker to the loop."""

    result: CaptureResult
    barged_in_at: float | None = None  # heard seconds when the worker silenced the player for good
    held_at: float | None = None  # heard seconds when the worker paused the player (to be confirmed)
    done_at: float = 0.0


class VoiceInput:
    """Push-to-talk and hands-free listening over one microphone; see the module docstring."""

    def __init__(
        self,
        link: VoiceLink,
        listener: VoiceListener,
        settings: VoiceSettings,
        *,
        player: Callable[[], Playback | None] = lambda: None,
        microphone_factory: Callable[[str], Microphone] = Microphone,
        scorer_factory: Callable[[], SileroVad] = SileroVad,
        tap: PlaybackTap | None = None,
    ) -> None:
        self._link = link
        self._listener = listener
        self.settings = settings
        self._player = player
        self._microphone_factory = microphone_factory
        self._scorer_factory = scorer_factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._mic: Microphone | None = None
        self._pipeline: CapturePipeline | None = None
        self._tap = tap or PlaybackTap()
        self._worker: threading.Thread | None = None
        self._stop_worker = threading.Event()
        self._steps: deque[_Step] = deque()
        self._pipeline_lock = threading.Lock()  # the worker processes, the loop reads pre-roll and resets
        self._level = -96.0
        self._drain_scheduled = False
        self._last_level = 0.0
        self.hands_free = False
        self._ptt_turn: int | None = None
        self._ptt_heard_speech = False
        self._turn: int | None = None  # the hands-free utterance being streamed
        self._paused = False
        self._state: VoiceState = "off"
        self._hold: tuple[float, float] | None = None  # since when the player is paused, heard seconds
        self.holds = 0  # pauses of the reply for sound over it (worker thread)
        self.false_holds = 0  # of which the voice detector did not confirm speech
        self._once_since: float | None = None  # listening for one question only, since then
        self._sent_turn: int | None = None  # the voice turn whose audio is being counted
        self._sent = 0  # samples sent for it
        self._send_later: list[int] = []  # turns that reached the length limit, to be ended
        self.barge_in_armed = False  # read by the worker: hands-free and no push-to-talk
        self.on_step: Callable[[_Step], None] | None = None  # the benchmark's probe

    # ---- controls (event loop thread) ------------------------------------------------------

    @property
    def state(self) -> VoiceState:
        return self._state

    @property
    def microphone_open(self) -> bool:
        return self._pipeline is not None

    @property
    def playback_tap(self) -> PlaybackTap:
        """What the speakers played (the echo canceller's reference), for measurements."""
        return self._tap

    @property
    def echo_delay_s(self) -> float | None:
        """How long after the playback tap's time a sound reaches the microphone's capture clock, as measured
        on the echo (None before it was); for measurements that compare the two clocks."""
        pipeline = self._pipeline
        return pipeline.echo_delay_s if pipeline is not None else None

    def set_hands_free(self, on: bool) -> bool:
        """Turns hands-free listening on or off; False (and ``on_problem``) if the microphone failed."""
        if on == self.hands_free:
            return True
        if on:
            if not self._open():
                return False
            self.hands_free = True
        else:
            self.hands_free = False
            self._once_since = None
            self._drop_hands_free_utterance()
            if self._ptt_turn is None:
                self._close()
        self._rearm()
        self._set_state()
        return True

    def listen_once(self) -> bool:
        """Takes one spoken question hands-free (e.g. from the tray menu), then stops listening."""
        if self.hands_free:
            return True
        if not self.set_hands_free(True):
            return False
        self._once_since = time.monotonic()
        return True

    def press(self) -> bool:
        """Push-to-talk pressed: interrupts a reply being heard and starts a voice turn."""
        if self._ptt_turn is not None:
            return True
        if not self._open():
            return False
        self._interrupt_playback()
        self._drop_hands_free_utterance()
        try:
            turn = self._link.begin_utterance()
        except AskRefused as exc:
            self._listener.on_problem(str(exc))
            if not self.hands_free:
                self._close()
            return False
        self._ptt_turn = turn
        self._ptt_heard_speech = False
        self._rearm()
        assert self._pipeline is not None
        with self._pipeline_lock:
            pre_roll = self._pipeline.recent(PRE_ROLL_S)
        self._send(turn, pre_roll)
        self._set_state()
        return True

    def release(self) -> None:
        """Push-to-talk released: the voice turn ends (or is dropped if nothing was said)."""
        turn, self._ptt_turn = self._ptt_turn, None
        if turn is None:
            return
        self._drain()  # the steps captured up to the release are taken in first
        self._end_push_to_talk(turn)

    def _end_push_to_talk(self, turn: int) -> None:
        """Ends push-to-talk ``turn`` (already taken off ``_ptt_turn``) with what was sent of it."""
        if self._ptt_heard_speech:
            self._link.end_utterance(turn)
        else:
            self._link.cancel_utterance(turn)
            self._listener.on_problem(NOTHING_HEARD)
        self._reset_voice()
        if not self.hands_free:
            self._close()
        self._rearm()
        self._set_state()

    def apply(self, settings: VoiceSettings) -> None:
        """Uses new settings; an open microphone is reopened with them."""
        if settings == self.settings:
            return
        self.settings = settings
        if self._pipeline is not None:
            hands_free = self.hands_free
            self.release()
            self.set_hands_free(False)
            if hands_free:
                self.set_hands_free(True)

    def close(self) -> None:
        """Stops listening and closes the microphone (bounded wait for the worker)."""
        self._ptt_turn = None
        self.hands_free = False
        self._once_since = None
        self._drop_hands_free_utterance()
        self._close()
        self._set_state()

    # ---- feeding (worker thread, or a test or benchmark directly) ---------------------------

    def open_pipeline(self, input_rate: int) -> CapturePipeline:
        """Builds the capture pipeline for ``input_rate`` (the microphone's rate); raises ``VadError``."""
        gate = EchoGate(self._scorer_factory())
        near_end = NearEndDetector()
        segmenter = UtteranceSegmenter(
            gate, threshold=self.settings.vad_threshold, end_silence_ms=self.settings.end_silence_ms
        )
        echo = EchoCanceller(enabled=False)
        if self.settings.echo_cancellation:
            try:
                echo = EchoCanceller(enabled=True)
            except EchoCancellerUnavailable as exc:
                self._listener.on_problem(str(exc))
        tap = self._tap if echo.enabled else None
        self._pipeline = CapturePipeline(input_rate, segmenter, echo, tap, gate=gate, near_end=near_end)
        self._install_tap()
        return self._pipeline

    def process_block(self, samples: Pcm16, captured_at: float) -> None:
        """Runs one microphone block through the pipeline; thread-safe against the loop.

        In hands-free mode, speech starting while Parley speaks silences the player here.
        """
        pipeline = self._pipeline
        loop = self._loop
        if pipeline is None or loop is None:
            return
        with self._pipeline_lock:
            step = _Step(pipeline.process(samples, captured_at))
        if self.barge_in_armed:
            player = self._player()
            if player is not None and player.is_playing and not player.held:
                if any(e.kind == "start" for e in step.result.events):
                    player.flush()
                    step.barged_in_at = player.played_seconds
                elif step.result.near_end_onset:
                    player.held = True  # silent at once; the loop confirms (or resumes) it
                    self.holds += 1
                    step.held_at = player.played_seconds
        step.done_at = time.monotonic()
        if len(self._steps) >= MAX_PENDING_RESULTS:
            log.warning("voice input is falling behind; dropping captured audio")
            self._steps.popleft()
        self._steps.append(step)
        if self.on_step is not None:
            self.on_step(step)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                loop.call_soon_threadsafe(self._drain)

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that decides (set by ``_open``; tests feeding blocks call it themselves)."""
        self._loop = loop

    # ---- decisions (event loop thread) ----------------------------------------------------

    def _drain(self) -> None:
        self._drain_scheduled = False
        self._install_tap()
        while self._steps:
            step = self._steps.popleft()
            if step.barged_in_at is not None:
                self._hold = None
                self._link.barge_in(step.barged_in_at)
                self._listener.on_barge_in(step.barged_in_at)
            if step.held_at is not None and self._hold is None:
                self._hold = (step.result.captured_at, step.held_at)
                log.info(
                    "paused the reply after %.2f s: someone may be speaking over it (noticed by the %s)",
                    step.held_at,
                    "echo model" if step.result.onset_by_echo_model else "level rule",
                )
            if self._hold is not None and (step.result.speaking or step.result.events):
                self._confirm_hold()
            elif self._hold is not None and step.result.captured_at - self._hold[0] > HOLD_CONFIRM_S:
                self._resume_after_hold()  # timed on the capture clock: what the microphone heard meanwhile
            self._follow(step.result)
            self._end_full_utterances()
        now = time.monotonic()
        if self._once_since is not None and self._turn is None and now - self._once_since > ONCE_TIMEOUT_S:
            self._once_since = None
            self.set_hands_free(False)
            self._listener.on_problem(NOTHING_SAID)
        if now - self._last_level >= LEVEL_INTERVAL_S and self._pipeline is not None:
            self._last_level = now
            self._listener.on_level(self._level)
            self._level = -96.0

    def _follow(self, result: CaptureResult) -> None:
        self._level = max(self._level, result.level_dbfs)  # the loudest since the meter last moved
        if self._ptt_turn is not None:
            if result.speaking or result.events:
                self._ptt_heard_speech = True
            self._send(self._ptt_turn, result.audio)
            return
        if not self.hands_free:
            return
        for event in result.events:
            if event.kind == "start":
                self._start_hands_free_utterance()
            if self._turn is not None:
                self._send(self._turn, event.audio)
            if event.kind == "end" and self._turn is not None:
                self._link.end_utterance(self._turn)
                self._turn = None
                self._set_state()
                if self._once_since is not None:
                    self._once_since = None
                    self.set_hands_free(False)
                    return
        turn = self._turn
        if turn is None:
            return
        if result.pause_ms >= PAUSE_MS and not self._paused:
            self._paused = True
            self._link.pause_utterance(turn)
        elif self._paused and result.speaking and result.pause_ms == 0:
            self._paused = False
            self._link.resume_utterance(turn)

    def _end_full_utterances(self) -> None:
        """An utterance as long as the backend takes ends there: its words are sent, the rest is not."""
        full, self._send_later = self._send_later, []
        for turn in full:
            if turn == self._ptt_turn:
                self._listener.on_problem(TOO_LONG)
                self._ptt_turn = None
                self._end_push_to_talk(turn)  # inside the drain already: no second one
            elif turn == self._turn:
                self._listener.on_problem(TOO_LONG)
                self._link.end_utterance(turn)
                self._turn = None
                self._reset_voice()
                self._set_state()

    def _confirm_hold(self) -> None:
        """The sound over the reply is speech: the paused reply is dropped and interrupted."""
        assert self._hold is not None
        _, heard = self._hold
        self._hold = None
        player = self._player()
        if player is None or not player.held:
            return  # the paused reply was already stopped or replaced (Stop, a new question)
        player.flush()
        self._link.barge_in(heard)
        self._listener.on_barge_in(heard)

    def _resume_after_hold(self) -> None:
        """The sound over the reply was not speech after all: the reply goes on where it paused."""
        self._hold = None
        player = self._player()
        if player is not None and player.held:
            player.held = False
            self.false_holds += 1
            log.info("resumed the reply: the sound over it was not speech")

    def _start_hands_free_utterance(self) -> None:
        if self._turn is not None:  # cannot happen with one segmenter; never leave a turn open
            self._link.cancel_utterance(self._turn)
        try:
            self._turn = self._link.begin_utterance()
        except AskRefused as exc:
            self._listener.on_problem(str(exc))
            self._turn = None
        self._paused = False
        self._set_state()

    def _drop_hands_free_utterance(self) -> None:
        turn, self._turn = self._turn, None
        self._paused = False
        if turn is not None:
            self._link.cancel_utterance(turn)
        self._reset_voice()

    def _reset_voice(self) -> None:
        pipeline = self._pipeline
        if pipeline is not None:
            with self._pipeline_lock:
                pipeline.reset_voice()

    def _interrupt_playback(self) -> None:
        player = self._player()
        if player is not None and player.is_playing:
            player.flush()
            heard = player.played_seconds
            self._link.barge_in(heard)
            self._listener.on_barge_in(heard)

    def _send(self, turn: int, audio: Pcm16) -> None:
        """Streams audio of ``turn``; an utterance that reaches the protocol's limit is ended there."""
        if turn != self._sent_turn:
            self._sent_turn, self._sent = turn, 0
        audio = audio[: MAX_UTTERANCE_SAMPLES - self._sent]
        if audio.size:
            self._sent += audio.size
            self._link.utterance_audio(turn, audio.astype("<i2", copy=False).tobytes())
            if self._sent >= MAX_UTTERANCE_SAMPLES:  # reached now: ended once, after this block
                self._send_later.append(turn)

    def _rearm(self) -> None:
        self.barge_in_armed = self.hands_free and self._ptt_turn is None

    def _set_state(self) -> None:
        state: VoiceState
        if self._ptt_turn is not None:
            state = "recording"
        elif self._turn is not None:
            state = "hearing"
        elif self.hands_free:
            state = "listening"
        else:
            state = "off"
        if state != self._state:
            self._state = state
            self._listener.on_state(state)

    def _install_tap(self) -> None:
        player = self._player()
        wanted = self._tap if self._pipeline is not None and self._pipeline.tap is not None else None
        if player is not None and player.tap is not wanted:
            player.tap = wanted

    # ---- the microphone and its worker ------------------------------------------------------

    def _open(self) -> bool:
        if self._pipeline is not None:
            return True
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._listener.on_problem("Voice input needs the app's event loop.")
            return False
        mic = self._microphone_factory(self.settings.input_device)
        try:
            mic.open()
            self.open_pipeline(mic.sample_rate)
        except AudioUnavailable as exc:
            log.warning("microphone unavailable: %s", exc)
            self._listener.on_problem(exc.user_message)
            mic.close()
            return False
        except VadError as exc:
            self._listener.on_problem(f"{exc} You can still type your questions.")
            mic.close()
            return False
        self._mic = mic
        self._stop_worker.clear()
        self._worker = threading.Thread(target=self._capture, args=(mic,), name="parley-mic", daemon=True)
        self._worker.start()
        return True

    def _close(self) -> None:
        worker, self._worker = self._worker, None
        self._stop_worker.set()
        if worker is not None:
            worker.join(WORKER_JOIN_S)
            if worker.is_alive():
                log.error("the microphone worker did not stop within %.0f s", WORKER_JOIN_S)
        mic, self._mic = self._mic, None
        if mic is not None:
            mic.close()
        if self._hold is not None:
            self._resume_after_hold()
        self._pipeline = None
        self._steps.clear()
        self._install_tap()
        self._listener.on_level(-96.0)

    def _capture(self, mic: Microphone) -> None:
        """Worker thread: reads the microphone and processes what it captured until told to stop."""
        try:
            while not self._stop_worker.is_set():
                block = mic.read()
                if block is None:
                    time.sleep(POLL_S)
                    continue
                self.process_block(*block)
        except Exception:  # a bug here must not go unnoticed, nor take the app down
            log.exception("the microphone worker failed")
            loop = self._loop
            if loop is not None:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._listener.on_problem, "Voice input stopped after an error.")
