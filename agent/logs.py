"""Logging set-up: one format, and phone numbers and e-mail addresses masked on every line."""

from __future__ import annotations

import logging
import re

_EMAIL = re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
# Phone shapes: E.164 (+ then 9-15 digits, separators allowed), NANP "(555) 123-4567" /
# "555-123-4567", or 10-15 bare digits. IPs, ports, dates and byte counts do not match.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d[\d\s().-]{7,}\d|\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}|\d{10,15})(?!\w)"
)


def mask(text: str) -> str:
    """``john.smith@example.com`` → ``j***@example.com``; ``+15551234567`` → ``***67``."""
    text = _EMAIL.sub(r"\1***@\2", text)
    return _PHONE.sub(lambda m: "***" + re.sub(r"\D", "", m.group(0))[-2:], text)


class MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
