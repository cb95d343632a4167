"""The one Slotline error tree. Every error a caller of Slotline code can catch is here.

    SlotlineError
    ├── ConfigError            invalid settings or flow files (names the file, key and problem)
    ├── ProtocolError          a malformed or out-of-order wire message (Twilio, vendor sockets)
    └── ProviderError          a vendor call failed; ``retryable`` decides retries in one place
        ├── ProviderTimeout    no answer within its budget (retryable)
        ├── ProviderAuthError  401/403: a configuration problem, never retried
        ├── SlotTaken          a calendar says the time is no longer free (offer alternatives)
        └── BookingIncomplete  a multi-calendar booking failed and undoing its part failed too

Vendor exceptions (aiohttp, websockets, SDKs) are mapped to these at each adapter's boundary.
It lives in ``providers`` because ``agent`` depends on ``providers`` and never the reverse.
"""

from __future__ import annotations


class SlotlineError(Exception):
    """Root of every error Slotline raises on purpose."""


class ConfigError(SlotlineError):
    """Invalid configuration: one clear message naming the source, the key and the problem."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


class ProtocolError(SlotlineError):
    """A wire message that cannot be accepted. ``code`` is a stable, loggable identifier."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class ProviderError(SlotlineError):
    """A vendor call failed."""

    retryable: bool = False

    def __init__(self, provider: str, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message
        if retryable is not None:
            self.retryable = retryable


class ProviderTimeout(ProviderError):
    retryable = True


class ProviderAuthError(ProviderError):
    retryable = False


class SlotTaken(ProviderError):
    """The slot was taken meanwhile; the booking engine offers the next alternatives."""

    retryable = False


class BookingIncomplete(ProviderError):
    """A booking over several calendars failed part-way and cancelling the part already made
    failed too, after retries: ``still_confirmed`` (Slotline booking ids, or
    ``calendar/vendor id`` for a vendor booking never recorded) stay confirmed and need a hand."""

    retryable = False

    def __init__(self, provider: str, message: str, still_confirmed: tuple[str, ...]) -> None:
        super().__init__(provider, message)
        self.still_confirmed = still_confirmed
