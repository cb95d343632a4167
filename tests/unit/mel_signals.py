"""Two fixed test signals for the log-mel features (``audio.mel``), built from formulas so the
reference values in ``data/smart_turn_mel.npz`` can be regenerated anywhere.

The reference is Hugging Face's ``WhisperFeatureExtractor``, installed in a throwaway venv (it
is not a dependency of Slotline). Regenerate with::

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install numpy transformers
    /tmp/ref/bin/python tests/unit/mel_signals.py tests/unit/data/smart_turn_mel.npz

Pure numpy on purpose: this file runs in that venv, without Slotline.
"""

from __future__ import annotations

import sys

import numpy as np
import numpy.typing as npt

RATE_HZ = 16_000
# Frames (of 800) whose values the fixture keeps, every band of each: enough to catch a
# shifted frame, a wrong filter or a wrong scale, at 1/16 of the size.
KEPT_FRAMES = np.arange(0, 800, 16)


def _noise(n: int, seed: int) -> npt.NDArray[np.float64]:
    """Uniform noise in [-1, 1) from a fixed linear congruential generator (the same on every
    numpy version, unlike numpy's own generators' streams)."""
    out = np.empty(n, np.float64)
    state = seed
    for i in range(n):
        state = (1103515245 * state + 12345) % 2**31
        out[i] = state / 2**30 - 1.0
    return out


def voiced_like(seconds: float, f0_hz: float, seed: int) -> npt.NDArray[np.float32]:
    """Harmonics of a gliding pitch under a syllable-rate envelope, plus a little noise."""
    t = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
    phase = 2 * np.pi * np.cumsum(f0_hz * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * t))) / RATE_HZ
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 0.5
    signal = 0.3 * envelope * harmonics + 0.01 * _noise(t.shape[0], seed)
    return signal.astype(np.float32)


def signals() -> dict[str, npt.NDArray[np.float32]]:
    """``short``: 2.5 s (padded at the front to 8 s); ``long``: 9 s (its last 8 s are used)."""
    return {"short": voiced_like(2.5, 140.0, 7), "long": voiced_like(9.0, 210.0, 11)}


def _reference(path: str) -> None:
    from transformers import WhisperFeatureExtractor  # type: ignore[import-not-found]

    extractor = WhisperFeatureExtractor(chunk_length=8)
    expected = {}
    for name, signal in signals().items():
        window = np.zeros(8 * RATE_HZ, np.float32)  # last 8 s, zeros in front, as Smart Turn
        tail = signal[-8 * RATE_HZ :]
        window[window.shape[0] - tail.shape[0] :] = tail
        features = extractor(
            window, sampling_rate=RATE_HZ, padding="max_length", max_length=8 * RATE_HZ,
            truncation=True, do_normalize=True, return_tensors="np",
        ).input_features[0]  # fmt: skip
        assert features.shape == (80, 800), features.shape
        expected[name] = features[:, KEPT_FRAMES]
        expected[name + "_mean"] = np.float64(features.mean())
    np.savez_compressed(path, **expected)


if __name__ == "__main__":
    _reference(sys.argv[1])
