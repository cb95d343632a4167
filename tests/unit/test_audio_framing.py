from __future__ import annotations

from slotline.audio.framing import (
    FRAME_MS,
    FRAME_SAMPLES,
    PCM16_FRAME_BYTES,
    SAMPLE_RATE_HZ,
    ULAW_FRAME_BYTES,
    ULAW_SILENCE,
)
from slotline.audio.mulaw import ulaw_to_pcm16


def test_constants_describe_20ms_at_8khz() -> None:
    assert (SAMPLE_RATE_HZ, FRAME_MS, FRAME_SAMPLES) == (8000, 20, 160)
    assert (ULAW_FRAME_BYTES, PCM16_FRAME_BYTES) == (160, 320)
    assert ulaw_to_pcm16(bytes([ULAW_SILENCE]) * 4) == b"\x00" * 8
