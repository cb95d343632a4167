"""Our former numpy resampler against soxr (what audio/resample.py now uses), 20 ms chunks.

For each rate pair Slotline converts (8k <-> 16k for STT engines, 22.05k -> 8k for espeak,
44.1k/48k -> 8k for caller WAV files) it streams 10 s of speech-like audio in 20 ms chunks
through one stateful converter per implementation (``numpy``: bench/_numpy_resampler.py, the
code audio/resample.py had until December 2026; ``soxr``: ``slotline.audio.resample.Resampler``
as shipped, soxr HQ on float32 with our rounding) and reports:

* CPU per chunk (median / p99 / mean of perf_counter_ns around each call; the process is the
  only one measured, so wall time is CPU time here) and in total for 10 s of audio;
* held back: the most audio (ms) that had gone in but not yet come out after a chunk, i.e. the
  latency the converter adds on a 20 ms frame path (ours: the filter's look-ahead only);
* the cost of making a converter (per call or per reply, a new stream is made or reset);
* quality: the level of a 5 kHz tone after 22.05k -> 8k (it would alias; lower is better) and
  of a 3.4 kHz tone (the top of the telephone band; 0 dB is flat);
* the espeak path as providers/tts/local.py runs it (espeak hands 60 ms buffers at 22.05 kHz
  to a callback that resamples each one): time from ``synth`` to the first resampled sample
  (what a reply's first audio waits for) and to the end, median of 30 sentences.

    cd /work/main && .venv/bin/python -m bench.resample_cost [--seconds 10]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench._numpy_resampler import NumpyResampler
from slotline.audio.resample import Resampler

RATE_PAIRS = [(8000, 16000), (16000, 8000), (22050, 8000), (44100, 8000), (48000, 8000)]
CHUNK_MS = 20

Int16Array = npt.NDArray[np.int16]


def speech_like(rate_hz: int, seconds: float) -> Int16Array:
    """A 120 Hz harmonic series under a syllable-rate envelope, with noise underneath."""
    rng = np.random.default_rng(5)
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    top = min(24, int(rate_hz / 2 / 120) - 1)
    voiced = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, top + 1))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    signal = 6000 * envelope * voiced + rng.normal(0, 200, t.shape[0])
    return np.clip(signal, -32768, 32767).astype(np.int16)


@dataclass
class Run:
    label: str
    costs_us: list[float]
    held_back_ms: float
    output: Int16Array

    def line(self) -> str:
        costs = sorted(self.costs_us)
        p99 = costs[max(0, int(len(costs) * 0.99) - 1)]
        total_ms = sum(costs) / 1000
        return (f"  {self.label:<10} median {statistics.median(costs):7.1f} µs  p99 {p99:7.1f} µs"
                f"  mean {statistics.fmean(costs):7.1f} µs  total {total_ms:7.1f} ms"
                f"  held back <= {self.held_back_ms:5.1f} ms")


def stream(label: str, chunks: list[Int16Array], in_rate_hz: int, out_rate_hz: int,
           process: Callable[[Int16Array], Int16Array], finish: Callable[[], Int16Array]) -> Run:
    clock = time.perf_counter_ns
    costs_us: list[float] = []
    pieces: list[Int16Array] = []
    fed = emitted = 0
    held_back_ms = 0.0
    for chunk in chunks:
        started = clock()
        out = process(chunk)
        costs_us.append((clock() - started) / 1000)
        pieces.append(out)
        fed += chunk.shape[0]
        emitted += out.shape[0]
        held_back_ms = max(held_back_ms, 1000 * (fed / in_rate_hz - emitted / out_rate_hz))
    pieces.append(finish())
    return Run(label, costs_us, held_back_ms, np.concatenate(pieces))


def ours(chunks: list[Int16Array], in_rate_hz: int, out_rate_hz: int) -> Run:
    resampler = NumpyResampler(in_rate_hz, out_rate_hz)
    return stream("numpy", chunks, in_rate_hz, out_rate_hz, resampler.process, resampler.flush)


def theirs(chunks: list[Int16Array], in_rate_hz: int, out_rate_hz: int) -> Run:
    resampler = Resampler(in_rate_hz, out_rate_hz)
    return stream("soxr HQ", chunks, in_rate_hz, out_rate_hz, resampler.process, resampler.flush)


def construction_us(
    make: Callable[[int, int], object], in_rate_hz: int, out_rate_hz: int, repeat: int = 50
) -> float:
    make(in_rate_hz, out_rate_hz)
    started = time.perf_counter_ns()
    for _ in range(repeat):
        make(in_rate_hz, out_rate_hz)
    return (time.perf_counter_ns() - started) / repeat / 1000


def tone_db(out: Int16Array, out_rate_hz: int, amplitude: float) -> float:
    quarter = out.shape[0] // 4
    steady = out[quarter:-quarter].astype(np.float64)
    rms = float(np.sqrt(np.mean(steady**2)))
    return 20 * math.log10(max(rms, 1e-9) / (amplitude / math.sqrt(2)))


def tone(freq_hz: float, rate_hz: int, amplitude: float) -> Int16Array:
    t = np.arange(rate_hz) / rate_hz
    return np.round(amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


SENTENCE = "Great, I have booked your appointment for Tuesday at three."


class _Reply:
    """One sentence through espeak's callback, as providers/tts/local.py's job takes it."""

    def __init__(self, resampler: NumpyResampler | Resampler) -> None:
        self.resampler = resampler
        self.started_ns = time.perf_counter_ns()
        self.first_ns = 0

    def take(self, samples: Int16Array) -> bool:
        if self.resampler.process(samples).shape[0] and not self.first_ns:
            self.first_ns = time.perf_counter_ns() - self.started_ns
        return False  # go on


def espeak_path(make: Callable[[int, int], NumpyResampler | Resampler]) -> tuple[float, float]:
    """Milliseconds from synth() to the first resampled sample and to the last (medians)."""
    import espeakng_loader

    from slotline.providers.tts._espeak import EspeakLibrary

    library = EspeakLibrary(
        espeakng_loader.get_library_path(), espeakng_loader.get_data_path(), buffer_ms=60
    )
    library.set_voice("en-us")
    firsts, lasts = [], []
    for _ in range(30):
        reply = _Reply(make(library.sample_rate_hz, 8000))
        library.synth(SENTENCE, reply.take, end_pause=True)
        reply.resampler.flush()
        lasts.append((time.perf_counter_ns() - reply.started_ns) / 1e6)
        firsts.append(reply.first_ns / 1e6)
    return statistics.median(firsts), statistics.median(lasts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"{args.seconds:g} s of audio in {CHUNK_MS} ms chunks, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    for in_rate_hz, out_rate_hz in RATE_PAIRS:
        signal = speech_like(in_rate_hz, args.seconds)
        size = in_rate_hz * CHUNK_MS // 1000
        chunks = [signal[i : i + size] for i in range(0, signal.shape[0], size)]
        print(f"{in_rate_hz} -> {out_rate_hz} Hz, {size} samples a chunk")
        mine = ours(chunks, in_rate_hz, out_rate_hz)
        other = theirs(chunks, in_rate_hz, out_rate_hz)
        print(mine.line())
        print(other.line())
        n = min(mine.output.shape[0], other.output.shape[0])
        difference = np.abs(mine.output[:n].astype(np.int32) - other.output[:n]).max()
        print(f"  outputs {mine.output.shape[0]} vs {other.output.shape[0]} samples, "
              f"largest difference {difference} (of 32768)")
        make_ours = construction_us(NumpyResampler, in_rate_hz, out_rate_hz)
        make_theirs = construction_us(Resampler, in_rate_hz, out_rate_hz)
        print(f"  making one: numpy {make_ours:8.1f} µs   soxr {make_theirs:8.1f} µs")

    print("quality, 22050 -> 8000 Hz (the espeak path):")
    for freq_hz, meaning in ((5000.0, "would alias"), (3400.0, "top of the phone band")):
        signal = tone(freq_hz, 22050, 16000)
        chunks = [signal[i : i + 441] for i in range(0, signal.shape[0], 441)]
        mine = ours(chunks, 22050, 8000)
        other = theirs(chunks, 22050, 8000)
        print(f"  {freq_hz:6.0f} Hz ({meaning}): numpy {tone_db(mine.output, 8000, 16000):7.1f} dB"
              f"   soxr {tone_db(other.output, 8000, 16000):7.1f} dB")

    print(f"the espeak path, {SENTENCE!r}:")
    for label, make in (("numpy", NumpyResampler), ("soxr HQ", Resampler)):
        first_ms, last_ms = espeak_path(make)
        print(f"  {label:<10} first audio after {first_ms:6.2f} ms, all of it after "
              f"{last_ms:6.2f} ms")


if __name__ == "__main__":
    main()
