"""G.711 mu-law codec, bit-exact with the old ``audioop.lin2ulaw`` / ``ulaw2lin``.

Both directions are table lookups: encoding indexes a 65536-entry numpy table keyed by the
16-bit sample. Decoding to bytes, which runs on every inbound 20 ms frame of every call, uses
two 256-byte ``bytes.translate`` tables (the low and the high byte of each sample) interleaved
into the output: no numpy objects per frame, about half the cost of a numpy gather on a
160-byte frame (bench/audio_frame_cost.py).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_BIAS = 0x84


def _build_decode_table() -> npt.NDArray[np.int16]:
    codes = np.arange(256, dtype=np.int32)
    inverted = ~codes & 0xFF
    sign = inverted & 0x80
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _build_encode_table() -> npt.NDArray[np.uint8]:
    # audioop's st_14linear2ulaw, vectorised over every 16-bit sample: it works on the
    # 14-bit value. Indexed by the sample's bit pattern read as uint16.
    samples = np.arange(65536, dtype=np.int32)
    samples = np.where(samples >= 32768, samples - 65536, samples)
    pcm = samples >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    pcm = np.minimum(np.abs(pcm), 8159) + (_BIAS >> 2)
    bounds = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
    seg = np.searchsorted(bounds, pcm, side="left")
    code = ((seg << 4) | ((pcm >> (seg + 1)) & 0xF)) ^ mask
    code = np.where(seg >= 8, 0x7F ^ mask, code)  # beyond the last segment: clip
    return code.astype(np.uint8)


DECODE_TABLE: npt.NDArray[np.int16] = _build_decode_table()
ENCODE_TABLE: npt.NDArray[np.uint8] = _build_encode_table()
# The decoded sample's little-endian bytes, each as a bytes.translate table.
_DECODE_LOW: bytes = (DECODE_TABLE.astype("<u2") & 0xFF).astype(np.uint8).tobytes()
_DECODE_HIGH: bytes = (DECODE_TABLE.astype("<u2") >> 8).astype(np.uint8).tobytes()


def ulaw_to_pcm16(ulaw: bytes) -> bytes:
    """Decode mu-law bytes to 16-bit little-endian PCM (twice as many bytes)."""
    pcm = bytearray(2 * len(ulaw))
    pcm[0::2] = ulaw.translate(_DECODE_LOW)
    pcm[1::2] = ulaw.translate(_DECODE_HIGH)
    return bytes(pcm)


def pcm16_to_ulaw(pcm16: bytes) -> bytes:
    """Encode 16-bit little-endian PCM to mu-law (half as many bytes)."""
    if len(pcm16) % 2:
        raise ValueError("16-bit PCM must have an even number of bytes")
    codes: npt.NDArray[np.uint8] = ENCODE_TABLE[np.frombuffer(pcm16, dtype="<u2")]
    return codes.tobytes()


def decode_array(ulaw: bytes) -> npt.NDArray[np.int16]:
    """Decode to an int16 array without the bytes round trip."""
    return DECODE_TABLE[np.frombuffer(ulaw, dtype=np.uint8)]


def encode_array(samples: npt.NDArray[np.int16]) -> bytes:
    """Encode an int16 array to mu-law bytes."""
    codes: npt.NDArray[np.uint8] = ENCODE_TABLE[samples.astype("<i2", copy=False).view("<u2")]
    return codes.tobytes()
