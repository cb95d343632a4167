"""Whether a 20 ms frame has a voice's pitch: sans-I/O, numpy, a few microseconds a frame.

A voice is periodic: its normalised autocorrelation has a strong peak at the pitch period
(80-400 Hz: 2.5-12.5 ms, 20-100 samples at 8 kHz). A cough, line crackle or a door are loud and
often pass a VAD, but they are noise: no lag correlates much. The turn detector counts only
pitched frames towards a barge-in (``agent.call.turns``), so noise over the agent does not stop
it, while a word ("wait", "uh-huh") does; unvoiced consonants ("s", "f") are not pitched either,
which only delays an interruption that starts with one by a frame or two.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SAMPLE_RATE_HZ = 8000
MIN_LAG = SAMPLE_RATE_HZ // 400  # 400 Hz: the highest pitch counted
MAX_LAG = SAMPLE_RATE_HZ // 80  # 80 Hz: the lowest (a 20 ms frame holds 1.6 periods of it)
PITCHED_AT = 0.5  # normalised autocorrelation at the best lag; measured in bench.turn_end_set


_LAGS = np.arange(MIN_LAG, MAX_LAG + 1)


def periodicity(pcm16: bytes) -> float:
    """The best normalised autocorrelation of the frame over the pitch lags (0..1)."""
    x: npt.NDArray[np.float64] = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    n = x.shape[0]
    if n <= MAX_LAG:
        return 0.0
    x -= x.mean()
    energy = np.cumsum(x * x)  # energy[k]: x[:k + 1] squared, summed
    total = float(energy[-1])
    if total <= 0.0:
        return 0.0
    products = np.correlate(x, x, mode="full")[n - 1 + MIN_LAG : n + MAX_LAG]  # lags 20..100
    head = energy[n - 1 - _LAGS]  # x[:n - lag] squared
    tail = total - energy[_LAGS - 1]  # x[lag:] squared
    scale = np.sqrt(head * tail)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(scale > 0.0, products / scale, 0.0)
    return float(r.max())


def pitched(pcm16: bytes) -> bool:
    """Whether the frame sounds like a voice (see the module docstring)."""
    return periodicity(pcm16) >= PITCHED_AT
