"""Hand-written stand-ins around ``VoiceInput`` for tests: the connection, the player, the window."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from assistant.audio.playback_tap import PlaybackTap
from assistant.audio.resample import Pcm16
from assistant.net.backend_connection import NotConnected


@dataclass
class Utterance:
    turn_id: int
    audio: list[bytes] = field(default_factory=list)
    pauses: int = 0
    resumes: int = 0
    ended: bool = False
    cancelled: bool = False

    def pcm(self) -> Pcm16:
        return np.frombuffer(b"".join(self.audio), dtype="<i2").astype(np.int16)


class RecordingLink:
    """A ``VoiceLink`` that records what voice input would send to the backend."""

    def __init__(self, *, connected: bool = True) -> None:
        self.connected = connected
        self.utterances: list[Utterance] = []
        self.barge_ins: list[float] = []
        self._next = 1

    def begin_utterance(self) -> int:
        if not self.connected:
            raise NotConnected("Parley is not connected to its backend yet.")
        utterance = Utterance(self._next)
        self._next += 1
        self.utterances.append(utterance)
        return utterance.turn_id

    def _find(self, turn_id: int) -> Utterance:
        return next(u for u in self.utterances if u.turn_id == turn_id)

    def utterance_audio(self, turn_id: int, pcm: bytes) -> None:
        utterance = self._find(turn_id)
        assert not utterance.ended and not utterance.cancelled, "audio after the end"
        utterance.audio.append(pcm)

    def pause_utterance(self, turn_id: int) -> None:
        self._find(turn_id).pauses += 1

    def resume_utterance(self, turn_id: int) -> None:
        self._find(turn_id).resumes += 1

    def end_utterance(self, turn_id: int) -> None:
        self._find(turn_id).ended = True

    def cancel_utterance(self, turn_id: int) -> None:
        self._find(turn_id).cancelled = True

    def barge_in(self, heard_s: float) -> None:
        self.barge_ins.append(heard_s)


class ScriptedPlayer:
    """A ``Playback`` whose reply plays while ``playing`` is set; counts flushes like the real one stops."""

    def __init__(self) -> None:
        self.tap: PlaybackTap | None = None
        self.held = False
        self.playing = False
        self.played = 0.0
        self.flushes = 0

    @property
    def is_playing(self) -> bool:
        return self.playing

    @property
    def played_seconds(self) -> float:
        return self.played

    def flush(self) -> None:
        self.flushes += 1
        self.playing = False
        self.held = False


class RecordingListener:
    """A ``VoiceListener`` that keeps everything it is told."""

    def __init__(self) -> None:
        self.states: list[str] = []
        self.levels: list[float] = []
        self.problems: list[str] = []
        self.barge_ins: list[float] = []

    def on_state(self, state: str) -> None:
        self.states.append(state)

    def on_level(self, dbfs: float) -> None:
        self.levels.append(dbfs)

    def on_problem(self, message: str) -> None:
        self.problems.append(message)

    def on_barge_in(self, heard_s: float) -> None:
        self.barge_ins.append(heard_s)
