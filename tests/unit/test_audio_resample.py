from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import numpy.typing as npt
import pytest

from slotline.audio.resample import Resampler, resample

RATE_PAIRS = [(8000, 16000), (16000, 8000), (22050, 8000), (8000, 22050), (44100, 48000)]


def tone(freq_hz: float, rate_hz: int, seconds: float, amplitude: float) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    return np.round(amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def middle(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    """The steady-state part: away from the switch-on and switch-off transients."""
    quarter = samples.shape[0] // 4
    return samples[quarter:-quarter].astype(np.float64)


def level_db(samples: npt.NDArray[np.float64], reference_amplitude: float) -> float:
    rms = float(np.sqrt(np.mean(samples**2)))
    return 20 * math.log10(max(rms, 1e-9) / (reference_amplitude / math.sqrt(2)))


def spectrum_db(
    samples: npt.NDArray[np.float64], rate_hz: int, freq_hz: float, reference_amplitude: float
) -> float:
    """Level of one sinusoidal component (Hann window, peak within +-20 Hz)."""
    window = np.hanning(samples.shape[0])
    magnitude = np.abs(np.fft.rfft(samples * window)) / (window.sum() / 2)
    freqs = np.fft.rfftfreq(samples.shape[0], 1 / rate_hz)
    peak = float(magnitude[np.abs(freqs - freq_hz) <= 20].max())
    return 20 * math.log10(max(peak, 1e-9) / reference_amplitude)


@pytest.mark.parametrize(("in_rate_hz", "out_rate_hz"), RATE_PAIRS)
def test_tone_keeps_frequency_and_amplitude(in_rate_hz: int, out_rate_hz: int) -> None:
    out = resample(tone(1000, in_rate_hz, 1.0, 10000), in_rate_hz, out_rate_hz)
    steady = middle(out)
    window = np.hanning(steady.shape[0])
    magnitude = np.abs(np.fft.rfft(steady * window))
    freqs = np.fft.rfftfreq(steady.shape[0], 1 / out_rate_hz)
    assert abs(freqs[int(magnitude.argmax())] - 1000) <= out_rate_hz / steady.shape[0]
    assert abs(np.abs(steady).max() - 10000) <= 50  # passband gain within 0.05 dB
    assert abs(level_db(steady, 10000)) < 0.05


def test_telephone_band_is_flat_through_22050_to_8000() -> None:
    for freq_hz in (300, 1000, 2000, 3000, 3400):
        out = resample(tone(freq_hz, 22050, 0.5, 10000), 22050, 8000)
        assert abs(level_db(middle(out), 10000)) < 0.1, freq_hz


@pytest.mark.parametrize("freq_hz", [4300, 5000, 6000, 7500, 10000])
def test_22050_to_8000_attenuates_what_would_alias(freq_hz: int) -> None:
    # Everything above 4 kHz would fold back into the band; it must be gone (> 60 dB down).
    out = resample(tone(freq_hz, 22050, 1.0, 16000), 22050, 8000)
    assert level_db(middle(out), 16000) < -60


@pytest.mark.parametrize("freq_hz", [1000, 3000, 3400])
def test_8000_to_16000_has_no_images(freq_hz: int) -> None:
    out = resample(tone(freq_hz, 8000, 1.0, 16000), 8000, 16000)
    steady = middle(out)
    assert spectrum_db(steady, 16000, freq_hz, 16000) > -0.1
    assert spectrum_db(steady, 16000, 8000 - freq_hz, 16000) < -60  # the mirror image


def test_16000_to_8000_attenuates_above_4k() -> None:
    out = resample(tone(5000, 16000, 1.0, 16000), 16000, 8000)
    assert level_db(middle(out), 16000) < -60


@pytest.mark.parametrize(("in_rate_hz", "out_rate_hz"), RATE_PAIRS)
def test_chunked_output_equals_one_shot(in_rate_hz: int, out_rate_hz: int) -> None:
    rng = np.random.default_rng(7)
    signal = rng.normal(0, 6000, in_rate_hz // 2).clip(-32768, 32767).astype(np.int16)
    whole = resample(signal, in_rate_hz, out_rate_hz)

    resampler = Resampler(in_rate_hz, out_rate_hz)
    pieces = []
    position = 0
    while position < signal.shape[0]:
        size = int(rng.choice([0, 1, 7, 160, 441, 1000]))
        pieces.append(resampler.process(signal[position : position + size]))
        position += size
    pieces.append(resampler.flush())
    chunked = np.concatenate(pieces)

    assert chunked.shape == whole.shape
    assert np.abs(chunked.astype(np.int32) - whole.astype(np.int32)).max() <= 2


@pytest.mark.parametrize(("in_rate_hz", "out_rate_hz"), RATE_PAIRS)
@pytest.mark.parametrize("n_in", [0, 1, 2, 159, 160, 441, 12345])
def test_total_length_is_input_times_ratio(in_rate_hz: int, out_rate_hz: int, n_in: int) -> None:
    out = resample(np.ones(n_in, np.int16), in_rate_hz, out_rate_hz)
    assert out.shape[0] == math.ceil(n_in * out_rate_hz / in_rate_hz)


@pytest.mark.parametrize(("in_rate_hz", "out_rate_hz"), [*RATE_PAIRS, (48000, 8000)])
def test_streaming_holds_back_a_bounded_amount(in_rate_hz: int, out_rate_hz: int) -> None:
    # soxr filters in blocks: fed 20 ms frames, it answers in bursts and is never more than
    # ~160 ms behind (measured: 115 ms at 8k <-> 16k, 80 ms at 22.05k -> 8k, 157 ms at 48k -> 8k).
    resampler = Resampler(in_rate_hz, out_rate_hz)
    frame = in_rate_hz // 50
    fed = emitted = 0
    behind_s = []
    for _ in range(100):
        emitted += resampler.process(np.zeros(frame, np.int16)).shape[0]
        fed += frame
        behind_s.append(fed / in_rate_hz - emitted / out_rate_hz)
    assert max(behind_s) < 0.160
    assert behind_s[-1] < 0.160 and emitted > 0  # it keeps up, it does not hoard
    assert emitted + resampler.flush().shape[0] == math.ceil(fed * out_rate_hz / in_rate_hz)


@pytest.mark.parametrize(("in_rate_hz", "out_rate_hz"), [*RATE_PAIRS, (48000, 8000)])
def test_a_sine_streamed_in_20_ms_chunks_has_no_clicks(in_rate_hz: int, out_rate_hz: int) -> None:
    signal = tone(1000, in_rate_hz, 1.0, 12000)
    whole = resample(signal, in_rate_hz, out_rate_hz)
    resampler = Resampler(in_rate_hz, out_rate_hz)
    chunk = in_rate_hz // 50
    pieces = [resampler.process(signal[i : i + chunk]) for i in range(0, signal.shape[0], chunk)]
    streamed = np.concatenate([*pieces, resampler.flush()])
    # Chunk boundaries leave no trace: the stream is the whole-signal conversion, sample for
    # sample, and no step between neighbours exceeds the sine's steepest (+ rounding).
    assert np.array_equal(streamed, whole)
    steepest = 2 * 12000 * math.sin(math.pi * 1000 / out_rate_hz)
    assert np.abs(np.diff(middle(streamed))).max() <= steepest + 2


def test_output_is_time_aligned_with_input() -> None:
    impulse = np.zeros(8000, np.int16)
    impulse[4000] = 20000
    out = resample(impulse, 8000, 16000)
    assert int(np.abs(out).argmax()) == 8000
    out = resample(resample(impulse, 8000, 22050), 22050, 8000)
    assert int(np.abs(out).argmax()) == 4000


def test_flush_starts_a_fresh_stream() -> None:
    signal = tone(440, 8000, 0.1, 8000)
    resampler = Resampler(8000, 16000)
    first = np.concatenate((resampler.process(signal), resampler.flush()))
    second = np.concatenate((resampler.process(signal), resampler.flush()))
    assert np.array_equal(first, second)


def test_full_scale_input_saturates_instead_of_wrapping() -> None:
    square = np.where(np.arange(8000) % 40 < 20, 32767, -32768).astype(np.int16)
    out = resample(square, 8000, 16000)
    # Sinc ringing overshoots full scale; wrapping would show up as sign flips at the peaks.
    assert out.max() == 32767 and out.min() == -32768
    steady = middle(out)
    # Mid-way through each half cycle (input 2010, 2030, ...) the sign must be the input's.
    assert np.array_equal(np.sign(steady[20::40]), np.sign(square[2010:6000:20]))


def test_equal_rates_pass_through() -> None:
    signal = tone(440, 8000, 0.1, 8000)
    assert np.array_equal(resample(signal, 8000, 8000), signal)


@pytest.mark.parametrize(("in_rate_hz", "out_rate_hz"), [(0, 8000), (8000, -1), (1, 100_000)])
def test_bad_rates_are_rejected(in_rate_hz: int, out_rate_hz: int) -> None:
    with pytest.raises(ValueError, match="Hz"):
        Resampler(in_rate_hz, out_rate_hz)


def test_stereo_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="mono"):
        Resampler(8000, 16000).process(np.zeros((160, 2), np.int16))


def test_streams_alive_at_exit_leave_stderr_quiet() -> None:
    # The espeak worker (a daemon thread) keeps resamplers for the life of the process; soxr's
    # binding would print a "leaked instances" report for each at exit unless they are let go.
    script = (
        "import threading, numpy as np\n"
        "from slotline.audio.resample import Resampler\n"
        "kept = [Resampler(22050, 8000), Resampler(8000, 16000)]\n"
        "kept[0].process(np.ones(441, np.int16))\n"
        "def hold(items): threading.Event().wait()\n"
        "threading.Thread(target=hold, args=(kept,), daemon=True).start()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0 and done.stderr == ""
