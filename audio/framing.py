"""Fixed 20 ms frames out of audio that arrives in chunks of any size.

Twilio sends and plays 8 kHz mu-law; VAD, STT and barge-in all reason in 20 ms frames
(160 mu-law bytes, or 320 bytes once decoded to 16-bit PCM). TTS vendors stream chunks of
arbitrary length, so :class:`Framer` re-cuts them.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 8000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE_HZ * FRAME_MS // 1000  # 160
ULAW_FRAME_BYTES = FRAME_SAMPLES  # one byte per mu-law sample
PCM16_FRAME_BYTES = FRAME_SAMPLES * 2  # little-endian int16
ULAW_SILENCE = 0xFF  # mu-law code of linear 0 (0x7F is "negative zero")


class Framer:
    """Cuts a byte stream into ``frame_bytes``-sized frames, keeping the remainder for later."""

    def __init__(self, frame_bytes: int) -> None:
        if frame_bytes <= 0:
            raise ValueError(f"frame_bytes must be positive, got {frame_bytes}")
        self.frame_bytes = frame_bytes
        self._pending = bytearray()

    @property
    def pending_bytes(self) -> int:
        """Bytes held back until a frame is complete."""
        return len(self._pending)

    def push(self, data: bytes) -> list[bytes]:
        """Add a chunk; return the frames it completes (possibly none)."""
        size = self.frame_bytes
        if not self._pending:
            if len(data) == size:  # the common case (Twilio's own 20 ms frames): no copy
                return [data]
            if len(data) < size:
                self._pending += data
                return []
            whole = len(data) - len(data) % size
            frames = [data[offset : offset + size] for offset in range(0, whole, size)]
            self._pending += data[whole:]
            return frames
        self._pending += data
        whole = len(self._pending) - len(self._pending) % size
        view = self._pending
        frames = [bytes(view[offset : offset + size]) for offset in range(0, whole, size)]
        del self._pending[:whole]
        return frames

    def flush(self, pad: bytes | None = None) -> bytes | None:
        """Return the incomplete tail (None if there is none) and empty the framer.

        With ``pad`` (a single byte, e.g. ``bytes([ULAW_SILENCE])``) the tail is padded to a
        whole frame; without it the tail is returned short.
        """
        if pad is not None and len(pad) != 1:
            raise ValueError(f"pad must be exactly one byte, got {len(pad)} bytes")
        if not self._pending:
            return None
        tail = bytes(self._pending)
        self._pending.clear()
        if pad is not None:
            tail += pad * (self.frame_bytes - len(tail))
        return tail

    def reset(self) -> None:
        """Drop any incomplete tail (e.g. after a barge-in ``clear``)."""
        self._pending.clear()
