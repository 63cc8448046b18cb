"""The microphone: a sounddevice input stream whose callback only copies samples into a ring.

The callback runs on PortAudio's thread and never blocks: it writes the block
into a bounded ``PcmRingBuffer`` (what does not fit is dropped and counted) and
notes when the block's first sample was captured (PortAudio's ADC time, moved
onto ``time.monotonic``). A consumer thread calls ``read`` to take everything new
with the capture time of its first sample. The stream opens at 16 kHz when the
device allows it (the engines' rate), else at the device's own rate; the consumer
resamples then.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import numpy as np

from assistant.audio.device import AudioUnavailable, load_sounddevice, parse_device
from assistant.audio.ring_buffer import PcmRingBuffer, Samples

log = logging.getLogger("parley.app.mic")

PREFERRED_RATE: Final = 16000
BUFFER_SECONDS: Final = 5.0
BLOCK_SECONDS: Final = 0.01
TYPING_STILL_WORKS: Final = "You can still type your questions."


def no_microphone_message(configured: str) -> str:
    if parse_device(configured) is None:
        return f"No microphone was found, or the system refused access to it. {TYPING_STILL_WORKS}"
    return (
        f"The microphone {configured!r} from the settings was not found "
        f'(set audio.input_device to "" for the system default). {TYPING_STILL_WORKS}'
    )


class Microphone:
    """One input stream feeding a bounded ring; see the module docstring. ``open``/``close`` from one thread."""

    def __init__(self, device: str = "", *, buffer_seconds: float = BUFFER_SECONDS) -> None:
        self._device = device
        self._buffer_seconds = buffer_seconds
        self._stream: Any = None
        self._ring: PcmRingBuffer | None = None
        self._rate = 0
        self._last_block: tuple[int, float] = (0, 0.0)  # ring position of a block's first sample, its time
        self.overflows = 0

    @property
    def is_open(self) -> bool:
        return self._stream is not None

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def dropped_samples(self) -> int:
        return self._ring.dropped_samples if self._ring is not None else 0

    def open(self) -> None:
        """Starts capturing; raises ``AudioUnavailable`` with a clear message when it cannot."""
        if self._stream is not None:
            return
        sd = load_sounddevice()
        device = parse_device(self._device)
        errors: list[str] = []
        for rate in self._rates(sd, device):
            ring = PcmRingBuffer(max(1, int(self._buffer_seconds * rate)))
            self._ring = ring
            self._rate = rate
            try:
                stream = sd.InputStream(
                    samplerate=rate,
                    channels=1,
                    dtype="int16",
                    device=device,
                    blocksize=int(rate * BLOCK_SECONDS),
                    callback=self._callback,
                )
                stream.start()
            except (sd.PortAudioError, ValueError) as exc:
                errors.append(f"{rate} Hz: {exc}")
                continue
            self._stream = stream
            log.info("microphone open: %s at %d Hz, latency %.0f ms", stream.device, rate, 1000 * stream.latency)
            return
        self._ring = None
        raise AudioUnavailable(no_microphone_message(self._device), "; ".join(errors))

    def close(self) -> None:
        """Stops capturing at once; unread samples are dropped."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.abort(ignore_errors=True)
            stream.close(ignore_errors=True)
            log.info("microphone closed")

    def read(self) -> tuple[Samples, float] | None:
        """Consumer side: every sample captured since the last read, and when the first was captured."""
        ring = self._ring
        if ring is None or ring.available == 0:
            return None
        first = max(ring.read_samples, 0)
        out = np.empty(ring.available, dtype=np.int16)
        taken = ring.read_into(out)
        position, captured = self._last_block
        return out[:taken], captured + (first - position) / self._rate

    def _rates(self, sd: Any, device: int | str | None) -> list[int]:
        rates = [PREFERRED_RATE]
        try:
            info = sd.query_devices(device, "input")
            native = int(info["default_samplerate"])
        except (sd.PortAudioError, ValueError, KeyError, TypeError) as exc:
            raise AudioUnavailable(no_microphone_message(self._device), str(exc)) from exc
        if native != PREFERRED_RATE:
            rates.append(native)
        return rates

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio thread: copy the block into the ring and note its capture time; never blocks."""
        now = time.monotonic()
        if status.input_overflow:
            self.overflows += 1
        ring = self._ring
        if ring is None:
            return
        try:
            behind = float(time_info.currentTime) - float(time_info.inputBufferAdcTime)
        except (AttributeError, TypeError, ValueError):
            behind = -1.0
        if not 0.0 <= behind < 1.0:
            behind = frames / self._rate
        self._last_block = (ring.written_samples, now - behind)
        ring.write(indata[:, 0])
