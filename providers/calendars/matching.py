"""Who a vendor's booking belongs to: the comparisons every ``BookingFinder`` uses.

A vendor stores a phone number the way it was typed ("(555) 123-4567", "+1 555 123 4567"), so
numbers compare by their last ten digits (the national number of a NANP number; enough to tell
callers apart elsewhere too); e-mail addresses compare without case.
"""

from __future__ import annotations

import re

_NOT_DIGITS = re.compile(r"\D")
_PHONE_DIGITS = 10


def phone_digits(phone: str) -> str:
    """The digits two spellings of one number share ("" for no number)."""
    return _NOT_DIGITS.sub("", phone)[-_PHONE_DIGITS:]


def same_phone(wanted: str, stored: str) -> bool:
    key = phone_digits(wanted)
    return bool(key) and len(key) >= 7 and phone_digits(stored) == key


def same_email(wanted: str, stored: str) -> bool:
    return bool(wanted) and wanted.strip().lower() == stored.strip().lower()


def belongs(phone: str, email: str, phones: tuple[str, ...], emails: tuple[str, ...]) -> bool:
    """An attendee with these numbers and addresses is the caller (phone or e-mail)."""
    return any(same_phone(phone, p) for p in phones) or any(same_email(email, e) for e in emails)


_PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{5,}\d")
_EMAIL_LIKE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def phones_in(text: str) -> tuple[str, ...]:
    """The phone numbers written in free text (an event's description or notes)."""
    return tuple(match.group() for match in _PHONE_LIKE.finditer(text))


def emails_in(text: str) -> tuple[str, ...]:
    """The e-mail addresses written in free text (or ``mailto:`` values)."""
    return tuple(match.group() for match in _EMAIL_LIKE.finditer(text))
