"""Streaming sample-rate conversion of 16-bit mono audio, by libsoxr (the ``soxr`` package).

``Resampler`` is one stateful stream (one per call or per reply): ``process`` takes chunks of
any size and returns what is ready, ``flush`` returns the rest and readies it for a new stream.
The output is aligned with the input (soxr removes its filter's delay: an impulse at input time
t comes out at output time t) and has ``ceil(n_in * out / in)`` samples in all; chunked output
equals the whole-signal output sample for sample (soxr runs on float32 here and we round, with
no dither), so chunk boundaries leave no mark. Quality is soxr's "HQ": passband flat to ~91 %
of the lower Nyquist (telephone speech to 3.4 kHz of 4 kHz is untouched), images and aliases
more than 80 dB down.

Why soxr replaced our numpy polyphase resampler (now bench/_numpy_resampler.py), measured with
``python -m bench.resample_cost`` (10 s of speech-like audio in 20 ms chunks, 2 cores shared
with other work, December 2026): soxr costs 6-11x less CPU per chunk (medians 3.7 vs 40 us at
22.05 -> 8 kHz, 3.2 vs 18 us at 8 -> 16 kHz, 4.7 vs 48 us at 48 -> 8 kHz), 30-60x less to set
up a stream at 22.05 -> 8 kHz (0.1 vs 3-6 ms), and filters better (a 5 kHz tone through
22.05 -> 8 kHz: gone below -200 dB vs -83 dB; the phone band flat in both). On the espeak path a
sentence's first audio comes as early (0.21 vs 0.29 ms) and all of it in half the time.

What it costs: soxr filters in blocks, so on a real-time 20 ms frame path it holds back
80-160 ms of audio (ours held back only its 3.6 ms look-ahead). No caller feeds it at real
time: the espeak TTS path converts buffers produced hundreds of times faster than real time
(waiting for one more 60 ms buffer costs well under a millisecond), and WAV files are converted
whole. A future caller that resamples live audio frame by frame must measure that hold-back.
"""

from __future__ import annotations

import atexit
import logging
import weakref

import numpy as np
import numpy.typing as npt
import soxr  # untyped: ignore_missing_imports in pyproject

logger = logging.getLogger(__name__)

_QUALITY = "HQ"
_EMPTY: npt.NDArray[np.int16] = np.zeros(0, np.int16)  # shared by every empty answer
# A ratio beyond this is a mistake in the caller (Hz taken for kHz), not a conversion to make.
_MAX_RATIO = 256


class Resampler:
    """Converts a stream of int16 samples from ``in_rate_hz`` to ``out_rate_hz``.

    ``process`` returns every output sample soxr has ready; ``flush`` pads the end with
    silence, returns the rest (``ceil(n_in * out / in)`` samples in all) and leaves the
    resampler ready for a new stream.
    """

    def __init__(self, in_rate_hz: int, out_rate_hz: int) -> None:
        if in_rate_hz <= 0 or out_rate_hz <= 0:
            raise ValueError(
                f"sample rates must be positive, got {in_rate_hz} Hz -> {out_rate_hz} Hz"
            )
        if max(in_rate_hz, out_rate_hz) > _MAX_RATIO * min(in_rate_hz, out_rate_hz):
            raise ValueError(
                f"{in_rate_hz} Hz -> {out_rate_hz} Hz is a ratio beyond {_MAX_RATIO}:1"
            )
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._stream = (
            None if in_rate_hz == out_rate_hz
            else soxr.ResampleStream(in_rate_hz, out_rate_hz, 1, dtype="float32", quality=_QUALITY)
        )
        self._released = False
        if self._stream is not None:
            _streams.add(self)
        # Enough silence at the end for soxr (which rounds the total) to reach the ceiling.
        self._padding = np.zeros(-(-in_rate_hz // out_rate_hz) + 1, np.float32)
        self._inputs_seen = 0
        self._outputs_sent = 0

    @property
    def ratio(self) -> float:
        return self.out_rate_hz / self.in_rate_hz

    def reset(self) -> None:
        """Forget the stream: the next sample is input 0 again, preceded by silence."""
        if self._stream is not None:
            self._stream.clear()
        self._inputs_seen = 0
        self._outputs_sent = 0

    def process(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """Feed input samples; return the output samples that are now complete."""
        if samples.ndim != 1:
            raise ValueError(f"expected mono 1-D samples, got shape {samples.shape}")
        self._inputs_seen += samples.shape[0]
        if self._stream is None:
            if self._released:
                raise RuntimeError("the interpreter is exiting: resampling has stopped")
            return samples.astype(np.int16, copy=True)
        out = _to_int16(self._stream.resample_chunk(samples.astype(np.float32)))
        self._outputs_sent += out.shape[0]
        return out

    def flush(self) -> npt.NDArray[np.int16]:
        """Finish the stream: return the remaining output samples and reset."""
        if self._stream is None:
            if self._released:
                raise RuntimeError("the interpreter is exiting: resampling has stopped")
            self.reset()
            return np.zeros(0, np.int16)
        total = -(-self._inputs_seen * self.out_rate_hz // self.in_rate_hz)  # ceil, no floats
        wanted = total - self._outputs_sent
        tail = _to_int16(self._stream.resample_chunk(self._padding, last=True))
        if tail.shape[0] < wanted:  # not seen with soxr 1.1; keep the length promise anyway
            tail = np.concatenate((tail, np.zeros(wanted - tail.shape[0], np.int16)))
        self.reset()
        return tail[: max(0, wanted)].copy()


# Every live soxr stream. The binding (nanobind) reports each one still alive when the
# interpreter exits as a leak, several lines on stderr; the espeak worker is a daemon thread
# whose job in hand keeps its resampler when the process ends. So let go of them at exit.
_streams: weakref.WeakSet[Resampler] = weakref.WeakSet()


@atexit.register
def _release_streams() -> None:
    for resampler in list(_streams):
        resampler._stream, resampler._released = None, True


def _to_int16(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    """Round and saturate (soxr's own int16 output adds dither, so a reused stream would not
    repeat itself and chunked output would not equal whole-signal output)."""
    if not samples.shape[0]:  # most 20 ms chunks: soxr answers in bursts
        return _EMPTY
    np.rint(samples, out=samples)
    np.clip(samples, -32768.0, 32767.0, out=samples)
    return samples.astype(np.int16)


def resample(
    samples: npt.NDArray[np.int16], in_rate_hz: int, out_rate_hz: int
) -> npt.NDArray[np.int16]:
    """Convert a whole signal at once (same result as streaming it through ``Resampler``)."""
    resampler = Resampler(in_rate_hz, out_rate_hz)
    head = resampler.process(samples)
    return np.concatenate((head, resampler.flush()))
