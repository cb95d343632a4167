"""Whisper-style log-mel features of the last 8 s of 16 kHz audio, for the Smart Turn v3 model.

Pure numpy, no I/O. Smart Turn v3 (``agent.call.smart_turn``) is a Whisper-encoder classifier
trained on features made by Hugging Face's ``WhisperFeatureExtractor(chunk_length=8)`` with
``do_normalize=True``; the model only sees what that extractor produces, so this module
reproduces its numbers, step by step:

1. The window: the last 8 s (128 000 samples at 16 kHz); a shorter turn is padded with zeros at
   the FRONT, so the end of the turn, which the model judges, is always at the same place.
2. Zero mean, unit variance over the whole padded window (padding included), in float32, with
   1e-7 added to the variance.
3. A centred short-time Fourier transform: the signal is reflect-padded by half a frame on each
   side; 400-sample (25 ms) frames every 160 samples (10 ms), a periodic Hann window, power
   spectrum |X|^2 (201 bins, 0-8 kHz), in float64.
4. 80 triangular mel filters on the Slaney scale (linear to 1 kHz, logarithmic above), each
   scaled to unit area (2 / its width in Hz), spanning 0-8 kHz.
5. log10 of each mel energy (floored at 1e-10); 800 frames are kept (the extractor computes
   801 and drops the last); every value is raised to at least (the window's maximum - 8), then
   mapped by (x + 4) / 4, which puts speech roughly in [-1, 1].

Checked against ``transformers.WhisperFeatureExtractor`` 4.x/5.x (installed in a throwaway venv,
not a dependency): tests/unit/fixtures/smart_turn_mel.npz holds its output for two signals, and
the test asserts the difference stays below 1e-5 (measured: see that test's docstring).
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

SAMPLE_RATE_HZ = 16_000
WINDOW_S = 8
WINDOW_SAMPLES = SAMPLE_RATE_HZ * WINDOW_S
N_FFT = 400  # 25 ms analysis frames, Whisper's
HOP = 160  # 10 ms between frames: 100 feature frames a second
N_MELS = 80
N_FRAMES = WINDOW_SAMPLES // HOP  # 800
_VARIANCE_EPS = np.float32(1e-7)
_ENERGY_FLOOR = 1e-10
_DYNAMIC_RANGE = 8.0  # decades of log10 energy kept below the window's loudest bin

# Slaney's mel scale: 3 mels per 200 Hz up to 1 kHz (15 mels), then 27 mels per factor 6.4.
_BREAK_HZ = 1000.0
_BREAK_MEL = 15.0
_HZ_PER_MEL = 200.0 / 3.0
_MELS_PER_LOG_HZ = 27.0 / np.log(6.4)


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    above = hz >= _BREAK_HZ
    safe = np.where(above, hz, _BREAK_HZ)  # log of the high branch only where it applies
    high = _BREAK_MEL + np.log(safe / _BREAK_HZ) * _MELS_PER_LOG_HZ
    return np.where(above, high, hz / _HZ_PER_MEL)


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    above = mel >= _BREAK_MEL
    high = _BREAK_HZ * np.exp((mel - _BREAK_MEL) / _MELS_PER_LOG_HZ)
    return np.where(above, high, mel * _HZ_PER_MEL)


@functools.cache
def mel_filters() -> npt.NDArray[np.float64]:
    """The (80, 201) filterbank: row m weighs the power spectrum's bins into mel band m."""
    edges_mel = np.linspace(
        _hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([SAMPLE_RATE_HZ / 2]))[0], N_MELS + 2
    )
    edges_hz = _mel_to_hz(edges_mel)  # band m rises from edge m, peaks at m+1, falls to m+2
    bins_hz = np.linspace(0.0, SAMPLE_RATE_HZ // 2, N_FFT // 2 + 1)
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bins_hz[None, :] - lower) / (centre - lower)
    falling = (upper - bins_hz[None, :]) / (upper - centre)
    triangles = np.clip(np.minimum(rising, falling), 0.0, None)
    area = 2.0 / (upper - lower)  # Slaney normalisation: every band has the same area
    filters: npt.NDArray[np.float64] = triangles * area
    filters.setflags(write=False)
    return filters


@functools.cache
def _bands() -> tuple[tuple[int, int, npt.NDArray[np.float64]], ...]:
    """Each band's non-zero span of bins and its weights there (1-14 bins of 201)."""
    spans = []
    for row in mel_filters():
        (nonzero,) = np.nonzero(row)
        low, high = int(nonzero[0]), int(nonzero[-1]) + 1
        spans.append((low, high, row[low:high]))
    return tuple(spans)


@functools.cache
def _hann() -> npt.NDArray[np.float64]:
    # Periodic (not symmetric) Hann, as torch.hann_window and the extractor use.
    n = np.arange(N_FFT, dtype=np.float64)
    window: npt.NDArray[np.float64] = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)
    window.setflags(write=False)
    return window


def fit_window(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The last 8 s of ``samples`` (float32 at 16 kHz), zero-padded at the front to 8 s."""
    window = np.zeros(WINDOW_SAMPLES, np.float32)
    tail = samples[-WINDOW_SAMPLES:]
    if tail.shape[0]:
        window[WINDOW_SAMPLES - tail.shape[0] :] = tail
    return window


def log_mel(window: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Features (80 mel bands x 800 frames, float32) of one 8 s window from ``fit_window``."""
    if window.shape != (WINDOW_SAMPLES,):
        raise ValueError(f"expected {WINDOW_SAMPLES} samples (8 s at 16 kHz), got {window.shape}")
    x = window.astype(np.float32)
    x = (x - x.mean()) / np.sqrt(x.var() + _VARIANCE_EPS)
    half = N_FFT // 2
    padded = np.pad(x.astype(np.float64), half, mode="reflect")
    # Frame k covers padded[k*HOP : k*HOP + N_FFT] (centred on sample k*HOP of the window);
    # only the 800 frames the model sees are computed.
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[: N_FRAMES * HOP : HOP]
    spectrum = np.fft.rfft(frames * _hann(), axis=1)
    power = spectrum.real**2 + spectrum.imag**2  # (800, 201)
    # Band by band over its few bins, not one dense product: a (80 x 201) @ (201 x 800) product
    # goes to the BLAS library, whose threads cost ~7x the CPU on a busy 2-core box (measured
    # 5.3 vs 0.8 ms); the sums are the same to 1e-17.
    energy = np.empty((N_MELS, N_FRAMES), np.float64)
    for band, (low, high, weights) in enumerate(_bands()):
        np.dot(power[:, low:high], weights, out=energy[band])
    logs = np.log10(np.maximum(energy, _ENERGY_FLOOR))
    logs = np.maximum(logs, logs.max() - _DYNAMIC_RANGE)
    features: npt.NDArray[np.float32] = ((logs + 4.0) / 4.0).astype(np.float32)
    return features
