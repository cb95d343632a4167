"""Time zones said aloud: "I'm in California", "Pacific time", "London time" → IANA zones.

Pure and table-driven. :data:`ZONE_PHRASES` maps what a caller says (US zone words, the 50
states and DC, common cities and single-zone countries) to the zone. A state or country that
spans zones maps to the zone most of its people live in (Texas → Central, Florida → Eastern,
Indiana → Eastern); "Washington" is the state (Pacific), "Washington DC" the capital.

Two readers:

- :func:`zone_named` — the permissive one, for an answer to "which time zone are you in?":
  any zone phrase in the utterance ("eastern", "berlin", "the pacific one"). It is the rules
  extractor of kind ``timezone`` (:func:`extract_timezone`), which also takes an IANA name as
  written ("America/Chicago": a model's answer).
- :func:`zone_stated` — the strict one the flow engine runs on every answer: the phrase must
  come with a cue that the caller is talking about *their zone* ("I'm in …", "I live in …",
  "calling from …", "… time", "my time zone is …", "what time is that in …"), so an answer
  such as "Georgia" to "what's your name?" or "Phoenix" to a choice is never taken for a zone.
  It also says whether the caller asked ("what time is that in Pacific?": same times, spoken
  in that zone) or told ("I'm in London": their times are London times), and what remains of
  the utterance without the zone statement ("tomorrow at 2 pm pacific time" → "tomorrow at 2
  pm").

    >>> zone_stated("I'm in California").zone
    'America/Los_Angeles'
    >>> zone_stated("my name is Georgia") is None
    True
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from slotline.providers.base import SpeechHints

from .extraction import Context, Extraction

_NY, _CHI, _DEN = "America/New_York", "America/Chicago", "America/Denver"
_LA = "America/Los_Angeles"
_PHX, _AK, _HI = "America/Phoenix", "America/Anchorage", "Pacific/Honolulu"
_LON, _DUB, _PAR, _BER = "Europe/London", "Europe/Dublin", "Europe/Paris", "Europe/Berlin"

_ZONE_WORDS: Mapping[str, str] = {
    "eastern": _NY, "east coast": _NY, "e s t": _NY, "e d t": _NY, "e t": _NY,
    "central": _CHI, "c s t": _CHI, "c d t": _CHI,
    "mountain": _DEN, "m s t": _DEN, "m d t": _DEN,
    "pacific": _LA, "west coast": _LA, "p s t": _LA, "p d t": _LA, "p t": _LA,
    "alaska": _AK, "alaskan": _AK, "hawaii": _HI, "hawaiian": _HI, "atlantic": "America/Halifax",
    "greenwich": _LON, "greenwich mean": _LON, "g m t": _LON, "british": _LON,
    "u k": _LON, "uk": _LON, "u t c": "UTC", "utc": "UTC", "universal": "UTC",
    "central european": _BER, "c e t": _BER, "eastern european": "Europe/Helsinki",
    "india": "Asia/Kolkata", "indian": "Asia/Kolkata", "i s t": "Asia/Kolkata",
}  # fmt: skip

_STATES: Mapping[str, str] = {
    "alabama": _CHI, "arizona": _PHX, "arkansas": _CHI, "california": _LA, "colorado": _DEN,
    "connecticut": _NY, "delaware": _NY, "florida": _NY, "georgia": _NY, "idaho": "America/Boise",
    "illinois": _CHI, "indiana": "America/Indiana/Indianapolis", "iowa": _CHI, "kansas": _CHI,
    "kentucky": _NY, "louisiana": _CHI, "maine": _NY, "maryland": _NY, "massachusetts": _NY,
    "michigan": "America/Detroit", "minnesota": _CHI, "mississippi": _CHI, "missouri": _CHI,
    "montana": _DEN, "nebraska": _CHI, "nevada": _LA, "new hampshire": _NY, "new jersey": _NY,
    "new mexico": _DEN, "new york state": _NY, "north carolina": _NY, "north dakota": _CHI,
    "ohio": _NY, "oklahoma": _CHI, "oregon": _LA, "pennsylvania": _NY, "rhode island": _NY,
    "south carolina": _NY, "south dakota": _CHI, "tennessee": _CHI, "texas": _CHI, "utah": _DEN,
    "vermont": _NY, "virginia": _NY, "washington": _LA, "washington state": _LA,
    "west virginia": _NY, "wisconsin": _CHI, "wyoming": _DEN, "washington d c": _NY,
    "d c": _NY, "puerto rico": "America/Puerto_Rico",
}  # fmt: skip

_PLACES: Mapping[str, str] = {
    # North America
    "new york": _NY, "new york city": _NY, "n y c": _NY, "manhattan": _NY, "brooklyn": _NY,
    "boston": _NY, "philadelphia": _NY, "miami": _NY, "atlanta": _NY, "orlando": _NY,
    "pittsburgh": _NY, "baltimore": _NY, "charlotte": _NY, "detroit": "America/Detroit",
    "toronto": "America/Toronto", "montreal": "America/Toronto", "ottawa": "America/Toronto",
    "chicago": _CHI, "dallas": _CHI, "houston": _CHI, "austin": _CHI, "san antonio": _CHI,
    "nashville": _CHI, "new orleans": _CHI, "minneapolis": _CHI, "kansas city": _CHI,
    "st louis": _CHI, "saint louis": _CHI, "winnipeg": "America/Winnipeg",
    "mexico city": "America/Mexico_City", "mexico": "America/Mexico_City",
    "denver": _DEN, "salt lake city": _DEN, "albuquerque": _DEN, "boise": "America/Boise",
    "calgary": "America/Edmonton", "edmonton": "America/Edmonton", "phoenix": _PHX,
    "los angeles": _LA, "l a": _LA, "san francisco": _LA, "san diego": _LA, "san jose": _LA,
    "seattle": _LA, "portland": _LA, "las vegas": _LA, "sacramento": _LA, "silicon valley": _LA,
    "vancouver": "America/Vancouver", "anchorage": _AK, "honolulu": _HI,
    # Europe
    "london": _LON, "england": _LON, "britain": _LON, "great britain": _LON, "scotland": _LON,
    "wales": _LON, "united kingdom": _LON, "manchester": _LON, "birmingham": _LON,
    "edinburgh": _LON, "glasgow": _LON, "liverpool": _LON, "bristol": _LON, "leeds": _LON,
    "dublin": _DUB, "ireland": _DUB, "lisbon": "Europe/Lisbon", "portugal": "Europe/Lisbon",
    "paris": _PAR, "france": _PAR, "berlin": _BER, "germany": _BER, "munich": _BER,
    "frankfurt": _BER, "hamburg": _BER, "madrid": "Europe/Madrid", "spain": "Europe/Madrid",
    "barcelona": "Europe/Madrid", "rome": "Europe/Rome", "milan": "Europe/Rome",
    "italy": "Europe/Rome", "amsterdam": "Europe/Amsterdam", "netherlands": "Europe/Amsterdam",
    "holland": "Europe/Amsterdam", "brussels": "Europe/Brussels", "belgium": "Europe/Brussels",
    "zurich": "Europe/Zurich", "geneva": "Europe/Zurich", "switzerland": "Europe/Zurich",
    "vienna": "Europe/Vienna", "austria": "Europe/Vienna", "stockholm": "Europe/Stockholm",
    "sweden": "Europe/Stockholm", "oslo": "Europe/Oslo", "norway": "Europe/Oslo",
    "copenhagen": "Europe/Copenhagen", "denmark": "Europe/Copenhagen",
    "helsinki": "Europe/Helsinki", "finland": "Europe/Helsinki", "warsaw": "Europe/Warsaw",
    "poland": "Europe/Warsaw", "prague": "Europe/Prague", "athens": "Europe/Athens",
    "greece": "Europe/Athens", "istanbul": "Europe/Istanbul", "turkey": "Europe/Istanbul",
    "moscow": "Europe/Moscow", "kyiv": "Europe/Kyiv", "kiev": "Europe/Kyiv",
    # elsewhere
    "dubai": "Asia/Dubai", "israel": "Asia/Jerusalem", "tel aviv": "Asia/Jerusalem",
    "mumbai": "Asia/Kolkata", "delhi": "Asia/Kolkata", "new delhi": "Asia/Kolkata",
    "bangalore": "Asia/Kolkata", "singapore": "Asia/Singapore", "hong kong": "Asia/Hong_Kong",
    "beijing": "Asia/Shanghai", "shanghai": "Asia/Shanghai", "china": "Asia/Shanghai",
    "tokyo": "Asia/Tokyo", "japan": "Asia/Tokyo", "seoul": "Asia/Seoul", "korea": "Asia/Seoul",
    "manila": "Asia/Manila", "philippines": "Asia/Manila", "sydney": "Australia/Sydney",
    "melbourne": "Australia/Melbourne", "brisbane": "Australia/Brisbane",
    "perth": "Australia/Perth", "auckland": "Pacific/Auckland",
    "new zealand": "Pacific/Auckland", "johannesburg": "Africa/Johannesburg",
    "south africa": "Africa/Johannesburg", "cape town": "Africa/Johannesburg",
    "lagos": "Africa/Lagos", "nigeria": "Africa/Lagos", "nairobi": "Africa/Nairobi",
    "kenya": "Africa/Nairobi", "cairo": "Africa/Cairo", "egypt": "Africa/Cairo",
    "sao paulo": "America/Sao_Paulo", "rio": "America/Sao_Paulo",
    "buenos aires": "America/Argentina/Buenos_Aires", "argentina": "America/Argentina/Buenos_Aires",
    "bogota": "America/Bogota", "colombia": "America/Bogota", "lima": "America/Lima",
    "peru": "America/Lima", "santiago": "America/Santiago", "chile": "America/Santiago",
}  # fmt: skip

ZONE_PHRASES: Mapping[str, str] = {**_PLACES, **_STATES, **_ZONE_WORDS}
"""Every phrase a caller may name a zone with (lower-case words, letters spelt apart)."""


_LONGEST = max(len(phrase.split()) for phrase in ZONE_PHRASES)
# Words before a place that make it the caller's whereabouts ("I'm in", "calling from").
_WHERE_CUES = (
    ("i'm", "in"), ("im", "in"), ("i", "am", "in"), ("i", "live", "in"), ("we're", "in"),
    ("we", "are", "in"), ("i'm", "calling", "from"), ("calling", "from"), ("i'm", "from"),
    ("i'm", "out", "in"), ("based", "in"), ("i'm", "over", "in"), ("i", "am", "calling", "from"),
    ("my", "time", "zone", "is"), ("my", "timezone", "is"), ("zone", "is"), ("zone's",),
    ("that", "in"), ("it", "in"), ("that", "for"),
)  # fmt: skip
# Cues that name a place only in a question ("what time is that in London?"): said without a
# question word they are too easily misheard words ("yes that is the one" -> "yes that in
# berlin") to switch the caller's zone on.
_QUESTION_ONLY_CUES = frozenset((("that", "in"), ("it", "in"), ("that", "for")))
# Spellings a recogniser does not write ("u t c" and "kiev" are how they come out).
_WRITTEN_ONLY = frozenset(("utc", "uk", "kyiv"))
_TIME_WORDS = frozenset(("time", "timezone", "standard", "daylight"))
_ASKING = frozenset(("what", "what's", "whats", "how", "which"))
_DROPPED = frozenset(("time", "timezone", "zone", "standard", "daylight", "please"))


@dataclass(frozen=True, slots=True)
class ZoneStatement:
    """A zone the caller stated. ``asked``: they asked what the times are there ("what time is
    that in London?") rather than said where they are. ``rest``: the utterance without it."""

    zone: str
    phrase: str
    asked: bool = False
    rest: str = ""


def zone_named(text: str) -> str | None:
    """The zone of the first zone phrase in ``text`` (any phrase, no cue needed), or None."""
    words = _words(text)
    for start in range(len(words)):
        found = _phrase_at(words, start)
        if found is not None:
            return ZONE_PHRASES[found]
    return None


def zone_stated(text: str) -> ZoneStatement | None:
    """The zone the caller stated as theirs, with its cue (see the module docstring)."""
    words = _words(text)
    for start in range(len(words)):
        phrase = _phrase_at(words, start)
        if phrase is None:
            continue
        end = start + len(phrase.split())
        cue_start = _cue_before(words, start)
        timed = end < len(words) and words[end] in _TIME_WORDS
        asked = any(word in _ASKING for word in words[: start])
        if (cue_start is not None and not asked and not timed
                and tuple(words[cue_start:start]) in _QUESTION_ONLY_CUES):
            cue_start = None
        if cue_start is None and not timed:
            continue
        first = start if cue_start is None else cue_start
        last = end
        while last < len(words) and words[last] in _DROPPED:
            last += 1
        rest = " ".join(words[:first] + words[last:])
        return ZoneStatement(ZONE_PHRASES[phrase], phrase, asked, "" if asked else rest)
    return None


def extract_timezone(text: str, ctx: Context) -> Extraction | None:
    """The zone an answer names: an IANA name as written, else the first zone phrase."""
    given = text.strip()
    if "/" in given or given.upper() == "UTC":
        try:
            zoneinfo.ZoneInfo(given)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return None
        return Extraction(value=given, confidence=1.0)
    zone = zone_named(text)
    return None if zone is None else Extraction(value=zone, confidence=0.9)


def hints() -> SpeechHints:
    """What a caller says when asked for their time zone."""
    words = tuple(phrase for phrase in ZONE_PHRASES
                  if (" " not in phrase or len(phrase) > 3) and phrase not in _WRITTEN_ONLY)
    timed = tuple(f"{word} time" for word in ("eastern", "central", "mountain", "pacific"))
    return SpeechHints(phrases=(*timed, *words, *hint_phrases()))


def hint_phrases() -> tuple[str, ...]:
    """Sentences a recogniser may hear a zone in, for its vocabulary while the agent listens."""
    places = ("california", "new york", "london", "chicago", "texas", "paris", "berlin")
    zones = ("eastern", "central", "mountain", "pacific")
    return (*(f"i'm in {p}" for p in places), *(f"{z} time" for z in zones),
            "london time", "what time is that in pacific")


def _words(text: str) -> list[str]:
    lowered = text.lower().replace("\u2019", "'").replace(".", " ")
    return [w for w in re.findall(r"[a-z0-9:]+(?:'[a-z]+)?", lowered) if w != "the"]


def _phrase_at(words: Sequence[str], start: int) -> str | None:
    """The longest zone phrase starting at ``words[start]``, or None."""
    for size in range(min(_LONGEST, len(words) - start), 0, -1):
        phrase = " ".join(words[start : start + size])
        if phrase in ZONE_PHRASES:
            return phrase
    return None


def _cue_before(words: Sequence[str], start: int) -> int | None:
    """Where a whereabouts cue ending right before ``start`` begins, or None."""
    for cue in sorted(_WHERE_CUES, key=len, reverse=True):  # "i am calling from" first
        begin = start - len(cue)
        if begin >= 0 and tuple(words[begin:start]) == cue:
            return begin
    return None
