"""A voice's pitch in a 20 ms frame (``audio.pitch``): voices have it, noise does not."""

from __future__ import annotations

import numpy as np
import pytest

from slotline.audio.pitch import periodicity, pitched

RATE = 8000


def frame(samples: np.ndarray) -> bytes:
    return samples[:160].clip(-32000, 32000).astype("<i2").tobytes()


@pytest.mark.parametrize("hz", [90, 120, 180, 250, 380])
def test_a_voiced_sound_has_its_pitch(hz: int) -> None:
    t = np.arange(160) / RATE
    # a pulse train through a formant-like shape: harmonics of hz, like a vowel
    voice = np.sum([np.sin(2 * np.pi * hz * k * t) / k for k in range(1, 12)], axis=0) * 6000
    assert pitched(frame(voice))


@pytest.mark.parametrize("seed", range(5))
def test_noise_and_silence_have_none(seed: int) -> None:
    noise = np.random.default_rng(seed).normal(0, 5000, 160)
    assert not pitched(frame(noise))
    assert periodicity(bytes(320)) == 0.0  # digital silence
    assert periodicity(b"") == 0.0
