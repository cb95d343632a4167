"""Clock times ("three p m", "ten thirty in the morning", "noon", "half past two"), time
ranges ("between two and four"), and the part of the day ("in the afternoon", "after lunch").

An hour said without am/pm is read for a booking during business hours: 7 to 11 are morning,
1 to 6 afternoon (so "half past two" is 14:30), 12 is noon; a part of the day said anywhere in
the utterance ("in the afternoon around three") decides instead. "ten to four" is 15:50 (the
clock reading) when the first number is 5, 10, 20 or 25 or "quarter"; "nine to five", and
anything after "from" or "between", is a range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from slotline.providers.base import SpeechHints

from . import jsgf
from .extraction import Context, Extraction
from .normalize import (
    NEGATORS,
    NUMBER_WORDS,
    TEENS,
    TENS,
    UNITS,
    find_phrase,
    negated,
    parse_cardinal,
    parse_ordinal,
    tokens,
)
from .vocab import CLOCK_MINUTES, HOURS, WEEKDAYS

_PM_PARTS = (
    ("in", "the", "afternoon"), ("in", "the", "evening"), ("this", "afternoon"),
    ("this", "evening"), ("at", "night"), ("tonight",), ("afternoon",), ("evening",),
)
_AM_PARTS = (("in", "the", "morning"), ("this", "morning"), ("morning",))
# "am" alone is also the verb ("i am free at three"), so it counts only right after a number.
_PM_SUFFIXES = (*_PM_PARTS, ("pm",), ("p", "m"))
_AM_SUFFIXES = (*_AM_PARTS, ("am",), ("a", "m"))
_MINUTES_TO = frozenset((5, 10, 20, 25))
_RANGE_JOINERS = frozenset(("to", "till", "until", "through", "and"))
_NOT_BEFORE_CLOCK = frozenset(("the", "that", "this", "any", "every", "no", "in"))
_NOT_AFTER_CLOCK = frozenset((
    "minutes", "minute", "hours", "hour", "days", "day", "weeks", "week", "people", "of",
    "person", "times", "more",
))
_HINT_WORDS = frozenset(("at", "around", "about", "by", "say", "maybe"))
# A number word right after a clock's words makes them digits of a run, not a clock ("one"
# excepted: "the two thirty one")
_DIGIT_RUN = frozenset(UNITS) - {"one"}
_REFUSING = NEGATORS - {"not"}
# The only words a bare number ("two", no "at", no "pm") may come with to be read as a time
_AROUND_BARE_CLOCK = frozenset((
    "please", "works", "work", "for", "me", "is", "fine", "good", "great", "that", "would",
    "be", "okay", "ok", "yes", "yeah", "sure", "how", "let's", "do", "um", "uh", "then",
    "perfect", "o'clock", "thanks", "thank", "you", "oh", "well", "so", "can", "we", "i'd",
    "like", "prefer", "it", "best", "better", "if", "possible", "no", "actually", "today",
    "tomorrow", "on", "one", "sounds", "the", "then", "could", "instead", "ideal", "suits",
    "have", "you've", "got", "slot", "let's", "go", "with", "take", "i'll", *WEEKDAYS,
))
_DAY_PARTS = {
    "morning": "morning", "mornings": "morning", "afternoon": "afternoon",
    "afternoons": "afternoon", "evening": "evening", "evenings": "evening", "night": "evening",
    "tonight": "evening", "nights": "evening",
}
_DAY_PART_PHRASES = (  # most specific first; "am" alone is the verb, so only "a m"
    ("after lunch", "afternoon"), ("after noon", "afternoon"), ("before noon", "morning"),
    ("before lunch", "morning"), ("first thing", "morning"), ("lunchtime", "afternoon"),
    ("lunch time", "afternoon"), ("midday", "afternoon"), ("after work", "evening"),
    ("a m", "morning"), ("p m", "afternoon"), ("pm", "afternoon"), ("early", "morning"),
    ("late", "evening"),
)
_NEGATIONS = NEGATORS | {"no"}  # before a part of the day: "no, not the morning"
_AFTERNOON_HOURS = range(12, 19)  # "in the afternoon" with an hour outside: not understood


@dataclass(frozen=True, slots=True)
class _Clock:
    hour: int  # as said: 1-12, or 0-23 for a 24-hour reading
    minute: int
    meridiem: str  # "am", "pm", or "" when the caller did not say


def extract_time(text: str, ctx: Context) -> Extraction | None:
    toks = tokens(text)
    day_part = _said_meridiem(toks)
    found = _range(toks, day_part)
    if found is not None:
        return found
    best: tuple[int, _Clock, int, int] | None = None
    for i in range(len(toks)):
        if i and toks[i - 1] in NUMBER_WORDS:
            continue  # the middle of "twenty five hundred"
        if negated(toks, i):
            continue  # a clock the caller rules out: "not at one", "i can't do two"
        parsed = _clock_at(toks, i, minutes_to=True)
        if parsed is None:
            continue
        clock, end = parsed
        if i and toks[i - 1] in _NOT_BEFORE_CLOCK and not (
            clock.meridiem or clock.minute or "o'clock" in toks[i + 1 : end + 1]
        ):  # "the one"; but "the two p m one", "the four thirty slot", "the two o'clock one"
            continue
        if _refused_after(toks, end) or _digit_run(toks, i, end):
            continue
        score = 2 * bool(clock.meridiem) + (i > 0 and toks[i - 1] in _HINT_WORDS)
        if best is None or score > best[0]:
            best = (score, clock, i, end)
    if best is None:
        return None
    score, clock, start, end = best
    if not score and not day_part and any(
        t not in _AROUND_BARE_CLOCK for t in (*toks[:start], *toks[end:])
    ):
        return None  # a lone number in a sentence about something else ("one number you have")
    minutes = _minutes_of_day(clock, day_part)
    if minutes is None:
        return None
    if "afternoon" in toks and minutes // 60 not in _AFTERNOON_HOURS:
        return None  # "eight in the afternoon": one of the two is misheard
    confidence = 0.95 if clock.meridiem or day_part or clock.hour == 0 or clock.hour > 12 else 0.8
    return Extraction(value=_format(minutes), confidence=confidence)


def clock_hours_said(text: str) -> frozenset[int]:
    """Hours (1-12) said as clock times anywhere in ``text`` (with "o'clock", am/pm or a part
    of the day), whatever the words around them: ``extract_time`` reads a clock only in words
    that make it the answer."""
    toks = tokens(text)
    hours = set()
    for i in range(len(toks)):
        parsed = _clock_at(toks, i, minutes_to=True)
        if parsed is None:
            continue
        clock, end = parsed
        if 1 <= clock.hour <= 12 and (clock.meridiem or {"o'clock", "clock"} & set(toks[i:end])):
            hours.add(clock.hour)
    return frozenset(hours)


def _refused_after(toks: Sequence[str], end: int) -> bool:
    """A clock refused right after it: "one doesn't suit", "ten won't work" (not "three not
    four", which names three)."""
    return end < len(toks) and toks[end] in _REFUSING


def _digit_run(toks: Sequence[str], i: int, end: int) -> bool:
    """Whether the clock at ``toks[i:end]`` starts a run of digits ("two three five": a number
    read out, or misheard words), not a stutter ("three three thirty") or a count ("three two
    days later")."""
    return (end + 1 < len(toks) and toks[end] in _DIGIT_RUN and toks[end] != toks[i]
            and toks[end + 1] in NUMBER_WORDS)


def extract_time_of_day(text: str, ctx: Context) -> Extraction | None:
    toks = tokens(text)
    said: list[str] = []
    for i, token in enumerate(toks):
        part = _DAY_PARTS.get(token)
        if part is None or (i and toks[i - 1] == "good"):
            continue
        if negated(toks, i, within=3, by=_NEGATIONS):
            continue
        said.append(part)
    if said:
        return Extraction(value=said[0], confidence=0.9 if len(set(said)) == 1 else 0.5)
    for phrase, part in _DAY_PART_PHRASES:
        at = find_phrase(toks, phrase.split())
        if at >= 0 and not negated(toks, at, within=3, by=_NEGATIONS):
            return Extraction(value=part, confidence=0.8)
    clock_time = extract_time(text, ctx)
    if clock_time is None:
        return None
    hour = int(clock_time.value[:2])
    part = "morning" if hour < 12 else "afternoon" if hour < 17 else "evening"
    return Extraction(value=part, confidence=0.7)


def _said_meridiem(toks: Sequence[str]) -> str:
    """ "pm" or "am" when the utterance names a part of the day, else ""."""
    for phrase in _PM_PARTS:
        if find_phrase(toks, phrase) >= 0:
            return "pm"
    for phrase in _AM_PARTS:
        if find_phrase(toks, phrase) >= 0:
            return "am"
    return ""


def _range(toks: Sequence[str], day_part: str) -> Extraction | None:
    for i in range(len(toks)):
        explicit = toks[i] in ("between", "from")
        start = _clock_at(toks, i + 1 if explicit else i, minutes_to=not explicit)
        if start is None:
            continue
        first, j = start
        if j >= len(toks) or toks[j] not in _RANGE_JOINERS:
            continue
        if toks[j] == "and" and toks[i] != "between":
            continue
        end = _clock_at(toks, j + 1, minutes_to=False)
        if end is None:
            continue
        span = _resolve_range(first, end[0], day_part)
        if span is not None:
            confidence = 0.95 if first.meridiem or end[0].meridiem or day_part else 0.8
            return Extraction(value=f"{_format(span[0])}-{_format(span[1])}", confidence=confidence)
    return None


def _resolve_range(first: _Clock, last: _Clock, day_part: str) -> tuple[int, int] | None:
    """Start and end in minutes: an end without am/pm inherits the start's (and the start the
    end's), then the business-hours reading, then the other half of the day, whichever first
    makes the range run forwards ("nine a m to twelve" is 09:00-12:00)."""
    for start in _readings(first, last.meridiem or day_part):
        for end in _readings(last, first.meridiem or day_part):
            if start < end:
                return start, end
    return None


def _readings(clock: _Clock, inherited: str) -> list[int]:
    readings: list[int] = []
    for meridiem in (inherited, "", "am", "pm") if not clock.meridiem else ("",):
        minutes = _minutes_of_day(clock, meridiem)
        if minutes is not None and minutes not in readings:
            readings.append(minutes)
    return readings


def _minutes_of_day(clock: _Clock, day_part: str) -> int | None:
    """Minutes after midnight, reading an hour without am/pm as described in the module doc."""
    hour = clock.hour
    meridiem = clock.meridiem or (day_part if 1 <= hour <= 12 else "")
    if meridiem == "pm" and hour < 12:
        hour += 12
    elif meridiem == "am" and hour == 12:
        hour = 0
    elif not meridiem and 1 <= hour <= 6:
        hour += 12
    if not (0 <= hour <= 23 and 0 <= clock.minute <= 59):
        return None
    return hour * 60 + clock.minute


def _format(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _clock_at(toks: Sequence[str], i: int, *, minutes_to: bool) -> tuple[_Clock, int] | None:
    """A clock time said at ``toks[i]`` and the index after it (meridiem included)."""
    if i >= len(toks):
        return None
    word = toks[i]
    if word in ("noon", "midday"):
        return _Clock(12, 0, "pm"), i + 1
    if word == "midnight":
        return _Clock(0, 0, "am"), i + 1
    relative = _relative_clock(toks, i, minutes_to=minutes_to)
    if relative is not None:
        return relative
    if ":" in word and word.replace(":", "").isdigit():
        hour_text, minute_text = word.split(":", 1)
        hour, minute, j = int(hour_text), int(minute_text), i + 1
    elif word.isdigit() and len(word) in (3, 4):  # 1530, 930
        (hour, minute), j = divmod(int(word), 100), i + 1
    else:
        found = parse_cardinal(toks, i)
        if found is None or parse_ordinal(toks, i) is not None:  # "twenty third" is a date
            return None
        value, j = found
        if value > 24 and not (value % 100 == 0 and 100 <= value <= 2300):  # fifteen hundred
            return None
        hour, minute = divmod(value, 100) if value > 24 else (value, 0)
        minute_found = _minutes_at(toks, j)
        if minute_found is not None:
            minute, j = minute_found
    if j < len(toks) and toks[j] in _NOT_AFTER_CLOCK:
        return None
    meridiem, j = _meridiem_at(toks, j, hour)
    return _Clock(hour, minute, meridiem), j


def _minutes_at(toks: Sequence[str], j: int) -> tuple[int, int] | None:
    if j >= len(toks):
        return None
    word = toks[j]
    if word == "o'clock":
        return 0, j + 1
    if word == "o" and j + 1 < len(toks) and toks[j + 1] == "clock":
        return 0, j + 2
    if word in ("oh", "o") and j + 1 < len(toks) and toks[j + 1] in UNITS:
        return UNITS[toks[j + 1]], j + 2
    if word in TEENS or word in TENS or (word.isdigit() and len(word) == 2):
        found = parse_cardinal(toks, j)
        if found is not None and found[0] <= 59:
            return found
    return None


def _meridiem_at(toks: Sequence[str], j: int, hour: int) -> tuple[str, int]:
    if j < len(toks) and toks[j] == "o'clock":
        j += 1
    for meridiem, phrases in (("pm", _PM_SUFFIXES), ("am", _AM_SUFFIXES)):
        for phrase in phrases:
            if tuple(toks[j : j + len(phrase)]) == phrase:
                return meridiem, j + len(phrase)
    if hour == 12 and j < len(toks) and toks[j] in ("noon", "midnight"):
        return ("pm" if toks[j] == "noon" else "am"), j + 1
    return "", j


def _relative_clock(
    toks: Sequence[str], i: int, *, minutes_to: bool
) -> tuple[_Clock, int] | None:
    """ "half past two", "quarter to four", "ten past three", "twenty to five"."""
    j = i + 1 if toks[i] == "a" else i
    if j >= len(toks):
        return None
    if toks[j] in ("half", "quarter"):
        minutes, k = (30 if toks[j] == "half" else 15), j + 1
    else:
        found = parse_cardinal(toks, j)
        if found is None or not 1 <= found[0] <= 59:
            return None
        minutes, k = found
        if k < len(toks) and toks[k] in ("minutes", "minute"):
            k += 1
    if k + 1 >= len(toks):
        return None
    direction, is_half = toks[k], toks[j] == "half"
    if direction == "past" or (direction == "after" and not is_half):
        sign = 1
    elif (
        direction in ("to", "of", "till", "before")
        and not is_half
        and (toks[j] == "quarter" or (minutes_to and minutes in _MINUTES_TO))
    ):
        sign = -1
    else:
        return None
    hour_found = parse_cardinal(toks, k + 1)
    if hour_found is None or not 1 <= hour_found[0] <= 12:
        return None
    hour, end = hour_found
    meridiem, end = _meridiem_at(toks, end, hour)
    if sign > 0:
        return _Clock(hour, minutes, meridiem), end
    return _Clock(hour - 1 or 12, 60 - minutes, meridiem), end


def time_hints() -> SpeechHints:
    hour = jsgf.alt(HOURS)
    rules = (
        ("lead", jsgf.alt(("at", "around", "about", "how about", "maybe", "let's say",
                           "let's do", "say", "i'd like", "can we do", "any time", "sometime",
                           "um", "uh"))),
        ("tail", jsgf.alt(("please", "if possible", "works", "works for me", "would be great",
                           "is fine", "if that works", "would work"))),
        ("meridiem", jsgf.alt(("a m", "p m", "in the morning", "in the afternoon",
                               "in the evening", "o'clock [ in the morning | in the afternoon ]"))),
        ("clock", jsgf.alt((
            f"{hour} [ {jsgf.alt(CLOCK_MINUTES)} ] [ <meridiem> ]", "noon", "midday",
            "twelve noon", f"half past {hour} [ <meridiem> ]",
            f"quarter ( past | after | to | of ) {hour} [ <meridiem> ]",
        ))),
        ("range", "between <clock> and <clock> | from <clock> to <clock> | <clock> to <clock>"),
    )
    phrases = (
        "noon", "half past two", "between two and four", "ten thirty in the morning",
        *(f"{h} {suffix}" for h in HOURS for suffix in ("a m", "p m", "o'clock", "thirty")),
    )
    grammar = jsgf.grammar("time", "[ <lead> ] ( <clock> | <range> ) [ <tail> ]", rules)
    return SpeechHints(phrases=phrases, grammar=grammar)


def time_of_day_hints() -> SpeechHints:
    part = jsgf.alt(("morning", "afternoon", "evening"))
    rules = (
        ("lead", jsgf.alt(("probably", "maybe", "i prefer", "i'd prefer", "i'd like",
                           "preferably", "ideally", "how about", "um", "uh", "sometime"))),
        ("tail", jsgf.alt(("please", "is better", "would be better", "works best", "is best",
                           "works for me", "if possible", "are better", "work best"))),
        ("when", jsgf.alt((
            f"[ in the | this | tomorrow | early in the | late in the | early | late ] {part}",
            "mornings", "afternoons", "evenings", "after lunch", "before lunch", "before noon",
            "first thing in the morning", "after work", "tonight",
        ))),
    )
    phrases = (
        "morning", "afternoon", "evening", "in the morning", "in the afternoon",
        "in the evening", "in the afternoon please", "after lunch", "before lunch",
        "first thing in the morning", "mornings are better", "afternoons work best",
    )
    grammar = jsgf.grammar("time_of_day", "[ <lead> ] <when> [ <tail> ]", rules)
    return SpeechHints(phrases=phrases, grammar=grammar)

