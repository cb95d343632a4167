"""Dates: "next tuesday", "december first", "the twenty third", "tomorrow", "in two weeks".

Spoken patterns are resolved by the rules below against the caller's local date; dateparser
(English only, future preference) reads what they do not cover: numeric and written dates
("12/1", "2026-12-01", "Dec 1st") and relative offsets ("in 3 days", "2 weeks from now").
A numeric date is read in the order of the caller's region (``Context.region``): "5/1" is the
5th of January in London and May 1st in New York.
A date before today is never returned: the flow reprompts instead.

Weekday meaning (common US usage; ``today`` is the caller's local date):

* "tuesday", "on tuesday", "next tuesday", "coming tuesday": the first Tuesday *after* today,
  so on a Tuesday they all mean a week from today, and on a Monday "next tuesday" is tomorrow.
* "this tuesday": today if today is a Tuesday, otherwise the coming one.
* "tuesday next week", "next week tuesday": the Tuesday of the next Monday-based week;
  "tuesday this week": the Tuesday of the current week (rejected once it has passed).
* "tuesday after next", "a week from tuesday": the coming Tuesday plus seven days.

"next week" or "next month" alone is not a date: the caller is asked which day.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, timedelta

import dateparser

from slotline.providers.base import SpeechHints

from . import jsgf
from .extraction import Context, Extraction
from .normalize import NEGATORS, has_phrase, negated, parse_cardinal, parse_ordinal, tokens
from .region import date_order
from .vocab import DAY_ORDINALS, MONTH_ABBREVIATIONS, MONTHS, WEEKDAYS

logger = logging.getLogger(__name__)

_MAX_AHEAD = timedelta(days=3 * 366)  # further out is a misrecognition, not a booking
_MAX_WEEKS = 520  # keeps "99999 weeks from today" inside what dates can hold
_MAX_DATEPARSER_TOKENS = 8  # "the 1 of december 2026" is 5; longer runs are not one date
_RELATIVE_WORDS = frozenset(
    ("in", "day", "days", "week", "weeks", "month", "months", "from", "now", "today",
     "tomorrow", "after", "of", "the", "on", "next", "this", "and", "a", "an")
)
_UNIT_WORDS = frozenset(("day", "days", "week", "weeks", "month", "months"))
_EDGE_WORDS = frozenset(("on", "the", "of", "and", "a", "an", "after"))
_NOT_A_DAY_AFTER = frozenset(("available", "opening", "slot", "one", "thing", "time", "step"))
DayAndConfidence = tuple[date, float]
# Within two words before a weekday, these make it a day the caller rules out
_RULED_OUT_BY = NEGATORS | {"except", "excluding"}


def extract_date(text: str, ctx: Context) -> Extraction | None:
    toks = tokens(text)
    today = ctx.now_local.date()
    for rule in (_month_and_day, _day_of_month, _relative_day, _weekday):
        found = rule(toks, today)
        if found is not None:
            return _accept(found, today)
    found = _via_dateparser(toks, ctx)
    return _accept(found, today) if found is not None else None


def _accept(found: DayAndConfidence, today: date) -> Extraction | None:
    day, confidence = found
    if not today <= day <= today + _MAX_AHEAD:
        return None
    return Extraction(value=day.isoformat(), confidence=confidence)


def _month_of(token: str) -> int | None:
    if token in MONTHS:
        return MONTHS.index(token) + 1
    return MONTH_ABBREVIATIONS.get(token)


def _day_at(toks: Sequence[str], start: int) -> tuple[int, int] | None:
    """A day of the month said at ``start`` (ordinal, or a cardinal up to 31)."""
    found = parse_ordinal(toks, start) or parse_cardinal(toks, start)
    if found is None or not 1 <= found[0] <= 31:
        return None
    return found


def _year_at(toks: Sequence[str], start: int) -> int | None:
    """ "2026", "two thousand twenty six" or "twenty twenty six" at ``start``."""
    found = parse_cardinal(toks, start)
    if found is None:
        return None
    value, end = found
    if value == 20:
        rest = parse_cardinal(toks, end)
        if rest is not None and 10 <= rest[0] <= 99:
            return 2000 + rest[0]
    return value if 2000 <= value <= 2099 else None


def _month_and_day(toks: Sequence[str], today: date) -> DayAndConfidence | None:
    """ "december first", "december the 1st 2027", "the first of december", "1st dec"."""
    for i, token in enumerate(toks):
        month = _month_of(token)
        if month is None:
            continue
        after = i + 2 if i + 1 < len(toks) and toks[i + 1] == "the" else i + 1
        # "may" is also the verb ("may two of us come"): only an ordinal makes it the month
        found = parse_ordinal(toks, after) if token == "may" else _day_at(toks, after)
        year = None
        if found is not None:
            day, end = found
            year = _year_at(toks, end)
        else:
            day_before = _day_ending_at(toks, i - 1 if i and toks[i - 1] == "of" else i)
            if day_before is None:
                continue
            day = day_before
            year = _year_at(toks, i + 1)
        resolved = _resolve(year, month, day, today)
        if resolved is None:
            return None
        return resolved, _weekday_agreement(toks, resolved, 0.95)
    return None


def _day_ending_at(toks: Sequence[str], end: int) -> int | None:
    """A day ordinal whose last token is just before ``end`` ("first of" / "twenty first")."""
    for start in (end - 2, end - 1):
        if start < 0:
            continue
        found = parse_ordinal(toks, start) or parse_cardinal(toks, start)
        if found is not None and found[1] == end and 1 <= found[0] <= 31:
            return found[0]
    return None


def _resolve(year: int | None, month: int, day: int, today: date) -> date | None:
    """The date, with the year (when not said) the first one that keeps it today or later."""
    years = (year,) if year is not None else tuple(range(today.year, today.year + 5))
    for candidate_year in years:
        try:
            candidate = date(candidate_year, month, day)
        except ValueError:
            continue
        if year is not None or candidate >= today:
            return candidate
    return None


def _day_of_month(toks: Sequence[str], today: date) -> DayAndConfidence | None:
    """ "the twenty third", "on the 1st", "23rd": the next such day of a month."""
    for i, token in enumerate(toks):
        explicit_numeral = token[:1].isdigit() and not token.isdigit()
        if token != "the" and not explicit_numeral:
            continue
        found = parse_ordinal(toks, i if explicit_numeral else i + 1)
        if found is None and token == "the" and i + 1 < len(toks) and toks[i + 1].isdigit():
            found = parse_cardinal(toks, i + 1)
        if found is None or not 1 <= found[0] <= 31:
            continue
        day, end = found
        if end < len(toks) and toks[end] in _NOT_A_DAY_AFTER:
            continue
        candidates = _next_days_of_month(day, today)
        if not candidates:
            return None
        # "friday the thirteenth": the first such day that is a Friday, if one comes in a year
        for candidate in candidates:
            if _weekday_agreement(toks, candidate, 0.85) > 0.5:
                return candidate, 0.85
        return candidates[0], 0.5
    return None


def _next_days_of_month(day: int, today: date) -> list[date]:
    """That day of each month from today on, for the next year (months without it skipped)."""
    days = []
    month_index = today.year * 12 + today.month - 1
    for ahead in range(13):
        year, month = divmod(month_index + ahead, 12)
        try:
            candidate = date(year, month + 1, day)
        except ValueError:
            continue
        if candidate >= today:
            days.append(candidate)
    return days


def _weekday_agreement(toks: Sequence[str], day: date, confidence: float) -> float:
    """Lower the confidence when the caller also named a weekday that does not match."""
    named = [WEEKDAYS.index(t) for t in toks if t in WEEKDAYS]
    return confidence if not named or day.weekday() in named else 0.5


def _relative_day(toks: Sequence[str], today: date) -> DayAndConfidence | None:
    if "yesterday" in toks:
        return today - timedelta(days=1), 0.9
    if has_phrase(toks, "day after tomorrow"):
        offset, anchor = 2, "tomorrow"
    elif "tomorrow" in toks:
        offset, anchor = 1, "tomorrow"
    elif "today" in toks or "tonight" in toks or any(
        has_phrase(toks, f"this {part}") for part in ("morning", "afternoon", "evening")
    ):
        offset, anchor = 0, "today"
    elif has_phrase(toks, "in a week") or has_phrase(toks, "a week from now"):
        return today + timedelta(days=7), 0.9
    else:
        return None
    return today + timedelta(days=offset + 7 * _weeks_before(toks, anchor)), 0.95


def _weeks_before(toks: Sequence[str], anchor: str) -> int:
    """N in "N week(s) from <anchor>" ("a week from today" is 1), else 0."""
    for i in range(len(toks) - 2):
        if toks[i] in ("week", "weeks") and toks[i + 1] == "from" and toks[i + 2] == anchor:
            if i and toks[i - 1] in ("a", "one"):
                return 1
            found = parse_cardinal(toks, i - 1) if i else None
            return min(found[0], _MAX_WEEKS) if found is not None and found[1] == i else 1
    return 0


def _ruled_out(toks: Sequence[str], i: int) -> bool:
    """ "not monday", "no monday", "any day except wednesday", "i can't do friday" (but in
    "not tuesday wednesday" only Tuesday is)."""
    before = toks[i - 1] if i else ""
    if before in ("no", "nope", "nah"):
        return True
    return negated(toks, i, within=1 if before in WEEKDAYS else 2, by=_RULED_OUT_BY)


def _weekday(toks: Sequence[str], today: date) -> DayAndConfidence | None:
    for i, token in enumerate(toks):
        if token not in WEEKDAYS or _ruled_out(toks, i):
            continue
        wanted = WEEKDAYS.index(token)
        before = toks[max(0, i - 2) : i]
        week_start = today - timedelta(days=today.weekday())
        if has_phrase(toks, "next week"):
            return week_start + timedelta(days=7 + wanted), 0.9
        if has_phrase(toks, "this week"):
            return week_start + timedelta(days=wanted), 0.9
        ahead = (wanted - today.weekday()) % 7
        if not (before and before[-1] == "this"):
            ahead = ahead or 7
        weeks_later = _weeks_before(toks, token)  # "a week from tuesday"
        if weeks_later or has_phrase(toks[i:], f"{token} after next"):
            ahead += 7 * max(1, weeks_later)
        return today + timedelta(days=ahead), 0.9
    return None


def _via_dateparser(toks: Sequence[str], ctx: Context) -> DayAndConfidence | None:
    for run in _date_runs(toks):
        parsed = dateparser.parse(
            " ".join(run),
            languages=["en"],
            settings={
                "PREFER_DATES_FROM": "future",
                "DATE_ORDER": date_order(ctx.region),
                "RELATIVE_BASE": ctx.now_local,
                "TIMEZONE": ctx.timezone,
                "RETURN_AS_TIMEZONE_AWARE": False,
                "REQUIRE_PARTS": ["day"],
            },
        )
        if parsed is not None:
            logger.debug("date read by dateparser from a %d-token run", len(run))
            return parsed.date(), 0.75
    return None


def _date_runs(toks: Sequence[str]) -> list[list[str]]:
    """Runs of date-like tokens, numbers as numerals, that contain a number ("in 3 days",
    "12/1"); a run without one ("next week") is never handed to dateparser."""
    runs: list[list[str]] = []
    current: list[str] = []
    i = 0
    while i <= len(toks):
        token = toks[i] if i < len(toks) else ""
        number = (parse_ordinal(toks, i) or parse_cardinal(toks, i)) if token else None
        if number is not None:
            current.append(str(number[0]))
            i = number[1]
            continue
        if token and token[:1].isdigit():
            current.append(token)
        elif token in _RELATIVE_WORDS or token in WEEKDAYS or _month_of(token) not in (None, 5):
            # (May with a day is read by _month_and_day; here "may" is the verb)
            following = toks[i + 1] if i + 1 < len(toks) else ""
            is_count = token in ("a", "an") and following in ("day", "week", "month")
            current.append("1" if is_count else token)
        else:
            while current and current[0] in _EDGE_WORDS:
                current.pop(0)
            while current and current[-1] in _EDGE_WORDS:
                current.pop()
            if _worth_parsing(current):
                runs.append(current)
            current = []
        i += 1
    return runs


def _worth_parsing(run: Sequence[str]) -> bool:
    """A number with what makes it a date: a month, a unit ("3 days"), or a numeric date.
    Bare numbers ("10 30", "5 5 5 1 2 3 4") are clock times or digits, not dates."""
    if not run or len(run) > _MAX_DATEPARSER_TOKENS or not any(t[:1].isdigit() for t in run):
        return False
    # a unit counts right after its number ("3 weeks"; "three on the week" is no date)
    return any(
        "/" in t or "-" in t or _month_of(t) is not None
        or t in _UNIT_WORDS and i > 0 and run[i - 1][:1].isdigit()
        for i, t in enumerate(run)
    )


def hints() -> SpeechHints:
    weekday = jsgf.alt(WEEKDAYS)
    month = jsgf.alt(MONTHS)
    ordinal = jsgf.alt(DAY_ORDINALS)
    rules = (
        ("lead", jsgf.alt(("on", "how about", "what about", "maybe", "let's do", "let's say",
                           "i'd like", "can we do", "i can do", "i'm free", "um", "uh"))),
        ("tail", jsgf.alt(("please", "if possible", "works for me", "would be great",
                           "is fine", "would work", "if you have it"))),
        ("when", jsgf.alt(("<relative>", "<weekday_date>", "<month_date>", "<day_date>"))),
        ("relative", jsgf.alt(("today", "tomorrow", "the day after tomorrow", "in a week",
                               "a week from today", "in <count> days", "in <count> weeks"))),
        ("count", jsgf.alt(("two", "three", "four", "five", "six", "ten"))),
        ("weekday_date", jsgf.alt((
            f"[ next | this | this coming | coming ] {weekday} [ next week | this week ]",
            f"{weekday} after next", f"a week from {weekday}",
        ))),
        ("month_date", jsgf.alt((
            f"[ {weekday} ] {month} [ the ] {ordinal}", f"[ the ] {ordinal} of {month}",
        ))),
        ("day_date", f"[ {weekday} ] the {ordinal}"),
    )
    phrases = (
        "today", "tomorrow", "the day after tomorrow",
        *(f"{modifier}{day}" for modifier in ("", "next ", "this ", "on ") for day in WEEKDAYS),
        *(f"{name} first" for name in MONTHS), "the twenty third", "the first of december",
    )
    return SpeechHints(
        phrases=phrases, grammar=jsgf.grammar("date", "[ <lead> ] <when> [ <tail> ]", rules)
    )
