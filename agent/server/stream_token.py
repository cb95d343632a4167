"""Per-call stream tokens: a media stream is admitted only for a call we answered.

Twilio signs the WebSocket upgrade against ``wss://host/twilio/media`` with no parameters, the
same URL for every call, and the ``start`` message (callSid, caller's number, flow) is not signed
at all: one captured upgrade header would open streams forever, each claiming any call. So every
TwiML we hand out for a call (the signed ``/twilio/voice`` webhook, inbound or outbound, and the
voicemail redirect we send over authenticated REST) carries a token in a ``<Parameter>``:

    token = "<expiry_unix_s>.<nonce>.<hex HMAC-SHA256(key, call_sid | expiry | nonce)>"

and the ``start`` message must return it for the same ``callSid``, before the expiry, once.

The key is derived from ``TWILIO_AUTH_TOKEN`` (HMAC of a fixed label), so every worker and
every server of one Twilio account checks tokens without sharing state, and no new secret has to
be configured. Enforced only when an auth token is configured — the same switch as webhook
signatures; the offline default stays open to the simulated caller.

Single use across processes: a token admitted here is remembered in this process until its
expiry, and — when the server has a store — claimed in the store's ``stream_nonces`` table
(``agent.store.stream_nonces``), so a replay to another worker or another server of the same
store is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Final, Literal, Protocol

PARAMETER: Final = "token"  # the <Parameter> name, read from start.customParameters
LIFETIME_S: Final = 60.0
_KEY_LABEL: Final = b"slotline-stream-token"
_MAX_TOKEN_CHARS: Final = 200  # a real token is ~90; longer input is not worth hashing
_NONCE_BYTES: Final = 12

Refusal = Literal["missing", "malformed", "forged", "expired", "replayed"]


class UsedNonces(Protocol):
    """Nonces admitted by every process that shares it (the store's ``stream_nonces``)."""

    async def claim(self, nonce: str, expiry_s: float) -> bool:
        """True for the first claim of ``nonce`` anywhere; False for every later one."""
        ...


def key_from_auth_token(auth_token: str) -> bytes:
    """The token key of a Twilio account: its auth token is never used directly as a key."""
    return hmac.new(auth_token.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _mac(key: bytes, call_sid: str, expiry_s: int, nonce: str) -> str:
    message = f"{call_sid}|{expiry_s}|{nonce}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class StreamTokens:
    """Issues tokens and checks them, remembering the nonces this process has admitted.

    ``now_s`` is wall-clock seconds (not monotonic): another process or server checks the
    expiry this one wrote.
    """

    def __init__(
        self, key: bytes, *, lifetime_s: float = LIFETIME_S,
        now_s: Callable[[], float] = time.time,
    ) -> None:
        if not key:
            raise ValueError("a stream token key must not be empty")
        self._key = key
        self._lifetime_s = lifetime_s
        self._now_s = now_s
        self._used: dict[str, float] = {}  # nonce -> expiry (unix s), forgotten after it

    @classmethod
    def for_auth_token(cls, auth_token: str) -> StreamTokens:
        return cls(key_from_auth_token(auth_token))

    def issue(self, call_sid: str) -> str:
        expiry_s = int(self._now_s() + self._lifetime_s) + 1  # whole seconds, rounded up
        nonce = secrets.token_urlsafe(_NONCE_BYTES)  # no "." in the urlsafe alphabet
        return f"{expiry_s}.{nonce}.{_mac(self._key, call_sid, expiry_s, nonce)}"

    def admit(self, call_sid: str, token: str | None) -> Refusal | None:
        """None when ``token`` was issued for ``call_sid``, is unexpired and unused (it is used
        from now on); otherwise why not."""
        if not token:
            return "missing"
        parts = token.split(".") if len(token) <= _MAX_TOKEN_CHARS else []
        if len(parts) != 3 or not parts[0].isdigit():
            return "malformed"
        expiry_text, nonce, mac = parts
        expiry_s = int(expiry_text)
        if not hmac.compare_digest(mac.encode(), _mac(self._key, call_sid, expiry_s,
                                                      nonce).encode()):
            return "forged"  # another key, another call's token, or edited
        now_s = self._now_s()
        if expiry_s < now_s:
            return "expired"
        self._forget_expired(now_s)
        if nonce in self._used:
            return "replayed"
        self._used[nonce] = float(expiry_s)
        return None

    async def admit_once(
        self, call_sid: str, token: str | None, shared: UsedNonces | None
    ) -> Refusal | None:
        """``admit``, and then the nonce's claim in ``shared`` (other workers and servers): a
        token another process admitted first is ``replayed``."""
        refusal = self.admit(call_sid, token)
        if refusal is not None or shared is None:
            return refusal
        assert token is not None  # admitted
        expiry_text, nonce, _ = token.split(".")
        return None if await shared.claim(nonce, float(expiry_text)) else "replayed"

    def _forget_expired(self, now_s: float) -> None:
        expired = [nonce for nonce, expiry_s in self._used.items() if expiry_s < now_s]
        for nonce in expired:
            del self._used[nonce]
