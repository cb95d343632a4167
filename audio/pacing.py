"""Sans-I/O pacing of outbound agent audio against the caller's playback clock.

Twilio buffers every media message we send and plays it in real time. Sending a whole reply at
once would make a barge-in ``clear`` discard seconds of audio we already paid to synthesise, and
would make "what the caller heard" (the last echoed mark) coarse. So the sender keeps at most
``lead_ms`` of audio queued ahead of playback: enough to ride out network jitter, little enough
that a ``clear`` throws little away. Sending starts immediately (an empty queue never waits).

The model: playback of newly sent audio starts at ``max(now, end of what is queued)``; mu-law
is one byte per sample. The caller supplies the clock (``now_s``), so tests use plain floats.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class OutboundPacer:
    """Tracks how much sent audio is still unplayed and says how long to hold the next send."""

    def __init__(self, lead_ms: int = 300, sample_rate_hz: int = 8000) -> None:
        if lead_ms < 0:
            raise ValueError(f"lead_ms must not be negative, got {lead_ms}")
        if sample_rate_hz <= 0:
            raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
        self.lead_ms = lead_ms
        self.sample_rate_hz = sample_rate_hz
        self._lead_s = lead_ms / 1000.0
        self._playback_end_s: float | None = None  # when everything sent so far has played

    def delay_s(self, now_s: float) -> float:
        """Seconds to wait before sending more (0.0 means send now)."""
        if self._playback_end_s is None:
            return 0.0
        return max(0.0, self._playback_end_s - now_s - self._lead_s)

    def sent(self, now_s: float, n_bytes: int) -> None:
        """Record ``n_bytes`` of mu-law handed to the socket at ``now_s``."""
        if n_bytes < 0:
            raise ValueError(f"n_bytes must not be negative, got {n_bytes}")
        starts_s = now_s
        if self._playback_end_s is not None and self._playback_end_s > now_s:
            starts_s = self._playback_end_s
        self._playback_end_s = starts_s + n_bytes / self.sample_rate_hz

    def queued_ms(self, now_s: float) -> float:
        """Milliseconds of sent audio not yet played at ``now_s``."""
        if self._playback_end_s is None:
            return 0.0
        return max(0.0, (self._playback_end_s - now_s) * 1000.0)

    def reset(self) -> None:
        """Forget the queue (after a ``clear``: Twilio dropped everything unplayed)."""
        self._playback_end_s = None
