"""Per-frame cost of the audio hot path: what every call pays every 20 ms.

Each operation runs once per 20 ms frame of one call, so at 200 concurrent calls the server
runs it 10,000 times a second: a 100 µs operation then takes one whole core. Every call is
timed on its own (perf_counter_ns), so the p99 shows scheduler and GC hiccups too.

    cd /work/main && /work/venv/bin/python -m bench.audio_frame_cost [--frames N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from slotline.audio.framing import FRAME_SAMPLES, SAMPLE_RATE_HZ
from slotline.audio.mulaw import decode_array, pcm16_to_ulaw, ulaw_to_pcm16
from slotline.audio.resample import Resampler
from slotline.audio.vad import SileroVad, VadUnavailable, WebRtcVad


def speech_like(n_frames: int) -> npt.NDArray[np.int16]:
    """Voiced-ish audio: a 120 Hz harmonic series, syllable-rate envelope, noise underneath."""
    rng = np.random.default_rng(5)
    t = np.arange(n_frames * FRAME_SAMPLES) / SAMPLE_RATE_HZ
    voiced = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 25))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    signal = 6000 * envelope * voiced + rng.normal(0, 200, t.shape[0])
    return np.clip(signal, -32768, 32767).astype(np.int16)


def per_call_us(label: str, inputs: list[bytes], fn: Callable[[bytes], object]) -> None:
    for item in inputs[:200]:  # warm caches and lazy initialisation
        fn(item)
    costs_ns = []
    clock = time.perf_counter_ns
    for item in inputs:
        started = clock()
        fn(item)
        costs_ns.append(clock() - started)
    costs_us = sorted(cost / 1000 for cost in costs_ns)
    p99 = costs_us[int(len(costs_us) * 0.99) - 1]
    print(
        f"{label:<34} median {statistics.median(costs_us):8.1f} µs   "
        f"p99 {p99:8.1f} µs   mean {statistics.fmean(costs_us):8.1f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50_000, help="frames per measurement")
    args = parser.parse_args()

    samples = speech_like(args.frames)
    pcm_frames = [
        samples[i : i + FRAME_SAMPLES].tobytes() for i in range(0, samples.shape[0], FRAME_SAMPLES)
    ]
    ulaw_frames = [pcm16_to_ulaw(frame) for frame in pcm_frames]
    print(f"{len(pcm_frames)} frames of 20 ms each, {os.cpu_count()} CPUs, pid {os.getpid()}")

    per_call_us("mu-law decode 160 B -> bytes", ulaw_frames, ulaw_to_pcm16)
    per_call_us("mu-law decode 160 B -> array", ulaw_frames, decode_array)
    per_call_us("mu-law encode 320 B -> 160 B", pcm_frames, pcm16_to_ulaw)

    webrtc = WebRtcVad(aggressiveness=2)
    per_call_us("WebRtcVad.is_speech", pcm_frames, webrtc.is_speech)

    try:
        silero = SileroVad()
    except VadUnavailable as exc:
        print(f"SileroVad.is_speech                skipped: {exc}")
    else:
        per_call_us("SileroVad.is_speech (5/8 infer)", pcm_frames, silero.is_speech)

    resampler = Resampler(8000, 16000)

    def upsample(frame: bytes) -> object:
        return resampler.process(np.frombuffer(frame, dtype=np.int16))

    per_call_us("Resampler 8k->16k per frame", pcm_frames, upsample)

    tts = Resampler(22050, 8000)
    tts_frame = np.resize(speech_like(3), 441).tobytes()  # 441 samples at 22.05 kHz = 20 ms
    tts_frames = [tts_frame] * args.frames  # content does not change the cost

    def downsample(frame: bytes) -> object:
        return tts.process(np.frombuffer(frame, dtype=np.int16))

    per_call_us("Resampler 22.05k->8k per 20 ms", tts_frames, downsample)


if __name__ == "__main__":
    main()
