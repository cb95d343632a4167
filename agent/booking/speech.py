"""Slots as natural English for text-to-speech, in the caller's zone.

"I have 10 am, 2 pm and 4 pm on Tuesday, December 1st" — one group per local date, times
chronological; "10:30 am", "noon", "midnight"; "today" / "tomorrow" when ``now`` is given. The
year is never spoken: slots lie within the booking window, at most a few months ahead. On the
fall-back DST day an hour repeats, and "1 am" may then name two different instants.

When the caller's zone is not the business's, the business's clock is named beside the caller's
("2 pm your time, that's 5 pm Eastern time": ``speak_elsewhere``), whenever the two clocks read
differently at that instant — so a London caller and a New York business hear a 5-hour gap,
or 4 hours in the weeks between the US and the EU clock changes.

An e-mail address is read back the way a person reads one on the phone (``speak_email``): the
local part spelled letter by letter ("j o h n dot s m i t h"), the domain's well-known names
said as words ("at gmail dot com"), any other name spelled ("at x k c d dot org").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta

from slotline.agent.booking.intervals import Slot
from slotline.agent.booking.zones import load_zone

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_SUFFIXES = {1: "st", 2: "nd", 3: "rd"}
NOTHING_AVAILABLE = "I don't have any open times then"

# How a zone is named aloud ("5 pm Eastern time"); any other zone by its city ("Berlin time").
_ZONE_NAMES: Mapping[str, str] = {
    "America/New_York": "Eastern", "America/Detroit": "Eastern", "America/Toronto": "Eastern",
    "America/Indiana/Indianapolis": "Eastern", "America/Chicago": "Central",
    "America/Winnipeg": "Central", "America/Denver": "Mountain", "America/Boise": "Mountain",
    "America/Edmonton": "Mountain", "America/Phoenix": "Arizona", "America/Los_Angeles": "Pacific",
    "America/Vancouver": "Pacific", "America/Anchorage": "Alaska", "Pacific/Honolulu": "Hawaii",
    "America/Halifax": "Atlantic", "Europe/London": "UK", "UTC": "UTC", "Etc/UTC": "UTC",
    "Asia/Kolkata": "India",
}  # fmt: skip

# How the symbols of an address are said.
_EMAIL_SYMBOLS: Mapping[str, str] = {
    ".": "dot", "@": "at", "_": "underscore", "-": "dash", "+": "plus",
}  # fmt: skip
# Domain labels said as words: the names callers say as words (the e-mail grammar's domains,
# ``providers.llm.rules.vocab.EMAIL_DOMAINS``, and a few more) and the top-level domains read
# as a word; any other label is spelled ("aol" is "a o l", "io" is "i o").
_DOMAIN_WORDS = frozenset((
    "gmail", "googlemail", "yahoo", "hotmail", "outlook", "example", "icloud", "mail", "proton",
    "protonmail", "live", "comcast", "company", "me", "mac", "fastmail", "zoho", "verizon",
    "com", "net", "org", "edu", "gov", "info", "biz", "mil",
))


def ordinal(number: int) -> str:
    """1 -> "1st", 2 -> "2nd", 11 -> "11th", 23 -> "23rd"."""
    if 10 <= number % 100 <= 20:
        return f"{number}th"
    return f"{number}{_SUFFIXES.get(number % 10, 'th')}"


def speak_clock(local: datetime) -> str:
    """A wall-clock time as said aloud: "9 am", "10:30 am", "noon", "midnight", "12:15 pm"."""
    hour, minute = local.hour, local.minute
    if minute == 0 and hour == 12:
        return "noon"
    if minute == 0 and hour == 0:
        return "midnight"
    suffix = "am" if hour < 12 else "pm"
    hour_12 = hour % 12 or 12
    return f"{hour_12} {suffix}" if minute == 0 else f"{hour_12}:{minute:02d} {suffix}"


def speak_date(day: date, today: date | None = None) -> str:
    """The date as said aloud: "today", "tomorrow" (relative to ``today``), else
    "Tuesday, December 1st"."""
    if today is not None:
        if day == today:
            return "today"
        if day == today + timedelta(days=1):
            return "tomorrow"
    return f"{_WEEKDAYS[day.weekday()]}, {_MONTHS[day.month - 1]} {ordinal(day.day)}"


def spoken_start(start: datetime, tz: str, now: datetime | None = None) -> tuple[str, str]:
    """When a slot starts, as said aloud in zone ``tz``: its date ("Tuesday, December 1st";
    "today" / "tomorrow" relative to ``now``) and its time ("2 pm"). An offer the caller hears
    (``agent.flow.messages.SlotOffer``) is made of these two."""
    zone = load_zone(tz)
    local = start.astimezone(zone)
    today = None if now is None else now.astimezone(zone).date()
    return speak_date(local.date(), today), speak_clock(local)


def speak_times(times: Iterable[tuple[str, str]]) -> str:
    """The one sentence that offers times: ``(date, time)`` pairs as ``spoken_start`` gives
    them, said in the order given, one group per date ("I have 10 am and 2 pm on Tuesday,
    December 1st, or 9 am tomorrow"); ``NOTHING_AVAILABLE`` for none."""
    by_day: dict[str, list[str]] = {}
    for day, clock in times:
        by_day.setdefault(day, []).append(clock)
    if not by_day:
        return NOTHING_AVAILABLE
    groups = []
    for day, clocks in by_day.items():
        where = day if day in ("today", "tomorrow") else f"on {day}"
        groups.append(f"{_and_list(clocks)} {where}")
    if len(groups) == 1:
        return f"I have {groups[0]}"
    return f"I have {', '.join(groups[:-1])}, or {groups[-1]}"


def speak_slots(slots: Iterable[Slot], tz: str, now: datetime | None = None) -> str:
    """One sentence offering ``slots`` in chronological order, in the caller's zone ``tz``."""
    return speak_times(spoken_start(slot.start, tz, now) for slot in sorted(set(slots)))


def _and_list(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} and {items[-1]}"


def spoken_zone(tz: str) -> str:
    """A zone as named aloud: "Eastern", "Pacific", "UK", else its city ("Berlin")."""
    return _ZONE_NAMES.get(tz) or tz.rsplit("/", 1)[-1].replace("_", " ")


def clocks_differ(tz: str, other: str, at: datetime) -> bool:
    """Whether the two zones' clocks read differently at the instant ``at``."""
    if tz == other:
        return False
    return at.astimezone(load_zone(tz)).utcoffset() != at.astimezone(load_zone(other)).utcoffset()


def speak_elsewhere(start: datetime, tz: str, other: str) -> str:
    """The instant ``start`` on ``other``'s clock, for a caller in ``tz``: "that's 5 pm Eastern
    time" ("… on Wednesday" when that clock is on another day); "" when both read alike."""
    if not clocks_differ(tz, other, start):
        return ""
    there = start.astimezone(load_zone(other))
    day = "" if there.date() == start.astimezone(load_zone(tz)).date() else (
        f" on {_WEEKDAYS[there.weekday()]}")
    return f"that's {speak_clock(there)} {spoken_zone(other)} time{day}"


def speak_email(address: str) -> str:
    """``address`` as read back on the phone: "john.smith@gmail.com" -> "j o h n dot s m i t h
    at gmail dot com". Every letter and digit of the local part is spelled (that is what the
    caller checks), the domain's well-known labels are said as words, any other label spelled;
    ".", "_", "-" and "+" are said as "dot", "underscore", "dash" and "plus"."""
    local, _, domain = address.strip().lower().rpartition("@")
    if not local:
        return _spell(domain)
    labels = [label if label in _DOMAIN_WORDS else _spell(label) for label in domain.split(".")]
    return f"{_spell(local)} at {' dot '.join(labels)}"


def _spell(text: str) -> str:
    """Each character on its own, symbols as their words: "j.s-1" -> "j dot s dash 1"."""
    return " ".join(_EMAIL_SYMBOLS.get(char, char) for char in text if not char.isspace())
