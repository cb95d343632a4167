"""What a caller changes at a read-back ("I can book Monday, December 7th at 2:30 pm. Shall I go
ahead?"), without starting the booking over.

    "no, Wednesday" / "can we do Thursday instead"   -> another day (same time wish)
    "no, three pm" (a time not on offer)              -> another time on the same day
    "no, later" / "anything earlier?"                 -> the next time after / before
    "actually my name is Anna Kowalczyk"              -> the name, then the same question
    "no, it's sarah miller at outlook dot com"        -> the e-mail, then the same question
    "no, the email is wrong"                          -> the e-mail asked for again

A day or time heard without any word that asks for a change ("the fourth", "friday", where the
caller may have said "of course" or "i'm afraid that won't do" to a recogniser that heard
otherwise) is ``unsure``: ``booking_steps`` asks "Did you want Friday, December 11th instead?"
before it searches the calendar again. With a word of change ("no", "instead", "how about",
"could we", "is ... possible", "would be better") it searches at once.

An e-mail address is read back with the slot when the caller gave one (``booking_steps``);
:func:`heard_email` reads a correction of it.

:func:`heard_change` only reads the utterance (pure, no state); ``booking_steps`` decides what
to do with a :class:`Change` (ask about a known offer, or check the calendar again). Times the
caller names that are already on offer are picked by ``booking_steps.pick_offer`` before this
runs, so "no, how about four" with 4 pm offered is a pick, not a change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from slotline.agent.flow.messages import SlotOffer
from slotline.agent.flow.state import Ctx
from slotline.providers.base import SpeechHints
from slotline.providers.llm import rules
from slotline.providers.llm.rules.normalize import NEGATORS, negated
from slotline.providers.llm.rules.vocab import WEEKDAYS

LATER = 1
EARLIER = -1
_WORDS = re.compile(r"[a-z']+")
# Said at a read-back to mean "after this one" / "before this one".
_LATER = frozenset(("later", "after"))
_EARLIER = frozenset(("earlier", "before", "sooner"))
_NAME_WORDS = frozenset(("name", "name's"))
_EMAIL_WORDS = frozenset(("email", "mail", "address", "email's"))  # "e-mail": "e", "mail"
# said of the address read back: it is not the one ("no", too, read by the yes/no reader)
_WRONG = frozenset(("wrong", "not", "isn't", "incorrect", "mistake", "change", "different"))
# "no, Wednesday": the "no" refuses the read-back, it does not negate the day that follows
# ("no one" alone is the pronoun, or too little to read a time from: not "no" + 1 pm)
_REFUSAL = re.compile(
    r"^(?:\s*(?:no(?![\s,.]+one[\s,.]*$)|nope|nah|actually|oh|um|uh|well|sorry)\b[\s,.]*)+"
)


# Words that make a day or time said at a read-back a change of it: a refusal, a request, a
# preference ("no, Friday", "Friday instead", "how about Friday", "could we do Friday", "is Friday
# possible", "Friday would be better", "maybe Friday", "do you have Friday")
_CHANGE_CUES = NEGATORS | frozenset((
    "no", "nope", "nah", "actually", "instead", "rather", "prefer", "better", "possible",
    "available", "about", "how's", "what's", "can", "could", "make", "move", "change",
    "another", "different", "else", "try", "maybe", "perhaps", "have", "free", "open",
))


@dataclass(frozen=True, slots=True)
class Change:
    """One correction; unset fields are not changed. ``shift``: ``LATER``, ``EARLIER`` or 0.
    ``unclear``: the caller gave a name that could not be read (never taken for a yes).
    ``unsure``: a day or time heard without a word of change (asked about before searching)."""

    name: str = ""
    date: str = ""  # ISO date
    time: str = ""  # "HH:MM"
    shift: int = 0
    unclear: bool = False
    email: str = ""  # the address the caller gave instead of the one read back
    email_again: bool = False  # the address read back is wrong, and no other was heard
    unsure: bool = False


def heard_change(ctx: Ctx, text: str, anchor: SlotOffer | None) -> Change | None:
    """The change ``text`` asks for against ``anchor`` (the slot read back; None when several
    were offered), or None when it asks for none."""
    words = set(_WORDS.findall(text.lower()))
    if words & _NAME_WORDS:
        name = ctx.read("name", text)
        if not name:
            return Change(unclear=True)
        return Change(name=name) if name != ctx.var("user_name") else None
    rest = _REFUSAL.sub("", text.lower())
    if anchor is not None and words & set(WEEKDAYS):
        # a weekday is read from the day read back ("no, Thursday" to Tuesday the 1st:
        # Thursday the 3rd; "Tuesday" is that Tuesday), not from today
        eve = anchor.local_start.replace(hour=0, minute=0, second=0, microsecond=0)
        if ctx.now.tzinfo is None:  # a naive ``now`` is already local (see rules.extract)
            eve = eve.replace(tzinfo=None)
        ctx = replace(ctx, now=max(ctx.now, eve - timedelta(days=1)))
    day = ctx.read("date", rest)
    clock = ctx.read("time", rest)
    clock = clock if clock is not None and "-" not in clock else None
    if anchor is not None:
        local = datetime.fromisoformat(anchor.start)
        if day == local.date().isoformat():
            day = None
        if clock == f"{local.hour:02d}:{local.minute:02d}":
            clock = None
    if day or clock:
        return Change(date=day or "", time=clock or "", unsure=not words & _CHANGE_CUES)
    later, earlier = bool(words & _LATER), bool(words & _EARLIER)
    if later != earlier:
        return Change(shift=LATER if later else EARLIER)
    return None


# Within three words before "book", these make it a refusal ("no, don't book it")
_NOT_BOOK = NEGATORS | {"rather"}


def asks_to_book(text: str) -> bool:
    """Whether ``text`` asks, in so many words, for the booking ("go ahead and book it"):
    "book" without a negation just before it."""
    words = _WORDS.findall(text.lower())
    return any(
        word == "book" and not negated(words, i, within=3, by=_NOT_BOOK)
        for i, word in enumerate(words)
    )


def heard_email(ctx: Ctx, text: str, *, read_back: str) -> Change | None:
    """The e-mail correction in ``text``, said after the address ``read_back`` ("" when none
    was read back): another address, or the one read back called wrong; None for neither (the
    same address again is no correction)."""
    address = ctx.read("email", _REFUSAL.sub("", text.lower()))  # not "actually" in the address
    if address is not None:
        return Change(email=address) if address != read_back else None
    words = set(_WORDS.findall(text.lower()))
    if read_back and words & _EMAIL_WORDS and (
        words & _WRONG or ctx.read("yes_no", text) == "no"
    ):
        return Change(email_again=True)
    return None


def email_correction_hints() -> SpeechHints:
    """Phrases a caller may correct an address read back with."""
    return SpeechHints(phrases=(
        "no the email is wrong", "the email is wrong", "that's the wrong email",
        "no the email address is wrong", "wrong email", "no that's not my email",
        "the email", "the email address", "the time", "the day",
    ))


def correction_hints() -> SpeechHints:
    """Phrases a caller may correct a read-back with (for the recogniser's language model),
    the name question's among them."""
    return SpeechHints(phrases=(
        *(f"actually {phrase}" for phrase in rules.hints("name").phrases if " " in phrase),
        "no later", "later", "something later", "anything later", "no earlier", "earlier",
        "something earlier", "anything earlier", "actually my name is", "my name is",
        *(f"no {day}" for day in WEEKDAYS), *(f"how about {day}" for day in WEEKDAYS),
        *(f"can we do {day} instead" for day in WEEKDAYS),
    ))
