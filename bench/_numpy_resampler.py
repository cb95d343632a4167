"""The numpy polyphase resampler Slotline used before soxr (audio/resample.py until December
2026), kept for ``bench.resample_cost`` to measure soxr against. Not used by the program.

It evaluates a Kaiser-windowed sinc at each output instant, polyphase style (the ratio reduced
to ``up / down``, one precomputed row of taps per output phase); passband to 85 % of the lower
Nyquist, stopband >= 70 dB; output aligned with the input; streaming holds back only the
filter's look-ahead (``half_width`` input samples).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

_STOPBAND_DB = 70.0
_PASSBAND_FRACTION = 0.85  # of the lower Nyquist; telephone speech ends at 3.4 kHz of 4 kHz
_MAX_PHASES = 4096  # 44100 <-> 48000 needs 160; beyond this the tap table gets silly


def _design_taps(up: int, down: int) -> npt.NDArray[np.float32]:
    """One row of taps per output phase: row ``p`` weights the inputs around the instant
    ``i0 + p / up``, from input ``i0 - half_width + 1`` to ``i0 + half_width``."""
    # Work in input-sample units: the lower Nyquist is min(1, up/down) * 0.5 cycles/sample.
    nyquist_low = 0.5 * min(1.0, up / down)
    stop_edge = nyquist_low
    pass_edge = _PASSBAND_FRACTION * nyquist_low
    cutoff = 0.5 * (pass_edge + stop_edge)
    transition_rad = 2.0 * math.pi * (stop_edge - pass_edge)
    # Kaiser's estimates for the window length and shape at the wanted attenuation.
    n_taps = (_STOPBAND_DB - 8.0) / (2.285 * transition_rad)
    half_width = max(2, math.ceil(n_taps / 2.0))
    beta = 0.1102 * (_STOPBAND_DB - 8.7)

    phases = np.arange(up, dtype=np.float64)[:, None] / up
    offsets = np.arange(-half_width + 1, half_width + 1, dtype=np.float64)[None, :]
    distance = phases - offsets  # output instant minus input instant, in input samples
    ideal = 2.0 * cutoff * np.sinc(2.0 * cutoff * distance)
    ratio = np.clip(distance / half_width, -1.0, 1.0)
    window = np.i0(beta * np.sqrt(1.0 - ratio * ratio)) / np.i0(beta)
    taps = ideal * window
    taps /= taps.sum(axis=1, keepdims=True)  # exact unity gain at DC for every phase
    return taps.astype(np.float32)


class NumpyResampler:
    """Converts a stream of int16 samples from ``in_rate_hz`` to ``out_rate_hz``.

    ``process`` returns every output sample whose taps are already available; ``flush`` pads
    the end with silence, returns the rest (``ceil(n_in * out / in)`` samples in all) and leaves
    the resampler ready for a new stream.
    """

    def __init__(self, in_rate_hz: int, out_rate_hz: int) -> None:
        if in_rate_hz <= 0 or out_rate_hz <= 0:
            raise ValueError(
                f"sample rates must be positive, got {in_rate_hz} Hz -> {out_rate_hz} Hz"
            )
        common = math.gcd(in_rate_hz, out_rate_hz)
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._up = out_rate_hz // common
        self._down = in_rate_hz // common
        if self._up > _MAX_PHASES:
            raise ValueError(
                f"{in_rate_hz} Hz -> {out_rate_hz} Hz needs {self._up} filter phases "
                f"(at most {_MAX_PHASES} supported)"
            )
        self._taps = _design_taps(self._up, self._down)
        self._half_width = self._taps.shape[1] // 2
        # Per-phase taps reversed for np.convolve on the integer-upsampling fast path.
        self._taps_reversed = np.ascontiguousarray(self._taps[:, ::-1])
        self.reset()

    @property
    def ratio(self) -> float:
        return self.out_rate_hz / self.in_rate_hz

    def reset(self) -> None:
        """Forget the stream: the next sample is input 0 again, preceded by silence."""
        # _history holds inputs from absolute index _history_start on; inputs before 0 are 0.
        self._history: npt.NDArray[np.float32] = np.zeros(self._half_width - 1, np.float32)
        self._history_start = -(self._half_width - 1)
        self._next_output = 0
        self._inputs_seen = 0

    def process(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """Feed input samples; return the output samples that are now complete."""
        if samples.ndim != 1:
            raise ValueError(f"expected mono 1-D samples, got shape {samples.shape}")
        self._inputs_seen += samples.shape[0]
        if self._up == self._down:
            return samples.astype(np.int16, copy=True)
        self._history = np.concatenate((self._history, samples.astype(np.float32)))
        return self._emit(limit=None)

    def flush(self) -> npt.NDArray[np.int16]:
        """Finish the stream: return the remaining output samples and reset."""
        if self._up == self._down:
            self.reset()
            return np.zeros(0, np.int16)
        total = -(-self._inputs_seen * self._up // self._down)  # ceil without floats
        padding = np.zeros(self._half_width, np.float32)
        self._history = np.concatenate((self._history, padding))
        tail = self._emit(limit=total)
        self.reset()
        return tail

    def _emit(self, limit: int | None) -> npt.NDArray[np.int16]:
        up, down, half = self._up, self._down, self._half_width
        available_end = self._history_start + self._history.shape[0]
        # Output n needs inputs up to floor(n * down / up) + half < available_end.
        end = max(self._next_output, -(-(available_end - half) * up // down))
        if limit is not None:
            end = min(end, limit)
        start = self._next_output
        if end <= start:
            return np.zeros(0, np.int16)
        if down == 1:
            out = self._emit_upsampling(start, end)
        else:
            out = self._emit_general(start, end)
        self._next_output = end
        # Keep only the inputs the next output still needs.
        keep_from = (end * down) // up - half + 1
        drop = keep_from - self._history_start
        if drop > 0:
            self._history = self._history[drop:]
            self._history_start = keep_from
        np.rint(out, out=out)
        np.clip(out, -32768.0, 32767.0, out=out)
        return out.astype(np.int16)

    def _emit_upsampling(self, start: int, end: int) -> npt.NDArray[np.float32]:
        # down == 1: every phase is an ordinary convolution over consecutive inputs, and
        # output n = i0 * up + p, so phase p fills every up-th output.
        up, half = self._up, self._half_width
        out = np.empty(end - start, np.float32)
        for phase in range(up):
            first = start + (phase - start) % up  # first output >= start with this phase
            if first >= end:
                continue
            count = (end - 1 - first) // up + 1
            first_input = first // up - half + 1 - self._history_start
            segment = self._history[first_input : first_input + count + 2 * half - 1]
            out[first - start :: up] = np.convolve(
                segment, self._taps_reversed[phase], mode="valid"
            )
        return out

    def _emit_general(self, start: int, end: int) -> npt.NDArray[np.float32]:
        positions = np.arange(start, end, dtype=np.int64) * self._down
        centre, phase = np.divmod(positions, self._up)
        windows = sliding_window_view(self._history, self._taps.shape[1])
        rows = windows[centre - self._half_width + 1 - self._history_start]
        out: npt.NDArray[np.float32] = np.einsum("ij,ij->i", rows, self._taps[phase])
        return out


