"""audio.mulaw against an independent, plain-Python G.711 mu-law reference.

The reference follows the textbook sign / exponent / mantissa description over 16-bit
magnitudes with the 132 bias. Like the old ``audioop`` it first drops the two lowest bits
with an arithmetic shift (the 14-bit G.711 input), which rounds negative samples away from zero.
"""

from __future__ import annotations

import numpy as np
import pytest

from slotline.audio.mulaw import decode_array, encode_array, pcm16_to_ulaw, ulaw_to_pcm16

BIAS = 132
CLIP = 32635  # largest magnitude that still fits in 15 bits once biased


def reference_encode(sample: int) -> int:
    sample = (sample >> 2) << 2  # the 14-bit value G.711 actually codes
    sign = 0x80 if sample < 0 else 0x00
    magnitude = min(abs(sample), CLIP) + BIAS
    exponent = magnitude.bit_length() - 8  # the leading 1 is bit 7..14 -> exponent 0..7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def reference_decode(code: int) -> int:
    code = ~code & 0xFF
    negative = code & 0x80
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = ((2 * mantissa + 33) << (exponent + 2)) - BIAS  # segment base + step
    return -magnitude if negative else magnitude


def test_encode_matches_reference_for_every_sample() -> None:
    samples = list(range(-32768, 32768))
    expected = bytes(reference_encode(sample) for sample in samples)
    pcm = np.array(samples, dtype="<i2").tobytes()
    assert pcm16_to_ulaw(pcm) == expected
    assert encode_array(np.array(samples, dtype=np.int16)) == expected


def test_decode_matches_reference_for_every_code() -> None:
    codes = bytes(range(256))
    expected = np.array([reference_decode(code) for code in range(256)], dtype="<i2")
    assert ulaw_to_pcm16(codes) == expected.tobytes()
    assert np.array_equal(decode_array(codes), expected)


def test_reference_spot_values() -> None:
    # Well-known G.711 points: silence, full scale, the segment edges.
    assert reference_encode(0) == 0xFF
    assert reference_encode(32767) == 0x80 and reference_encode(-32768) == 0x00
    assert reference_decode(0x80) == 32124 and reference_decode(0x00) == -32124
    assert reference_decode(0xFF) == 0 and reference_decode(0x7F) == 0
    assert reference_decode(0xF0) == 120  # the top of exponent 0 (steps of 8) ...
    assert reference_decode(0xEF) == 132  # ... and the bottom of exponent 1 (steps of 16)


def test_every_code_survives_a_round_trip_except_negative_zero() -> None:
    decoded = ulaw_to_pcm16(bytes(range(256)))
    reencoded = pcm16_to_ulaw(decoded)
    assert [c for c in range(256) if reencoded[c] != c] == [0x7F]
    assert reencoded[0x7F] == 0xFF  # -0 decodes to 0, which encodes as +0


def test_encoding_is_monotonic_in_the_sample() -> None:
    # Decoding the code of every sample never goes down as the sample goes up.
    samples = np.arange(-32768, 32768, dtype=np.int16)
    levels = decode_array(encode_array(samples)).astype(np.int32)
    assert np.all(np.diff(levels) >= 0)


def test_odd_length_pcm_is_rejected() -> None:
    with pytest.raises(ValueError, match="even"):
        pcm16_to_ulaw(b"\x00\x00\x00")
