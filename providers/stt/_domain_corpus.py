"""The booking-call corpus the offline recogniser's domain language model is trained on.

A general English model gets about half the words of a phone call wrong on telephone audio;
a trigram model over the few hundred words a booking conversation uses gets most of them
right. The sentences are generated from templates so every slot value (name, weekday, month,
ordinal, hour, digit, e-mail word) is seen in each of its usual carrier phrases. Each template
is expanded only as far as needed to cover every value of its slots once, so no single
template (say, names x surnames) drowns the others in the counts. The slot values come from
``providers.llm.rules.vocab``: the extractors' own word lists, except the names (vocab's
``MODEL_FIRST_NAMES``/``MODEL_LAST_NAMES``, longer than the grammars' and in their own order,
which the expansion's lock-step walk depends on: the same names in another order train another
model) and the e-mail domains (filtered here, for the reason given beside them).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence

from slotline.providers.llm.rules.vocab import (
    DAY_ORDINALS,
    DIGITS,
    EMAIL_DOMAINS,
    HOURS,
    MODEL_FIRST_NAMES,
    MODEL_LAST_NAMES,
    MONTHS,
    TOP_LEVEL_DOMAINS,
    WEEKDAYS,
)

# The model learns the commonest domains only. With every domain the grammars know, short ones
# ("co", "io", "uk", "edu", "live") turned up inside other answers ("yes go ahead" heard as "yes
# co at", "wednesday afternoon if you can" as "wednesday afternoon edu m"; bench.heard_right,
# 2026-12-07). The e-mail question's grammar still holds every domain.
_UNMODELLED = frozenset(("proton", "live", "comcast", "company", "edu", "io", "co", "us", "uk",
                         "gov"))
MODEL_EMAIL_DOMAINS = tuple(d for d in EMAIL_DOMAINS if d not in _UNMODELLED)
MODEL_TOP_LEVEL_DOMAINS = tuple(d for d in TOP_LEVEL_DOMAINS if d not in _UNMODELLED)
MINUTES = ("fifteen", "thirty", "forty five", "o five", "ten", "twenty", "o'clock")
DAY_PARTS = ("morning", "afternoon", "evening")
SERVICES = ("appointment", "consultation", "meeting", "visit", "call", "session", "checkup")
# what the example flows' choice questions offer (a salon's services, a practice's topics)
KINDS = ("haircut", "hair cut", "trim", "coloring", "color", "styling", "blow dry", "demo")
TOPICS = ("taxes", "estate planning", "a will", "my business", "my tax return")

_TEMPLATES = (
    # what the caller wants
    "i would like to book an {service}",
    "i'd like to book an {service}",
    "i'd like to make an {service}",
    "i want to book an {service}",
    "i want to schedule an {service}",
    "i need to schedule a {service}",
    "i'm calling to book an {service}",
    "can i book an {service}",
    "can i make an {service} for {weekday}",
    "i need an {service}",
    "book an {service} please",
    "actually i want to cancel my {service}",
    "i want to cancel my {service}",
    "i need to cancel my {service} on {weekday}",
    "please cancel it",
    "can i move my {service}",
    "can i move my {service} to {weekday}",
    "i'd like to reschedule my {service}",
    "i need to reschedule",
    "can i change my {service}",
    "can you move it to {weekday} instead",
    "i'd like to check my {service}",
    "i want to talk to a person",
    "can i speak to someone",
    "i want to cancel",
    "i want to reschedule",
    "cancel it",
    "reschedule it",
    # choosing among what was offered or asked
    "the first one", "the first one please", "the second one", "the second one please",
    "the last one", "the earlier one", "the later one",
    "by phone number", "by my phone number", "by booking reference", "i have the reference",
    "a {kind} please", "a {kind}", "{kind}", "i'd like a {kind}", "just a {kind}",
    "just me", "a small team", "a team", "more than fifty people", "a big team",
    "taxes", "estate planning", "my business", "it's about {topic}",
    # names
    "my name is {first} {last}",
    "my name is {first}",
    "it's {first} {last}",
    "it's {first}",
    "this is {first} {last}",
    "{first} {last}",
    "i'm {first} {last}",
    "the name is {last}",
    "my first name is {first}",
    "my last name is {last}",
    "yes this is {first}",
    # days and dates
    "next {weekday}",
    "this {weekday}",
    "this coming {weekday}",
    "on {weekday}",
    "{weekday}",
    "{weekday} please",
    "{weekday} would be great",
    "how about {weekday}",
    "do you have anything on {weekday}",
    "is {weekday} available",
    "{weekday} {part}",
    "next {weekday} in the {part}",
    "{month} {ordinal}",
    "on {month} {ordinal}",
    "the {ordinal} of {month}",
    "{month} the {ordinal}",
    "{weekday} {month} {ordinal}",
    "the {ordinal}",
    "tomorrow",
    "tomorrow {part}",
    "today",
    "the day after tomorrow",
    "next week",
    "sometime next week",
    "as soon as possible",
    # times
    "{hour} p m",
    "{hour} a m",
    "at {hour} p m",
    "at {hour} a m",
    "{hour} o'clock",
    "around {hour} p m",
    "{hour} {minute}",
    "{hour} {minute} p m",
    "{hour} {minute} a m",
    "{hour} {minute} in the {part}",
    "{hour} in the {part}",
    "at {hour} {minute}",
    "half past {hour}",
    "a quarter past {hour}",
    "in the {part}",
    "in the {part} please",
    "the {part} please",
    "{part} is better",
    "{part} would be better",
    "i prefer the {part}",
    "anytime in the {part}",
    "noon",
    "at noon",
    "anytime",
    "what about {hour} p m",
    "do you have anything earlier",
    "do you have anything later",
    "what times are available",
    # yes and no
    "yes", "yes please", "yes that works", "yes that's right", "yes that's correct",
    "yeah", "yeah that works", "yep", "sure", "okay", "that's fine", "that works",
    "that works for me", "sounds good", "perfect", "correct", "that's right", "great",
    "no", "no thanks", "no thank you", "nope", "no that's wrong", "no that's not right",
    "that doesn't work", "not really", "no i don't", "i don't think so",
    # contact details
    "{first} dot {last} at {domain} dot {tld}",
    "my email is {first} dot {last} at {domain} dot {tld}",
    "it's {first} at {domain} dot {tld}",
    "{first} {last} at {domain} dot {tld}",
    "{last} at {domain} dot {tld}",
    "my number is {d1} {d2} {d3} {d4} {d5} {d6} {d7} {d8} {d9} {d10}",
    "{d1} {d2} {d3} {d4} {d5} {d6} {d7} {d8} {d9} {d10}",
    "it's {d1} {d2} {d3} {d4} {d5} {d6} {d7}",
    "five five five {d1} {d2} {d3} {d4} {d5} {d6} {d7}",
    # not wanting to be called (any flow hears these: providers.llm.rules.vocab.OPT_OUT)
    "don't call me again", "please don't call me again", "do not call me again",
    "do not call me", "don't call me anymore", "don't ever call me again",
    "never call me again", "stop calling me", "please stop calling me", "stop calling",
    "quit calling me", "take me off your list", "please take me off your list",
    "take me off the list", "take me off your calling list", "take me off your call list",
    "take my number off your list", "remove me from your list", "please remove me from your list",
    "remove me from the list", "remove me from your calling list",
    "remove my number from your list", "put me on your do not call list",
    "add me to your do not call list", "i'm on the do not call list", "don't call list",
    "unsubscribe", "unsubscribe me",
    "i'm not interested stop calling me", "no thanks take me off your list",
    # ... and what sounds like one but is not (a caller's preference, a barge-in)
    "please don't call me in the morning", "don't call me before noon",
    "call me in the {part}", "call me back later", "you can call me on {weekday}",
    "stop", "stop please", "please stop", "wait stop", "stop talking", "stop it",
    # interruptions, back-channels, closing
    "wait", "wait sorry hold on", "hold on", "hold on a second", "sorry", "one moment",
    "hang on", "excuse me", "sorry what", "can you repeat that", "say that again",
    "i didn't catch that", "what was that",
    "uh huh", "mhm", "hmm", "um", "uh", "right", "i see", "okay okay", "got it",
    "thank you goodbye", "thanks bye", "goodbye", "bye", "bye bye", "thank you", "thanks",
    "thank you very much", "have a nice day", "that's all", "that's all thanks",
)


def _words_of(*values: Sequence[str]) -> frozenset[str]:
    return frozenset(word for seq in values for value in seq for word in value.split())


# The words an answer rests on, by kind of value: what the extractors read a name, a date or a
# time from. A language-model answer that holds one of the kinds a question expects is only as
# good as that word (``_sphinx_worker.SphinxEngine`` asks again when the decoder doubts it).
ANSWER_WORDS: dict[str, frozenset[str]] = {
    "name": _words_of(MODEL_FIRST_NAMES, MODEL_LAST_NAMES),
    "weekday": _words_of(WEEKDAYS),
    "month": _words_of(MONTHS),
    "ordinal": _words_of(DAY_ORDINALS),
    "number": _words_of(HOURS, MINUTES, DIGITS) - {"o", "oh", "o'clock", "zero"},
    "part": _words_of(DAY_PARTS),
    "relative day": frozenset(("today", "tomorrow", "tonight")),
}
_SLOTS: dict[str, Sequence[str]] = {
    "service": SERVICES, "kind": KINDS, "topic": TOPICS, "first": MODEL_FIRST_NAMES,
    "last": MODEL_LAST_NAMES, "weekday": WEEKDAYS,
    "month": MONTHS, "ordinal": DAY_ORDINALS, "hour": HOURS, "minute": MINUTES, "part": DAY_PARTS,
    "domain": MODEL_EMAIL_DOMAINS, "tld": MODEL_TOP_LEVEL_DOMAINS,
    **{f"d{i}": DIGITS for i in range(1, 11)},
}
_SLOT_RE = re.compile(r"\{(\w+)\}")


def _expand(template: str) -> Iterator[str]:
    """Fill ``template`` so every value of every slot appears at least once.

    Slot lists are walked in lock-step with co-prime-ish offsets (slot ``k`` advances by
    ``k + 1``), which mixes values without the full cross product.
    """
    names = _SLOT_RE.findall(template)
    if not names:
        yield template
        return
    count = max(len(_SLOTS[name]) for name in names)
    for i in range(count):
        values = {
            name: _SLOTS[name][(i * (k + 1) + k) % len(_SLOTS[name])]
            for k, name in enumerate(names)
        }
        yield template.format(**values)


def domain_sentences() -> list[str]:
    """Every corpus sentence, lower case, words separated by single spaces."""
    seen: dict[str, None] = {}
    for template in _TEMPLATES:
        for sentence in _expand(template):
            seen.setdefault(" ".join(sentence.split()), None)
    return list(seen)


def domain_words() -> frozenset[str]:
    """Every word of the corpus."""
    return frozenset(itertools.chain.from_iterable(s.split() for s in domain_sentences()))
