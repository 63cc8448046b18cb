"""The numpy resampler: pitch and level kept, no aliasing, streaming equals one-shot."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.audio.resample import Resampler, downmix_to_mono, resample

Pcm16 = npt.NDArray[np.int16]


def tone(frequency: float, rate: int, seconds: float = 1.0, amplitude: float = 10000.0) -> Pcm16:
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(np.sin(2 * np.pi * frequency * t) * amplitude).astype(np.int16)


def peak_frequency(samples: Pcm16, rate: int) -> float:
    middle = samples[rate // 10 : -rate // 10].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(middle.size)))
    return float(np.argmax(spectrum) * rate / middle.size)


def rms(samples: Pcm16) -> float:
    return float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))


@pytest.mark.parametrize("src_rate", [48000, 44100, 22050, 8000])
def test_a_tone_keeps_its_pitch_level_and_duration(src_rate: int) -> None:
    source = tone(1000.0, src_rate)

    out = resample(source, src_rate, 16000)

    assert out.dtype == np.int16
    assert out.size == -(-source.size * 16000 // src_rate)
    assert abs(peak_frequency(out, 16000) - 1000.0) < 5.0
    inner = slice(1600, -1600)  # away from the edges, where the filter sees silence
    assert rms(out[inner]) == pytest.approx(rms(source), rel=0.02)


@pytest.mark.parametrize("src_rate", [48000, 44100, 22050])
def test_frequencies_above_the_new_nyquist_do_not_alias(src_rate: int) -> None:
    out = resample(tone(9500.0, src_rate), src_rate, 16000)

    assert rms(out[1600:-1600]) < 10000 / np.sqrt(2) * 10 ** (-50 / 20)


def test_the_output_is_aligned_with_the_input() -> None:
    click = np.zeros(48000, dtype=np.int16)
    click[24000] = 30000

    out = resample(click, 48000, 16000)

    assert int(np.argmax(np.abs(out))) == 8000


def test_same_rate_passes_samples_through() -> None:
    source = tone(440.0, 16000, 0.3)
    converter = Resampler(16000, 16000)

    assert converter.passthrough
    assert np.array_equal(converter.process(source), source)
    assert converter.flush().size == 0


@settings(max_examples=25, deadline=None)
@given(
    src_rate=st.sampled_from([48000, 44100, 22050, 32000]),
    cuts=st.lists(st.integers(min_value=0, max_value=9000), max_size=12),
)
def test_any_block_split_gives_the_same_output_as_one_shot(src_rate: int, cuts: list[int]) -> None:
    source = (np.random.default_rng(5).standard_normal(9000) * 3000).astype(np.int16)
    converter = Resampler(src_rate, 16000)
    pieces: list[Pcm16] = []
    previous = 0
    for cut in [*sorted(cuts), source.size]:
        pieces.append(converter.process(source[previous:cut]))
        previous = max(previous, cut)
    pieces.append(converter.flush())

    assert np.array_equal(np.concatenate(pieces), resample(source, src_rate, 16000))


def test_a_resampler_can_be_reused_after_flush() -> None:
    source = tone(700.0, 44100, 0.2)
    converter = Resampler(44100, 16000)
    first = np.concatenate([converter.process(source), converter.flush()])
    second = np.concatenate([converter.process(source), converter.flush()])

    assert np.array_equal(first, second)


def test_loud_input_is_clipped_not_wrapped() -> None:
    square = np.where(np.arange(4800) % 96 < 48, 32767, -32768).astype(np.int16)

    out = resample(square, 48000, 16000)

    assert out.dtype == np.int16
    assert out.max() <= 32767 and out.min() >= -32768
    assert out[200:-200].max() > 30000  # the ringing overshoots and is clipped at full scale


def test_downmix_averages_channels() -> None:
    stereo = np.array([[100, 300], [-200, -400], [32767, 32767]], dtype=np.int16)

    assert downmix_to_mono(stereo).tolist() == [200, -300, 32767]
    assert downmix_to_mono(np.array([1, 2], dtype=np.int16)).tolist() == [1, 2]


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="positive"):
        Resampler(0, 16000)
    with pytest.raises(ValueError, match="mono"):
        Resampler(48000, 16000).process(np.zeros((10, 2), dtype=np.int16))
    with pytest.raises(ValueError, match="samples, channels"):
        downmix_to_mono(np.zeros((2, 2, 2), dtype=np.int16))
