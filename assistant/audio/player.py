"""Plays streamed int16 mono PCM through a sounddevice output stream.

Qt-free: the app wraps it in a Qt adapter, the benchmark uses it directly. All
methods are called from one thread (the asyncio loop's); the device callback runs
on PortAudio's thread and only touches the ring buffer and the current
``StreamState``. The output stream stays open between replies (silence when
idle), so a new reply starts without the cost of opening the device.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np

from assistant.audio.device import TEXT_ONLY, AudioUnavailable, load_sounddevice, no_device_message, parse_device
from assistant.audio.playback_state import StreamState, fill_block
from assistant.audio.playback_tap import PlaybackTap
from assistant.audio.ring_buffer import PcmRingBuffer, Samples

__all__ = ["AudioPlayer", "AudioUnavailable"]

log = logging.getLogger("parley.app.audio")

BUFFER_SECONDS = 30.0
# PortAudio's "low" latency (about 9 ms here) underflows all the time through the ALSA
# pulse plugin; 50 ms plays cleanly and still lets a flush silence the speaker at once.
DEVICE_LATENCY_S = 0.05
DEVICE_STALL_S = 3.0
"""Audio queued but no block asked for by the device for this long: the device stopped responding."""
DEVICE_FAILED_MESSAGE = (
    f"The sound output stopped working during playback (the device failed or was removed). {TEXT_ONLY}"
)


class AudioPlayer:
    """One output stream fed from a bounded ring buffer; see the module docstring."""

    def __init__(
        self,
        device: str | None = "",
        *,
        buffer_seconds: float = BUFFER_SECONDS,
        latency_s: float = DEVICE_LATENCY_S,
    ) -> None:
        self._device = device or ""
        self._buffer_seconds = buffer_seconds
        self._latency_s = latency_s
        self._ring: PcmRingBuffer | None = None
        self._stream: Any = None  # sounddevice.OutputStream, typed loosely: imported lazily
        self._stream_rate = 0
        self._state: StreamState | None = None
        self._device_underflows = 0
        self._underruns_of_past_streams = 0
        self.tap: PlaybackTap | None = None
        """When set, every block handed to the device is copied there (the echo canceller's reference)."""
        self._tap_rate = 0
        self.held = False
        """Set from any thread: the device plays silence without using up the queue (a possible barge-in)."""
        self._device_gone = False  # set on PortAudio's thread when the stream ends by itself (issue 6)
        self._last_block = time.monotonic()

    # ---- stream lifecycle -----------------------------------------------------------

    def open(self, sample_rate: int) -> None:
        """Opens the device now (it is otherwise opened by ``begin_stream``); raises ``AudioUnavailable``."""
        if self._stream is None or sample_rate != self._stream_rate:
            self._open(sample_rate)

    def begin_stream(self, sample_rate: int) -> None:
        """Starts a new stream at ``sample_rate``; what is left of the previous one is dropped.

        Opens (or, when the rate changes, reopens) the device; raises ``AudioUnavailable``.
        """
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        self.open(sample_rate)
        assert self._ring is not None
        self._ring.flush()
        self.held = False
        if self._state is not None:
            self._underruns_of_past_streams += self._state.underruns
        self._state = StreamState(sample_rate=sample_rate, first_sample=self._ring.written_samples)

    def feed(self, pcm: bytes | Samples) -> int:
        """Queues samples of the current stream; returns how many were taken. Never blocks.

        Samples arriving with no stream in progress (none begun, ended, or flushed) are ignored.
        """
        state, ring = self._state, self._ring
        if state is None or state.ended or ring is None:
            return 0
        samples = np.frombuffer(pcm, dtype=np.int16) if isinstance(pcm, bytes | bytearray) else pcm
        taken = ring.write(samples)
        if taken < len(samples):
            log.warning("audio buffer full: dropped %d samples", len(samples) - taken)
        return taken

    def end_stream(self) -> None:
        """Marks that no more data comes for this stream, so running dry is the end, not an underrun."""
        if self._state is not None:
            self._state.ended = True

    def flush(self) -> None:
        """Drops everything queued; the device plays silence from its next block on."""
        self.held = False
        if self._ring is not None:
            self._ring.flush()
        if self._state is not None:
            self._state.ended = True

    async def wait_drained(self, timeout_s: float) -> bool:
        """Waits until the stream's end was handed to the device and had time to sound.

        Returns False if the stream has not ended and drained within ``timeout_s`` seconds.
        Cancelling just stops the wait; playback goes on.
        """
        deadline = time.monotonic() + timeout_s
        while not self.drained:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        tail = min(self.output_latency, max(0.0, deadline - time.monotonic()))
        if tail > 0:
            await asyncio.sleep(tail)
        return True

    def close(self) -> None:
        """Stops and closes the device stream at once (queued audio is dropped)."""
        stream, self._stream = self._stream, None
        self._device_gone = False
        if self._state is not None:
            self._underruns_of_past_streams += self._state.underruns
        self._state = None
        if stream is not None:
            stream.abort(ignore_errors=True)
            stream.close(ignore_errors=True)
            log.info("audio output closed")

    # ---- what the app and the benchmark read ---------------------------------------

    @property
    def is_open(self) -> bool:
        return self._stream is not None

    @property
    def failure(self) -> str | None:
        """Why the open device stopped playing by itself (it failed, vanished or hangs), or None (issue 6)."""
        stream = self._stream
        if stream is None:
            return None
        if self._device_gone or not stream.active:
            return DEVICE_FAILED_MESSAGE
        if self.is_playing and time.monotonic() - self._last_block > DEVICE_STALL_S:
            return DEVICE_FAILED_MESSAGE
        return None

    @property
    def drained(self) -> bool:
        """No stream in progress, or its end was announced and every sample was handed over."""
        state, ring = self._state, self._ring
        return state is None or ring is None or (state.ended and ring.available == 0)

    @property
    def is_playing(self) -> bool:
        """Samples of the current stream are being heard (started and not yet drained)."""
        state = self._state
        return state is not None and state.started and not self.drained

    @property
    def sample_rate(self) -> int:
        return self._state.sample_rate if self._state is not None else self._stream_rate

    @property
    def underruns(self) -> int:
        """Underruns over the player's life (see ``StreamState``); subtract to count per reply."""
        current = self._state.underruns if self._state is not None else 0
        return self._underruns_of_past_streams + current

    @property
    def samples_played(self) -> int:
        """Samples of the current (or last) stream handed to the device."""
        return self._state.samples_played if self._state is not None else 0

    @property
    def played_seconds(self) -> float:
        state = self._state
        return state.samples_played / state.sample_rate if state is not None else 0.0

    @property
    def first_audio_monotonic(self) -> float | None:
        """``time.monotonic()`` when the stream's first sample was handed to the device."""
        return self._state.first_audio_monotonic if self._state is not None else None

    @property
    def queued_seconds(self) -> float:
        ring = self._ring
        return ring.available / self._stream_rate if ring is not None and self._stream_rate else 0.0

    @property
    def dropped_samples(self) -> int:
        """Samples lost because the buffer was full (over the player's life)."""
        return self._ring.dropped_samples if self._ring is not None else 0

    @property
    def device_underflows(self) -> int:
        """Blocks the device itself reported as late (over the player's life)."""
        return self._device_underflows

    @property
    def output_latency(self) -> float:
        """The device's reported output latency in seconds (0 when closed)."""
        stream = self._stream
        return float(stream.latency) if stream is not None else 0.0

    # ---- device ----------------------------------------------------------------------

    def _open(self, sample_rate: int) -> None:
        self.close()
        sd = load_sounddevice()
        ring = PcmRingBuffer(max(1, int(self._buffer_seconds * sample_rate)))
        self._ring = ring
        try:
            self._tap_rate = sample_rate
            stream = sd.OutputStream(
                samplerate=sample_rate,
                channels=1,
                dtype="int16",
                device=parse_device(self._device),
                latency=self._latency_s,
                callback=self._callback,
                finished_callback=self._on_finished,
            )
            self._device_gone = False
            self._last_block = time.monotonic()
            stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise AudioUnavailable(no_device_message(self._device), str(exc)) from exc
        self._stream = stream
        self._stream_rate = sample_rate
        log.info(
            "audio output open: %s at %d Hz, latency %.0f ms",
            stream.device,
            sample_rate,
            1000 * float(stream.latency),
        )

    def _on_finished(self) -> None:
        """PortAudio thread: the stream ended; unless ``close()`` is under way, the device gave up."""
        if self._stream is not None:
            self._device_gone = True

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio thread: fill one block without blocking."""
        self._last_block = time.monotonic()
        if status.output_underflow:
            self._device_underflows += 1
            if self.tap is not None:
                self.tap.disruptions += 1  # the played timeline slipped: the echo canceller must re-learn
        ring = self._ring
        if ring is None:
            outdata.fill(0)
            return
        if self.held:
            outdata.fill(0)
        else:
            fill_block(outdata[:, 0], ring, self._state)
        tap = self.tap
        if tap is not None and self._tap_rate:
            try:
                tap.write(outdata[:, 0], self._tap_rate, dac_monotonic(time_info, self._latency_s))
            except Exception:  # never let the reference copy stop the sound
                log.exception("the playback tap failed; echo cancellation loses its reference")
                self.tap = None


def dac_monotonic(time_info: Any, fallback_latency_s: float) -> float:
    """``time.monotonic()`` at which the block of this callback starts sounding (PortAudio's DAC time)."""
    now = time.monotonic()
    try:
        ahead = float(time_info.outputBufferDacTime) - float(time_info.currentTime)
    except (AttributeError, TypeError, ValueError):
        ahead = -1.0
    if not 0.0 <= ahead < 1.0:  # some host APIs report nothing useful
        ahead = fallback_latency_s
    return now + ahead
