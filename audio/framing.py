"""The one frame size of the call audio, in every unit the code needs it.

Twilio sends and plays 8 kHz mu-law in 20 ms frames; VAD, STT, turn-taking and barge-in all
reason in the same 20 ms frames (160 mu-law bytes, or 320 bytes once decoded to 16-bit PCM).
Every module that counts frames imports these instead of writing its own ``20``.
"""

from __future__ import annotations

SAMPLE_RATE_HZ = 8000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE_HZ * FRAME_MS // 1000  # 160
ULAW_FRAME_BYTES = FRAME_SAMPLES  # one byte per mu-law sample
PCM16_FRAME_BYTES = FRAME_SAMPLES * 2  # little-endian int16
ULAW_SILENCE = 0xFF  # mu-law code of linear 0 (0x7F is "negative zero")

