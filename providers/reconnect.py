"""When a dropped vendor socket is opened again, and after how long: one policy for the
streaming STT (Deepgram) and TTS (ElevenLabs) sockets.

Sans-I/O: the adapters count failures, sleep and connect; this module only answers "again?"
and "after how long?". ``failures`` is the number of connection attempts in a row that came
to nothing (the handshake failed, or the socket closed before the vendor said anything). A
socket that had worked and then dropped leaves it at 0: the next attempt goes at once
(someone is talking, or waiting for a reply); later ones back off exponentially:

    failures   0   1      2       3       ...
    delay_s    0   base   base*2  base*4  ... at most max_delay_s, then jitter

past ``max_failures`` the adapter gives up (the STT stream fails; the TTS reply goes over
REST). Jitter spreads the delay over ``nominal * (1 ± jitter/2)`` with a random source the
adapter injects (a seeded ``random.Random`` in tests), so the mean stays the nominal delay
and the calls one vendor outage dropped together do not all come back in step.

Which failures are worth another attempt (decided here, mapped at each adapter's boundary):

* a ``ProviderError`` whose ``retryable`` is set: network errors, timeouts, a socket closed
  by the vendor, vendor error messages the adapter maps as transient;
* a refused handshake by status (``retryable_status``): 429 and 5xx yes; 401/403 are
  ``ProviderAuthError`` and never retried; any other 4xx is our request and is not retried;
* a close we did not ask for, whatever its code: neither vendor documents one that means
  "do not come back" (Deepgram's NET-0001 idle close, ElevenLabs's 1008 over its 5-context
  cap: a new socket serves). A socket closed that way again and again, before the vendor
  said anything, runs out of ``max_failures``.

The vendors' numbers are the table below (``DEEPGRAM``, ``ELEVENLABS``); each adapter takes
its policy as a constructor argument.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from slotline.providers.errors import ProviderError

__all__ = ["DEEPGRAM", "ELEVENLABS", "ReconnectPolicy", "retryable_status"]


def retryable_status(status: int) -> bool:
    """A refused WebSocket upgrade worth another attempt: rate-limited or a server fault."""
    return status == 429 or status >= 500


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Attempts allowed and the delay before each; see the module doc for the counting."""

    max_failures: int  # failed attempts in a row allowed; one more and the adapter gives up
    base_delay_s: float  # the delay after the first failure in a row; doubles with each
    max_delay_s: float  # the nominal delay never exceeds this
    jitter: float = 0.0  # 0.2: the delay is drawn from nominal * [0.9, 1.1)

    def __post_init__(self) -> None:
        if self.max_failures < 0 or self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError(f"negative reconnect setting: {self}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be within 0..1: {self.jitter}")

    def gives_up(self, failures: int) -> bool:
        """True when ``failures`` in a row are more than the policy allows."""
        return failures > self.max_failures

    def retries(self, error: ProviderError, failures: int) -> bool:
        """Another attempt after ``error``, with ``failures`` in a row counted so far?"""
        return error.retryable and not self.gives_up(failures)

    def delay_s(self, failures: int, random: Callable[[], float]) -> float:
        """How long to wait before the next attempt; ``random`` returns a float in [0, 1)."""
        if failures <= 0:
            return 0.0  # a socket that worked dropped: at once
        nominal = min(self.max_delay_s, self.base_delay_s * 2.0 ** (failures - 1))
        if not self.jitter:
            return nominal
        return nominal * (1.0 - self.jitter / 2 + self.jitter * random())


# Deepgram: one socket per call, the caller talking while it is down (the audio is replayed
# from the stream's buffer once it is back), so retries start at once and stay short: about
# 3.9 s of back-off over 5 failed attempts before the stream fails and the call is told.
DEEPGRAM = ReconnectPolicy(max_failures=5, base_delay_s=0.125, max_delay_s=2.0, jitter=0.2)

# ElevenLabs: a pooled socket that died unnoticed gets one more try at once on another socket
# (max_failures=0: a second failure in a row sends the reply over REST); after a failed
# handshake the pool uses REST and tries a WebSocket again only after the delay (10 s: a
# handshake refused or timing out costs a reply up to connect_timeout_s of first audio).
ELEVENLABS = ReconnectPolicy(max_failures=0, base_delay_s=10.0, max_delay_s=10.0, jitter=0.2)
