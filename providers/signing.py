"""HMAC signatures on Slotline's outgoing webhooks (custom actions, the webhook calendar).

Header ``X-Slotline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`` with
the shared secret ``SLOTLINE_WEBHOOK_SECRET``. A receiver recomputes it over the raw body,
compares in constant time and refuses timestamps older than the tolerance (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Slotline-Signature"
TOLERANCE_S = 300


def signature(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value for ``body`` signed now (or at ``timestamp``)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


def verify(
    secret: str, header: str, body: bytes, *, now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` within the tolerance."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    stamp, given = parts.get("t", ""), parts.get("v1", "")
    if not stamp.isdigit() or not given:
        return False
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > tolerance_s:
        return False
    expected = signature(secret, body, int(stamp)).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)
