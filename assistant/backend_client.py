"""``BackendClient``: the one object in the app that talks to the backend.

It owns the connection (and, in embedded mode, the supervisor of the backend child
process), keeps it open (reconnecting with back-off), and turns what arrives into
typed Qt signals. Audio frames skip Qt entirely and go straight to the player.
Widgets call its plain methods (``ask``, ``stop``), which never block or await.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from PySide6.QtCore import QObject, Signal

from assistant.audio.device import AudioUnavailable
from assistant.audio.playback_monitor import PlaybackMonitor
from assistant.audio.player import AudioPlayer
from assistant.backend_supervisor import TOKEN_ENV, BackendStartError, BackendSupervisor
from assistant.conversations_client import ConversationsClient
from assistant.net.backend_connection import AskRefused, BackendConnection, ConnectionFailed, NotConnected
from assistant.net.resume import ResumePoint
from assistant.settings_model import configure_message, has_api_keys
from backend.config import Config
from backend.protocol import (
    SERVER_SESSION_MESSAGES,
    AudioEnd,
    AudioFrame,
    AudioStart,
    Error,
    Message,
    Status,
    TextDelta,
    Timings,
    Transcript,
    TurnDone,
    TurnStarted,
    UtteranceEnd,
    UtterancePause,
    UtteranceResume,
)

log = logging.getLogger("parley.app.client")

DEFAULT_SAMPLE_RATE: Final = 22050
CONNECT_TIMEOUT_S: Final = 10.0
MAX_RETRY_DELAY_S: Final = 30.0
SHUTDOWN_TIMEOUT_S: Final = 10.0
_FATAL_CONNECT_CODES: Final = frozenset({"auth", "version"})
LOST_REPLY: Final = "The connection to the backend was lost during the reply."
RESUMING_REPLY: Final = "The connection to the backend dropped during the reply; reconnecting to continue it."


class BackendClient(QObject):
    """Owns the connection to the backend and reports it through typed signals.

    ``connection_changed`` states: starting, connecting, connected, reconnecting,
    failed (gave up; ``detail`` says why), stopped. ``status_changed`` carries the
    backend's Status (loading / ready / error) with progress 0..1, or -1 if unknown.
    """

    connection_changed = Signal(str, str)
    status_changed = Signal(str, str, float)
    turn_started = Signal(int)
    text_delta = Signal(int, str)
    audio_started = Signal(int, int)
    turn_done = Signal(int, str, str, object)  # turn id, status, text, Timings
    error = Signal(str, str)  # code, message for people
    backend_notice = Signal(str)
    audio_unavailable = Signal(str)
    playback_changed = Signal(bool)
    config_changed = Signal(object)  # Config: applied from the settings dialog (issue 4)
    transcript = Signal(int, str, bool)  # turn id, what the person said, final (issue 3)

    def __init__(
        self,
        config: Config,
        *,
        backend_args: Sequence[str] = (),
        backend_command: Sequence[str] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._config = config
        self._remote_url = config.backend.url.strip()
        self._remote_token = config.backend.token or os.environ.get(TOKEN_ENV, "")
        self._supervisor: BackendSupervisor | None = None
        if not self._remote_url:
            self._supervisor = BackendSupervisor(
                backend_args,
                command=backend_command,
                on_ready=self._on_backend_ready,
                on_restarting=self._on_backend_restarting,
                on_failed=self._on_backend_failed,
            )
        self._connection: BackendConnection | None = None
        self._player: AudioPlayer | None = None
        self._monitor: PlaybackMonitor | None = None
        self._task: asyncio.Task[None] | None = None
        self._connection_lost = asyncio.Event()
        self._backend_moved = asyncio.Event()
        self._backend_gone = False
        self._turn_id: int | None = None
        self._reply_parts: list[str] = []
        self._status: Status | None = None
        self._connection_state = "stopped"
        self._lost_reason = ""
        self._audio_turn: int | None = None  # the turn whose audio the player has (issue 3)
        self._stt_s = 0.0  # the current voice turn's transcription time, added to its timings
        self.conversations = ConversationsClient(self._send_request, self)  # stored conversations (issue 4)
        self._engines_configured = False
        # resuming the session when the link drops (issue 6)
        self._session_id: str | None = None
        self._resume_pending = False
        self._next_turn = 1

    # ---- for widgets -----------------------------------------------------------

    @property
    def connection_state(self) -> str:
        return self._connection_state

    @property
    def backend_status(self) -> Status | None:
        return self._status

    @property
    def current_turn(self) -> int | None:
        return self._turn_id

    @property
    def audio_enabled(self) -> bool:
        return self._player is not None

    @property
    def player(self) -> AudioPlayer | None:
        return self._player

    @property
    def is_playing(self) -> bool:
        return self._monitor is not None and self._monitor.playing

    def start(self) -> None:
        """Opens the sound output and starts connecting (in the background)."""
        if self._task is not None:
            return
        self._open_audio()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="parley-backend-client")

    def ask(self, text: str) -> int:
        """Sends a question (a running reply is stopped first); returns its turn id.

        Raises ``AskRefused`` (``NotConnected``, ``MessageTooLong``) with a clear message.
        """
        connection = self._connection
        if connection is None or not connection.is_open:
            raise NotConnected(self._not_connected_reason())
        speak = self._player is not None and self._config.audio.speak_replies
        turn_id = connection.ask(text, speak=speak)  # raises before anything changes
        # The backend cancels the running turn itself when a new Ask arrives.
        self._silence()
        self._end_turn_locally("cancelled")
        self._turn_id = turn_id
        self._reply_parts = []
        return turn_id

    def stop(self) -> None:
        """Silences playback at once, then leaves the current turn and asks the backend to cancel it.

        While a reply is being heard, the backend is told how much was heard (a barge-in).
        """
        heard_s = self._player.played_seconds if self._player is not None and self._player.is_playing else None
        self._silence()
        if heard_s is not None and self._audio_turn is not None:
            self.barge_in(heard_s)
            return
        if self._connection is not None:
            self._connection.cancel()
        self._end_turn_locally("cancelled")

    async def shutdown(self) -> None:
        """Stops playback, closes the connection and stops the backend child; bounded in time."""
        self.stop()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=SHUTDOWN_TIMEOUT_S)
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        if self._supervisor is not None:
            await self._supervisor.stop()
        if self._player is not None:
            self._player.close()
        self._set_connection("stopped", "")

    # ---- ConnectionSink (called on the loop's thread) ---------------------------------

    def on_message(self, message: Message) -> None:
        match message:
            case Status():
                self._status = message
                progress = -1.0 if message.progress is None else float(message.progress)
                self.status_changed.emit(message.state, message.detail, progress)
            case TurnStarted() if message.turn_id == self._turn_id:
                self.turn_started.emit(message.turn_id)
                self.conversations.on_turn_started()
            case Transcript() if message.turn_id == self._turn_id:
                if message.final:
                    self._stt_s = message.stt_s
                self.transcript.emit(message.turn_id, message.text, message.final)
            case TextDelta() if message.turn_id == self._turn_id:
                self._reply_parts.append(message.text)
                self.text_delta.emit(message.turn_id, message.text)
            case AudioStart() if message.turn_id == self._turn_id:
                self._begin_audio(message)
            case AudioEnd() if message.turn_id == self._turn_id:
                if self._player is not None:
                    self._player.end_stream()
            case TurnDone() if message.turn_id == self._turn_id:
                if self._player is not None:
                    self._player.end_stream()
                self._turn_id = None
                shown = "".join(self._reply_parts)
                text = message.text if message.status == "completed" and message.text else shown
                timings = replace(message.timings, stt_s=self._stt_s) if self._stt_s else message.timings
                self._stt_s = 0.0
                self.turn_done.emit(message.turn_id, message.status, text, timings)
                self.conversations.on_turn_finished()
            case _ if isinstance(message, SERVER_SESSION_MESSAGES):
                self.conversations.on_message(message)
            case Error():
                self.error.emit(message.code, message.message)
                if message.turn_id is not None and message.turn_id == self._turn_id:
                    self._end_turn_locally("error")
            case _:
                pass

    def on_audio(self, frame: AudioFrame) -> None:
        if self._player is not None:
            self._player.feed(frame.pcm)

    def on_closed(self, reason: str) -> None:
        self._lost_reason = reason
        self._connection_lost.set()

    # ---- internals -----------------------------------------------------------------

    def _silence(self) -> None:
        if self._player is not None:
            self._player.flush()
        if self._monitor is not None:
            self._monitor.refresh()

    def _open_audio(self) -> None:
        if not self._config.audio.speak_replies:
            return
        player = AudioPlayer(self._config.audio.output_device)
        try:
            player.open(DEFAULT_SAMPLE_RATE)
        except AudioUnavailable as exc:
            log.warning("audio output unavailable: %s", exc)
            self.audio_unavailable.emit(exc.user_message)
            return
        self._player = player
        self._monitor = PlaybackMonitor(player, self)
        self._monitor.playing_changed.connect(self.playback_changed)
        self._monitor.device_failed.connect(self._on_device_failed)  # issue 6

    def _begin_audio(self, message: AudioStart) -> None:
        self._audio_turn = message.turn_id
        if self._player is not None:
            try:
                self._player.begin_stream(message.sample_rate)
            except AudioUnavailable as exc:
                log.warning("audio output failed: %s", exc)
                self._drop_audio()
                self.audio_unavailable.emit(exc.user_message)
            else:
                assert self._monitor is not None
                self._monitor.watch()
        self.audio_started.emit(message.turn_id, message.sample_rate)

    def _drop_audio(self) -> None:
        """Goes text-only: closes the player (later questions ask for no speech)."""
        if self._monitor is not None:
            self._monitor.deleteLater()
            self._monitor = None
        if self._player is not None:
            self._player.close()
            self._player = None
        self.playback_changed.emit(False)

    def _end_turn_locally(self, status: str) -> None:
        turn_id, self._turn_id = self._turn_id, None
        if turn_id is not None:
            self.turn_done.emit(turn_id, status, "".join(self._reply_parts), Timings())

    def _set_connection(self, state: str, detail: str) -> None:
        self._connection_state = state
        self.connection_changed.emit(state, detail)

    def _not_connected_reason(self) -> str:
        if self._connection_state == "failed":
            return "Parley has no working backend (see the message above)."
        return "Parley is not connected to its backend yet; please wait a moment and try again."

    def _target(self) -> tuple[str | None, str]:
        if self._supervisor is None:
            return self._remote_url, self._remote_token
        return self._supervisor.url, self._supervisor.token

    async def _run(self) -> None:
        """Starts the backend (embedded mode) and keeps a connection open; on cancel, closes it."""
        if self._supervisor is not None:
            self._set_connection("starting", "Starting the backend…")
            try:
                await self._supervisor.start()
            except BackendStartError as exc:
                self._set_connection("failed", str(exc))
                self.error.emit("backend", str(exc))
                return
        failures = 0
        while not self._backend_gone:
            url, token = self._target()
            if url is None:
                self._backend_moved.clear()
                await self._backend_moved.wait()
                continue
            if await self._connect_and_serve(url, token):
                failures = 0
                continue
            failures += 1
            if self._connection_state == "failed":
                return
            delay = min(MAX_RETRY_DELAY_S, 2.0 ** (failures - 1))
            self._set_connection("reconnecting", f"Trying again in {delay:.0f} s.")
            self._backend_moved.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._backend_moved.wait(), delay)

    async def _connect_and_serve(self, url: str, token: str) -> bool:
        """Connects and waits until the link drops; False if it could not connect."""
        self._set_connection("connecting", f"Connecting to {url}")
        connection = BackendConnection(url, token, self, resume=self._resume_point())
        try:
            await connection.connect(CONNECT_TIMEOUT_S)
        except ConnectionFailed as exc:
            self._give_up_resuming()
            if self._supervisor is None or self._supervisor.url == url:
                self.error.emit(exc.code, str(exc))
            if exc.code in _FATAL_CONNECT_CODES:
                self._set_connection("failed", str(exc))
            return False
        self._connection = connection
        self._connection_lost.clear()
        self._set_connection("connected", url)
        self._on_connected(resumed=self._take_session(connection))
        try:
            await self._connection_lost.wait()
        finally:
            self._connection = None
            self._next_turn = connection.next_turn
            await connection.close()
        if self._turn_id is not None and self._session_id is not None:
            self._resume_pending = True  # the backend keeps the session: the reply goes on after reconnecting
            self.backend_notice.emit(RESUMING_REPLY)
        elif self._turn_id is not None:
            self.error.emit("connection", LOST_REPLY)
            self._end_turn_locally("error")
        self._set_connection("reconnecting", f"The connection to the backend was lost ({self._lost_reason}).")
        if self._supervisor is not None:
            # The child may be dying: give the supervisor a moment to report a restart.
            self._backend_moved.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._backend_moved.wait(), 1.0)
        return True

    # ---- supervisor callbacks ------------------------------------------------------

    def _on_backend_ready(self, url: str) -> None:
        self.backend_notice.emit("The backend was restarted.")
        self._backend_moved.set()

    def _on_backend_restarting(self, reason: str) -> None:
        self._give_up_resuming()  # the process that held the session is gone (issue 6)
        self.backend_notice.emit(reason)
        self._set_connection("reconnecting", reason)
        self._backend_moved.set()

    def _on_backend_failed(self, message: str) -> None:
        self._backend_gone = True
        self._set_connection("failed", message)
        self.error.emit("backend", message)
        self._backend_moved.set()

    # ---- stored conversations and live settings (issue 4) -------------------------------

    @property
    def config(self) -> Config:
        return self._config

    def regenerate(self) -> int:
        """Asks for the current conversation's last reply again; returns the new turn id.

        Raises ``AskRefused`` (``NotConnected``) with a clear message.
        """
        connection = self._connection
        if connection is None or not connection.is_open:
            raise NotConnected(self._not_connected_reason())
        speak = self._player is not None and self._config.audio.speak_replies
        turn_id = connection.regenerate(speak=speak)
        self._silence()
        self._end_turn_locally("cancelled")
        self._turn_id = turn_id
        self._reply_parts = []
        return turn_id

    def apply_config(self, config: Config) -> None:
        """Uses new settings now: re-opens the sound output if it changed and sends the engine settings.

        ``config_changed`` tells the rest of the app (microphone, shortcuts). Never blocks.
        """
        old, self._config = self._config, config
        was, now = old.audio, config.audio
        if (was.output_device, was.speak_replies) != (now.output_device, now.speak_replies):
            self._silence()
            self._drop_audio()
            self._open_audio()
        self._engines_configured = True
        self._send_engine_settings()
        self.config_changed.emit(config)

    def _send_request(self, message: Message) -> None:
        connection = self._connection
        if connection is None or not connection.is_open:
            raise NotConnected(self._not_connected_reason())
        connection.send_request(message)

    def _send_engine_settings(self) -> None:
        try:
            self._send_request(configure_message(self._config))
        except AskRefused:
            log.info("settings will be sent when the backend is connected")

    def _on_connected(self, resumed: bool = False) -> None:
        """Refreshes the conversations; sends the engine settings when the backend needs them.

        They are sent after the person applied settings (a restarted backend must get them
        again), and to the embedded backend when they hold API keys, which only the app has.
        A resumed session still has its conversation open: only the list is refreshed.
        """
        if resumed:
            self.conversations.refresh()
        else:
            self.conversations.on_connected()
        if self._engines_configured or (self._supervisor is not None and has_api_keys(self._config)):
            self._send_engine_settings()

    # ---- spoken questions (issue 3): the ``VoiceLink`` of ``VoiceInput`` -----------------

    @property
    def voice_available(self) -> bool:
        """The backend can recognize speech (its status names a recognizer)."""
        return self._status is not None and self._status.state == "ready" and bool(self._status.stt)

    def begin_utterance(self) -> int:
        """Opens a voice turn (a running reply is stopped first); returns its turn id.

        Raises ``AskRefused`` (``NotConnected``) with a clear message.
        """
        connection = self._connection
        if connection is None or not connection.is_open:
            raise NotConnected(self._not_connected_reason())
        speak = self._player is not None and self._config.audio.speak_replies
        turn_id = connection.start_utterance(speak=speak)
        self._silence()
        self._end_turn_locally("cancelled")
        self._turn_id = turn_id
        self._reply_parts = []
        return turn_id

    def utterance_audio(self, turn_id: int, pcm: bytes) -> None:
        if self._connection is not None:
            self._connection.send_utterance_audio(turn_id, pcm)

    def pause_utterance(self, turn_id: int) -> None:
        if self._connection is not None:
            self._connection.send_utterance_control(UtterancePause(turn_id=turn_id))

    def resume_utterance(self, turn_id: int) -> None:
        if self._connection is not None:
            self._connection.send_utterance_control(UtteranceResume(turn_id=turn_id))

    def end_utterance(self, turn_id: int) -> None:
        if self._connection is not None:
            self._connection.send_utterance_control(UtteranceEnd(turn_id=turn_id))

    def cancel_utterance(self, turn_id: int) -> None:
        """Drops a voice turn that should not become a question (nothing was said)."""
        if turn_id != self._turn_id:
            return
        if self._connection is not None:
            self._connection.cancel()
        self._turn_id = None  # no reply was shown for it: nothing to mark

    def barge_in(self, heard_s: float) -> None:
        """The person spoke over the reply, whose sound is already stopped: interrupt it.

        The backend keeps the ``heard_s`` seconds of the reply that were heard, also when
        the reply's text was complete and only its audio was still playing.
        """
        self._silence()
        audio_turn, self._audio_turn = self._audio_turn, None
        if self._connection is not None and audio_turn is not None:
            self._connection.interrupt(heard_s, turn_id=audio_turn)
        if self._turn_id is not None and self._turn_id == audio_turn:
            self._end_turn_locally("interrupted")
        elif self._turn_id is not None:
            if self._connection is not None:
                self._connection.cancel()
            self._end_turn_locally("cancelled")

    # ---- server mode (issue 6): resuming after the link dropped, a failing sound device ------------

    def _resume_point(self) -> ResumePoint | None:
        """Where to take the session back from: the reply being received and how much of it arrived."""
        if self._session_id is None:
            return None
        turn_id = self._turn_id if self._resume_pending else None
        received = len("".join(self._reply_parts)) if turn_id is not None else 0
        return ResumePoint(self._session_id, turn_id, received, self._next_turn)

    def _take_session(self, connection: BackendConnection) -> bool:
        """Notes the session of a new connection; True if it took the old one back.

        A reply that was waiting for the link to come back ends with an error when it did not.
        """
        session = connection.session
        self._session_id = session.session_id if session is not None else None
        resumed = session is not None and session.resumed
        if self._resume_pending and self._turn_id is not None:
            if resumed:
                self.backend_notice.emit("Reconnected to the backend: the reply goes on.")
            else:
                self.error.emit("connection", LOST_REPLY)
                self._end_turn_locally("error")
        self._resume_pending = False
        return resumed

    def _give_up_resuming(self) -> None:
        """Reconnecting failed: a reply that was waiting for it ends with an error now."""
        if self._resume_pending and self._turn_id is not None:
            self.error.emit("connection", LOST_REPLY)
            self._end_turn_locally("error")
        self._resume_pending = False

    def _on_device_failed(self, message: str) -> None:
        """The sound output failed while it played: go text-only; the reply's text goes on."""
        log.warning("audio output failed during playback: %s", message)
        self._silence()
        self._drop_audio()
        self.audio_unavailable.emit(message)
