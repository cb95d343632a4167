"""The offline ``rules`` provider's extractors: deterministic readers of speech-to-text output.

A flow's ``conversation`` node collects one variable with one extractor kind. ``extract``
reads the caller's utterance and returns an :class:`Extraction` or None (no match: the flow
reprompts, and a model-backed provider may try instead); ``hints`` tells the offline
recogniser which words and sentences to expect while that variable is being collected.

    >>> now = datetime(2026, 11, 24, 10, 0)
    >>> extract("date", "december first", now=now, timezone="America/New_York")
    Extraction(value='2026-12-01', confidence=0.95)

Everything here is pure: no I/O, no clock reads (``now`` is passed in), no shared state.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from slotline.providers.base import SpeechHints

from . import answers, contact, dates, names, times, timezones
from .extraction import Choices, Context, Extraction, parse_choices
from .region import region_for

__all__ = [
    "KINDS", "Choices", "Extraction", "clock_hours_said", "consent_hints", "extract", "hints",
    "stray_negation",
]

_EXTRACTORS: dict[str, Callable[[str, Context], Extraction | None]] = {
    "text": answers.extract_text,
    "name": names.extract_name,
    "email": contact.extract_email,
    "phone": contact.extract_phone,
    "date": dates.extract_date,
    "time": times.extract_time,
    "time_of_day": times.extract_time_of_day,
    "yes_no": answers.extract_yes_no,
    "choice": answers.extract_choice,
    "number": answers.extract_number,
    "timezone": timezones.extract_timezone,
}
_HINTS: dict[str, Callable[[], SpeechHints]] = {
    "text": SpeechHints,
    "name": names.hints,
    "email": contact.email_hints,
    "phone": contact.phone_hints,
    "date": dates.hints,
    "time": times.time_hints,
    "time_of_day": times.time_of_day_hints,
    "yes_no": answers.yes_no_hints,
    "number": answers.number_hints,
    "timezone": timezones.hints,
}
KINDS: tuple[str, ...] = tuple(_EXTRACTORS)
"""The extractor kinds flow files may name."""


def extract(
    kind: str, text: str, *, now: datetime, timezone: str, choices: Choices = (),
    region: str = "",
) -> Extraction | None:
    """Read one ``kind`` of value from ``text``; None when the utterance does not say one.

    ``now`` is the current time: an aware datetime is converted to ``timezone`` (IANA name),
    a naive one is taken as already local there. ``choices`` are the options of a ``choice``
    (see :data:`Choices`). ``region`` is the ISO country phone numbers and numeric dates are
    read in ("" = the country of ``timezone``, see :mod:`.region`). Unknown kinds, bad zones
    and a choice without options raise ``ValueError``.
    """
    extractor = _EXTRACTORS.get(kind)
    if extractor is None:
        raise ValueError(f"unknown extractor kind {kind!r}; expected one of {', '.join(KINDS)}")
    zone = _zone(timezone)
    now_local = now.astimezone(zone).replace(tzinfo=None) if now.tzinfo is not None else now
    context = Context(now_local=now_local, timezone=timezone, choices=parse_choices(choices),
                      region=region_for(region, timezone))
    return extractor(text, context)


def hints(kind: str, *, choices: Choices = ()) -> SpeechHints:
    """What the recogniser should expect while a ``kind`` variable is being collected."""
    if kind == "choice":
        return answers.choice_hints(parse_choices(choices))
    if kind not in _HINTS:
        raise ValueError(f"unknown extractor kind {kind!r}; expected one of {', '.join(KINDS)}")
    return _fixed_hints(kind)


@functools.cache
def consent_hints() -> SpeechHints:
    """The hints of a yes/no question whose yes commits the caller (a booking's read-back):
    ``SpeechHints.consent``, and refusals said as sentences in the grammar."""
    return answers.consent_hints()


def clock_hours_said(text: str) -> frozenset[int]:
    """The hours (1-12) ``text`` names as clock times ("three o'clock", "four p m"), in any
    sentence: a yes that names another hour than the one read back is no yes to it."""
    return times.clock_hours_said(text)


def stray_negation(text: str) -> bool:
    """Whether ``text`` holds a negation no yes phrase holds ("that doesn't suit me ... that's
    fine"): a yes that commits the caller is asked again then."""
    return answers.stray_negation(text)


@functools.cache
def _fixed_hints(kind: str) -> SpeechHints:
    return _HINTS[kind]()


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown timezone {name!r}") from exc
