"""Closed word lists the extractors read and the speech hints are built from.

Every word here is a plain lower-case entry of the recogniser's pronunciation dictionary
(pocketsphinx's cmudict-en-us); a unit test holds that true.
"""

from __future__ import annotations

from .normalize import spoken_cardinal, spoken_ordinal

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)
MONTH_ABBREVIATIONS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
    "oct": 10, "nov": 11, "dec": 12,
}
DAY_ORDINALS = tuple(spoken_ordinal(day) for day in range(1, 32))
HOURS = tuple(spoken_cardinal(hour) for hour in range(1, 13))
CLOCK_MINUTES = (
    "oh five", "o five", "ten", "fifteen", "twenty", "twenty five", "thirty", "thirty five",
    "forty", "forty five", "fifty", "fifty five",
)
DIGITS = ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
LETTERS = tuple("abcdefghijklmnopqrstuvwxyz")
FIRST_NAMES = (
    "john", "jane", "mary", "james", "robert", "patricia", "michael", "linda", "david",
    "elizabeth", "william", "barbara", "richard", "susan", "joseph", "jessica", "thomas",
    "sarah", "charles", "karen", "daniel", "nancy", "matthew", "lisa", "anthony", "mark",
    "paul", "emily", "andrew", "kevin", "michelle", "brian", "peter", "anna", "alex", "maria",
    "sam", "emma", "olivia", "noah", "sophia", "jack", "grace", "ben", "kate", "tom", "chris",
)
LAST_NAMES = (
    "smith", "doe", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis",
    "rodriguez", "martinez", "lopez", "wilson", "anderson", "taylor", "thomas", "moore",
    "jackson", "martin", "lee", "thompson", "white", "harris", "clark", "lewis", "walker",
    "young", "allen", "king", "wright", "scott", "green", "baker", "adams", "nelson", "hill",
)
# The names the offline recogniser's domain model learns (``providers.stt._domain_corpus``, in
# this order): the ones above and 13 first names and 4 surnames more, which the grammars do not
# offer. Offering them in the grammars too was measured worse (2026-12-07: "this is mary jones"
# asked again in kal's voice, an e-mail address said at the read-back misread). Any of them can
# come out of a garbled decode.
MODEL_FIRST_NAMES = (
    "john", "jane", "mary", "james", "robert", "patricia", "michael", "linda", "david",
    "elizabeth", "william", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah",
    "charles", "karen", "daniel", "nancy", "matthew", "lisa", "anthony", "betty", "mark",
    "sandra", "paul", "ashley", "steven", "emily", "andrew", "donna", "kevin", "michelle",
    "brian", "carol", "george", "amanda", "edward", "melissa", "peter", "anna", "alex", "maria",
    "sam", "emma", "olivia", "noah", "liam", "sophia", "jack", "grace", "ben", "kate", "tom",
    "anne", "chris", "laura",
)
MODEL_LAST_NAMES = (
    "smith", "doe", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis",
    "rodriguez", "martinez", "hernandez", "lopez", "wilson", "anderson", "taylor", "thomas",
    "moore", "jackson", "martin", "lee", "thompson", "white", "harris", "clark", "lewis",
    "robinson", "walker", "young", "allen", "king", "wright", "scott", "green", "baker",
    "adams", "nelson", "hill", "campbell", "mitchell",
)
EMAIL_DOMAINS = (
    "gmail", "yahoo", "hotmail", "outlook", "example", "icloud", "aol", "mail", "proton", "live",
    "comcast", "company",
)
TOP_LEVEL_DOMAINS = ("com", "net", "org", "edu", "io", "co", "us", "uk", "gov")

OPT_OUT = (
    "don't call me again", "do not call me again", "don't call me anymore", "do not call me",
    "don't ever call me", "never call me again", "stop calling me", "stop calling",
    "quit calling me",
    "take me off your list", "take me off the list", "take me off your calling list",
    "take me off your call list", "take my number off your list", "take my number off",
    "remove me from your list", "remove me from the list", "remove me from your calling list",
    "remove my number from your list",
    "put me on your do not call list", "do not call list", "don't call list",
    "unsubscribe",
)
"""A do-not-call request, in the words people use for one. The flow engine hears these at any
node of any flow (``agent.flow.engine``); a phrase is matched as whole consecutive words
anywhere in the utterance, so "can you stop calling me please" matches "stop calling". The
longer variants decide whether a flow's own intent covers the request (see the engine)."""

OPT_OUT_HINTS = (
    "take me off your list", "please take me off your list", "remove me from your list",
    "put me on your do not call list", "do not call me",
)
"""The do-not-call requests every node tells the recogniser to expect (its hint phrases): long
ones that sound like no answer to a question. Measured with the offline recogniser on four
flite voices (kal, slt, awb, rms) at four questions (name, yes/no, date, time), 11 ways of
asking and 24 other answers: boosting every phrase of :data:`OPT_OUT` and admitting them in
every grammar heard 172 of 176 requests and made 21 other answers into one ("stop please" ->
"stop calling", "don't call me in the morning" -> "don't call me anymore"); these hints, no
grammar change and those look-alike answers in the corpus heard the same 172 and made none.
The rest of :data:`OPT_OUT` is recognised from the domain corpus
(``providers.stt._domain_corpus``), which holds every phrase of it."""

ESCAPES = (
    "i don't know", "i'm not sure", "not sure", "can you repeat that", "say that again",
    "sorry what was that", "what", "hold on", "wait", "one moment",
    "i want to cancel my appointment", "i want to reschedule", "can i move my appointment",
    "can i talk to a person", "goodbye", "thank you goodbye",
)
"""Answers outside every kind's expected space: each grammar admits them so a grammar-only
recogniser does not force them into a date or a yes; no extractor matches them. (Not the
do-not-call requests: see :data:`OPT_OUT_HINTS` for why.)"""
