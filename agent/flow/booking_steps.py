"""The booking dialogue of ``booking`` and ``reschedule`` nodes: check, offer, confirm, book.

The engine asks the booking service (protocol in :mod:`agent.flow.messages`); this module
decides what to say about the answers::

    enter ─confirm─▶ CHECKING ─requested free─▶ CONFIRM ─yes─▶ BOOKING ─booked─▶ `success`
      │                  └─alternatives─▶ CHOOSE ─pick─┘(confirm)   │
      └─no confirm─▶ BOOKING ◀──────────────── pick (no confirm) ──┘
                        └─not booked, alternatives─▶ CHOOSE
    nothing free, the caller declines every offer, or max_attempts answers not understood
    ─▶ `failure` (booking_success = "no")
    a calendar or the database failed (``FAILED`` reasons) ─▶ say so (``COULD_NOT_CHECK``,
    ``COULD_NOT_BOOK``), then `failure` (booking_error = the reason)

"That time was just taken" is said only when the write found it taken (reason ``taken``), never
for a failure: a caller told their time is gone when the calendar is down would try another
time that fails the same way. The failure node still speaks after the apology; a flow can branch
on ``booking_error`` (``calendar_error``, ``database_error``, ``error``, ``timeout``) there.

Offers are spoken in chronological order, at most three ("I have 10 am, 2 pm and 4 pm on
Tuesday, December 1st. Which works best for you?"), and the caller picks one by time ("two
pm"), by position ("the second one"), by day when that is unique ("Wednesday"), or with "yes"
when there is only one.

At the read-back ("Shall I go ahead?") and at the offers the caller may change one thing without
starting over (:mod:`agent.flow.corrections`): "no, Wednesday" or a time not on offer checks the
calendar again for it (the other wishes kept; a day or time said without a word of change is
asked about first, CHANGE: "Did you want Wednesday, December 9th instead?"), "no, later" /
"earlier" asks about the nearest offer on that side or checks again an hour away, "actually my
name is …" sets ``user_name`` and asks the same question again. An e-mail address the caller
gave is read back with the slot, and corrected there (:mod:`agent.flow.read_back`).

Offers are found and spoken in the caller's zone (``Ctx.timezone``: the ``user_timezone`` the
call started with or the caller stated since, :mod:`agent.flow.zone_steps`). When the business's
clock (``Ctx.home_timezone``) reads differently, the offers say so ("…, your time") and the
question before booking names both ("Tuesday at 3 pm your time, that's 10 am Eastern time").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, time, timedelta

from slotline.agent.booking.proposal import part_of_day
from slotline.agent.booking.speech import (
    clocks_differ,
    speak_clock,
    speak_date,
    speak_elsewhere,
    speak_times,
)
from slotline.agent.flow import read_back
from slotline.agent.flow.corrections import (
    LATER,
    Change,
    asks_to_book,
    correction_hints,
    email_correction_hints,
    heard_change,
    heard_email,
)
from slotline.agent.flow.messages import (
    Attendee,
    AvailabilityReady,
    BookingFinished,
    CallerSaid,
    CheckAvailability,
    Lookup,
    Preferences,
    RunBooking,
    RunReschedule,
    Say,
    SlotOffer,
)
from slotline.agent.flow.model import BookingNode, RescheduleNode
from slotline.agent.flow.state import Ctx, Phase, Step
from slotline.agent.flow.steps import lookup, said
from slotline.providers.llm import rules
from slotline.providers.llm.rules.normalize import tokens
from slotline.providers.llm.rules.vocab import MODEL_FIRST_NAMES

MAX_OFFERS = 3  # more than three times in one sentence is more than a caller can hold
TAKEN = "Sorry, that time was just taken."
UNAVAILABLE = "Sorry, that time isn't available."
WHICH = "Which works best for you?"
WHICH_AGAIN = "Sorry, which one would you like?"
COULD_NOT_CHECK = "I'm sorry, I couldn't check the calendar just now."
COULD_NOT_BOOK = "I'm sorry, I couldn't complete the booking just now."
# a calendar or the store failed (agent.booking.runner), or the service call itself raised or
# ran out of time (agent.flow.responder)
# What a booking node says in fixed words, for the prompt cache (as sentences): "Sorry, that time
# was just taken." opens the reply to a lost race without a TTS round trip
FIXED_SENTENCES = (
    TAKEN, UNAVAILABLE, WHICH, WHICH_AGAIN, COULD_NOT_CHECK, COULD_NOT_BOOK, read_back.WHICH,
    read_back.WHICH_AGAIN, read_back.ASK_EMAIL, read_back.ASK_EMAIL_AGAIN, read_back.DROPPED,
)
FAILED = frozenset({"calendar_error", "database_error", "error", "timeout"})
# ``rules.extract_yes_no`` gives 0.8 and up to an answer of one polarity, 0.6 to "no wait yes"
SURE_YES_NO = 0.8

BookingLike = BookingNode | RescheduleNode


def preferences(ctx: Ctx) -> Preferences:
    return Preferences(
        date=ctx.var("preferred_date"),
        time=ctx.var("preferred_time"),
        time_of_day=ctx.var("time_preference"),
        timezone=ctx.timezone if ctx.timezone != (ctx.home_timezone or ctx.timezone) else "",
    )


def attendee(ctx: Ctx) -> Attendee:
    return Attendee(
        name=ctx.var("user_name"),
        email=ctx.var("user_email"),
        phone=ctx.var("user_phone"),
        timezone=ctx.var("user_timezone"),
    )


def booking_lookup(ctx: Ctx, node: BookingLike) -> Lookup | None:
    if isinstance(node, BookingNode):
        return None
    return lookup(ctx, node.reference_variable, node.phone_variable)


def _run(ctx: Ctx, node: BookingLike, slot_start: str) -> RunBooking | RunReschedule:
    if isinstance(node, BookingNode):
        return RunBooking(
            ctx.node_id,
            node.action,
            preferences(ctx),
            attendee(ctx),
            fields=dict(ctx.variables),
            slot_start=slot_start,
        )
    found = booking_lookup(ctx, node)
    assert found is not None  # entering a reschedule node without a lookup takes `failure`
    return RunReschedule(ctx.node_id, node.action, found, preferences(ctx), slot_start)


def enter_booking(ctx: Ctx, node: BookingLike) -> Step:
    found = booking_lookup(ctx, node)
    if isinstance(node, RescheduleNode) and found is None:
        return _not_booked(ctx, "no_lookup")
    intro = said(ctx, node.say)
    if _confirms(ctx, node):
        check = CheckAvailability(ctx.node_id, node.action, preferences(ctx), found)
        return Step((*intro, check), phase=Phase.CHECKING)
    return Step((*intro, _run(ctx, node, "")), phase=Phase.BOOKING)


def availability_ready(ctx: Ctx, node: BookingLike, event: AvailabilityReady) -> Step:
    if event.requested is not None:
        return ask_confirm(ctx, event.requested, event.alternatives)
    if event.alternatives:
        return offer_times(ctx, event.alternatives, _unavailable_prefix(ctx))
    if event.reason in FAILED:
        return _not_booked(ctx, event.reason, apology=COULD_NOT_CHECK)
    return _not_booked(ctx, event.reason or "unavailable")


def booking_finished(ctx: Ctx, node: BookingLike, event: BookingFinished) -> Step:
    if event.success:
        slot = event.booked
        variables = {
            "booking_success": "yes",
            "booked_date": slot.date_spoken if slot else "",
            "booked_time": slot.time_spoken + _your_time(ctx, (slot,)) if slot else "",
            "booked_start": slot.start if slot else "",
            "booking_id": event.booking_id,
            "alternatives": "",
        }
        return Step(variables=variables, edge="success")
    if event.reason in FAILED:
        return _not_booked(ctx, event.reason, apology=COULD_NOT_BOOK)
    offers = tuple(offer for offer in event.alternatives if offer != ctx.candidate)
    if not offers:
        return _not_booked(ctx, event.reason or "unavailable")
    if event.reason == "taken":
        prefix = TAKEN
    else:
        prefix = UNAVAILABLE if ctx.candidate is not None else _unavailable_prefix(ctx)
    return offer_times(ctx, offers, prefix)


def confirm_answer(ctx: Ctx, node: BookingLike, event: CallerSaid) -> Step:
    """After "shall I book <candidate>?": yes books, another offered time is asked about
    instead, no offers the others."""
    assert ctx.candidate is not None
    text = event.text.strip()
    others = tuple(offer for offer in ctx.offers if offer != ctx.candidate)
    address = read_back.read_back_address(ctx)
    email = heard_email(ctx, text, read_back=address) if text else None
    if email is not None:
        return _email_changed(ctx, email, ctx.candidate, others)
    named = pick_offer(ctx, text, (ctx.candidate, *others))  # the candidate wins a tie
    if named is not None and named != ctx.candidate:
        return ask_confirm(ctx, named, (*others, ctx.candidate))
    change = heard_change(ctx, text, ctx.candidate) if text and named is None else None
    if change is not None:
        return _changed(ctx, node, change, ctx.candidate, others)
    # a yes and a no in one answer ("no that works", "yes no at") is not enough to book or
    # to drop the time on: asked again
    answer = ctx.read("yes_no", text, min_confidence=SURE_YES_NO) if text else None
    if answer == "no" and asks_to_book(text):
        answer = None  # "no ... book it": the halves disagree (a misheard "go ahead"), ask again
    if answer == "yes" and _wants_otherwise(ctx, text, ctx.candidate):
        answer = None  # "good ... the afternoon instead": not a yes to this time, ask again
    if answer == "yes" and rules.stray_negation(text):
        answer = None  # "that doesn't suit me ... that's fine": half of it refuses, ask again
    if answer == "yes" and _garbled_yes(ctx, text, address):
        answer = None  # "i'm betty dot that's fine" for "i'm busy at that time": ask again
    if answer == "yes":
        return _book(ctx, node, ctx.candidate)
    if answer == "no" and address:
        return read_back.ask_which(ctx, read_back.WHICH)
    if answer == "no":
        return _declined(ctx, others)
    again = f"Sorry, shall I book {ctx.candidate.spoken}? Please say yes or no."
    return _retry(ctx, node, again, Phase.CONFIRM)


# Words that a yes to the read-back does not hold, but that a garbled decode of something else
# does: the offline recogniser's model knows these names and e-mail words, and puts them where it
# did not understand ("i'm busy at that time" heard as "i'm betty dot that's fine"; bench.
# heard_right --set consent5). Not "mark" ("yes, mark it down").
_GARBLE_NAMES = frozenset(MODEL_FIRST_NAMES) - {"mark"}
_EMAIL_SPELLING = frozenset(("dot", "underscore", "hyphen", "gmail", "yahoo", "hotmail", "icloud",
                             "aol"))


def _garbled_yes(ctx: Ctx, text: str, address: str) -> bool:
    """Whether a yes to the read-back comes with a name that is not the caller's own, or with an
    e-mail's spelling words while no ``address`` was read back (one read back may be repeated):
    a booking is made on a yes, so a yes heard among words no yes holds is asked again."""
    words = set(tokens(text))
    if (words & _GARBLE_NAMES) - set(tokens(ctx.var("user_name"))):
        return True
    return bool(words & _EMAIL_SPELLING) and not address


def _wants_otherwise(ctx: Ctx, text: str, candidate: SlotOffer) -> bool:
    """Whether a yes at the read-back asks for another part of the day or another hour than the
    time read back ("good you make at the afternoon instead" to 10 am). Not "instead" alone: the
    offline recogniser hears "go ahead" as "call instead"."""
    part = ctx.read("time_of_day", text)
    local = candidate.local_start
    if part is not None and part != part_of_day(local.hour * 60 + local.minute):
        return True
    # "good we dry three o'clock" (a misheard "could we try three o'clock") to 10 am
    hours = rules.clock_hours_said(text)
    return bool(hours) and (local.hour % 12 or 12) not in hours


def choose_answer(ctx: Ctx, node: BookingLike, event: CallerSaid) -> Step:
    text = event.text.strip()
    picked = pick_offer(ctx, text, ctx.offers)
    answer = ctx.read("yes_no", text) if text and picked is None else None
    if (picked is None and answer == "yes" and len(ctx.offers) == 1
            and not rules.stray_negation(text)):
        picked = ctx.offers[0]
    if picked is not None:
        others = tuple(offer for offer in ctx.offers if offer != picked)
        if _confirms(ctx, node):
            return ask_confirm(ctx, picked, others)
        return _book(ctx, node, picked)
    change = heard_change(ctx, text, None) if text else None
    if change is not None:
        return _changed(ctx, node, change, None, ctx.offers)
    if answer == "no":
        return _not_booked(ctx, "declined", ctx.offers)
    again = f"{WHICH_AGAIN} {offer_sentence(ctx.offers)}"
    again += f"{_your_time(ctx, ctx.offers)}."
    return _retry(ctx, node, again, Phase.CHOOSE)


def amend_answer(ctx: Ctx, node: BookingLike, event: CallerSaid) -> Step:
    """After "should I change the time, or the email address?" (a "no" to a read-back with an
    address): another address is read back, "the email" asks for it, "the time" offers the
    others (as a "no" does), a change of day or time is made."""
    assert ctx.candidate is not None
    text = event.text.strip()
    others = tuple(offer for offer in ctx.offers if offer != ctx.candidate)
    address = read_back.read_back_address(ctx)
    email = heard_email(ctx, text, read_back=address) if text else None
    if email is not None and email.email:
        return _email_changed(ctx, email, ctx.candidate, others)
    which = ctx.read("choice", text, read_back.AMEND_CHOICES) if text else None
    if which == read_back.ADDRESS or email is not None:
        return read_back.ask_email(ctx, read_back.ASK_EMAIL)
    if which == read_back.TIME:
        return _declined(ctx, others)
    change = heard_change(ctx, text, ctx.candidate) if text else None
    if change is not None:
        return _changed(ctx, node, change, ctx.candidate, others)
    if ctx.attempts + 1 >= node.max_attempts:
        return _declined(ctx, others)
    return read_back.ask_which(ctx, read_back.WHICH_AGAIN, ctx.attempts + 1)


def email_answer(ctx: Ctx, node: BookingLike, event: CallerSaid) -> Step:
    """After "what's the right email address?": the address heard is read back with the slot;
    "no thanks" books without one; not understood ``max_attempts`` times, it is dropped."""
    assert ctx.candidate is not None
    text = event.text.strip()
    others = tuple(offer for offer in ctx.offers if offer != ctx.candidate)
    address = ctx.read("email", text) if text else None
    if address is not None:
        return _email_changed(ctx, Change(email=address), ctx.candidate, others)
    if text and ctx.read("yes_no", text) == "no":
        return _without_email(ctx, ctx.candidate, others, "No problem.")
    if ctx.attempts + 1 >= node.max_attempts:
        return _without_email(ctx, ctx.candidate, others, read_back.DROPPED)
    return read_back.ask_email(ctx, read_back.ASK_EMAIL_AGAIN, ctx.attempts + 1)


# ---- the steps the dialogue is made of -------------------------------------------------------


def ask_confirm(ctx: Ctx, candidate: SlotOffer, others: Sequence[SlotOffer]) -> Step:
    email = read_back.email_to_read(ctx)
    question = Say(read_back.confirm_question(_with_home_time(ctx, candidate), email))
    hints = [rules.consent_hints(), correction_hints()]
    if email:  # "no, it's ... at gmail dot com", "no, the email is wrong"
        hints += [email_correction_hints(), rules.hints("email")]
    listen = ctx.listen(*hints).expecting("yes_no")
    return Step(
        (question, listen), phase=Phase.CONFIRM, offers=(candidate, *others), candidate=candidate
    )


def _confirms(ctx: Ctx, node: BookingLike) -> bool:
    """Whether the slot is read back before booking: the node says so, or there is an address
    the caller gave to read back (never booked unread)."""
    return node.confirm or bool(read_back.email_to_read(ctx))


def _declined(ctx: Ctx, others: Sequence[SlotOffer]) -> Step:
    """The caller said no to the slot read back: the other offers, else not booked."""
    return offer_times(ctx, others, "No problem.") if others else _not_booked(ctx, "declined")


def _email_changed(
    ctx: Ctx, change: Change, candidate: SlotOffer, others: Sequence[SlotOffer]
) -> Step:
    """Another address for the one read back: the same slot read back with it; or, with none
    heard (``email_again``), the address asked for again."""
    if change.email_again:
        return read_back.ask_email(ctx, read_back.ASK_EMAIL)
    asked = ask_confirm(read_back.with_email(ctx, change.email), candidate, others)
    return replace(asked, variables={read_back.EMAIL: change.email},
                   heard=read_back.EMAIL_VARIABLES)


def _without_email(
    ctx: Ctx, candidate: SlotOffer, others: Sequence[SlotOffer], prefix: str
) -> Step:
    """The address read back is dropped: the slot read back without one."""
    asked = ask_confirm(read_back.with_email(ctx, ""), candidate, others)
    return replace(asked, actions=(Say(prefix), *asked.actions),
                   variables={read_back.EMAIL: ""}, confirmed=read_back.EMAIL_VARIABLES)


def _changed(
    ctx: Ctx, node: BookingLike, change: Change, candidate: SlotOffer | None,
    others: Sequence[SlotOffer],
) -> Step:
    """Carry out a correction heard at a read-back (``candidate``) or at the offers (None)."""
    if change.unclear:
        again = "Sorry, I didn't catch the name. " + (
            f"Shall I book {candidate.spoken}?" if candidate is not None
            else f"{offer_sentence(others)}{_your_time(ctx, others)}. {WHICH}"
        )
        return _retry(ctx, node, again, Phase.CONFIRM if candidate is not None else Phase.CHOOSE)
    if change.name:
        first = change.name.split()[0]
        if candidate is not None:
            asked = ask_confirm(ctx, candidate, others)
        else:
            asked = offer_times(ctx, others, "")
        return replace(asked, actions=(Say(f"Thank you, {first}."), *asked.actions),
                       variables={"user_name": change.name})
    known = (candidate,) if candidate is not None else tuple(others)
    if change.shift:
        sign = change.shift
        anchor = (max if sign == LATER else min)(o.local_start for o in known)
        side = [o for o in others if (o.local_start - anchor).total_seconds() * sign > 0]
        if side:
            nearest = min(side, key=lambda o: abs(o.local_start - anchor))
            rest = tuple(o for o in (*others, *(() if candidate is None else (candidate,)))
                         if o != nearest)
            return ask_confirm(ctx, nearest, rest)
        wanted = anchor + timedelta(hours=sign)
        return _check_again(ctx, node, wanted.date().isoformat(), f"{wanted:%H:%M}")
    day = change.date or _day_of(known[0])
    on_day = [o for o in others if _day_of(o) == day
              and (not change.time or f"{o.local_start:%H:%M}" == change.time)]
    if len(on_day) == 1:  # "no, Wednesday" with one Wednesday offer: that one
        rest = tuple(o for o in (*others, *known) if o != on_day[0])
        return ask_confirm(ctx, on_day[0], tuple(dict.fromkeys(rest)))
    if change.unsure:  # maybe a misheard yes: asked about before the calendar is searched
        return _ask_change(ctx, candidate, day if change.date else "", change.time)
    return _check_again(ctx, node, day, change.time or ctx.var("preferred_time"))


def _ask_change(ctx: Ctx, candidate: SlotOffer | None, day: str, clock: str,
                attempts: int = 0, prefix: str = "") -> Step:
    """ "Did you want Friday, December 11th instead?" about a day (ISO; "" = the day read back)
    and/or a time ("HH:MM") heard without a word of change (CHANGE)."""
    when = _spoken_wish(ctx, day, clock)
    hints = [rules.consent_hints(), correction_hints()]
    listen = ctx.listen(*hints).expecting("yes_no")
    return Step((Say(f"{prefix}Did you want {when} instead?"), listen), phase=Phase.CHANGE,
                attempts=attempts, offers=ctx.offers, candidate=candidate,
                asked_about=(day, clock))


def _spoken_wish(ctx: Ctx, day: str, clock: str) -> str:
    """ "Friday, December 11th at 1 pm", "Friday, December 11th" or "1 pm"."""
    parts = []
    if day:
        parts.append(speak_date(date.fromisoformat(day), ctx.now.date()))
    if clock:
        parts.append(speak_clock(datetime.combine(ctx.now.date(), time.fromisoformat(clock))))
    return " at ".join(parts)


def change_answer(ctx: Ctx, node: BookingLike, event: CallerSaid) -> Step:
    """After "did you want Friday instead?": yes checks the calendar for it; no asks the
    question before it again (the read-back, or the offers); another day, time, name or "later"
    is taken as said; anything else asks again, and after ``max_attempts`` goes back."""
    day, clock = ctx.asked_about
    candidate = ctx.candidate
    others = tuple(offer for offer in ctx.offers if offer != candidate)
    text = event.text.strip()
    change = heard_change(ctx, text, candidate) if text else None
    if change is not None and (change.date or change.time):
        if (change.date, change.time) != (day or change.date, clock or change.time):
            # the caller answered the question with another day or time: a wish said twice
            return _changed(ctx, node, replace(change, unsure=False), candidate, others)
        change = None  # "yes, Friday": the day asked about
    if change is not None:
        return _changed(ctx, node, change, candidate, others)
    answer = ctx.read("yes_no", text, min_confidence=SURE_YES_NO) if text else None
    if answer == "yes":
        known = candidate or (ctx.offers[0] if ctx.offers else None)
        wanted = day or (_day_of(known) if known is not None else ctx.var("preferred_date"))
        return _check_again(ctx, node, wanted, clock or ctx.var("preferred_time"))
    if answer == "no" or ctx.attempts + 1 >= node.max_attempts:
        prefix = "Sorry, my mistake." if answer == "no" else "Sorry, I didn't catch that."
        if candidate is not None:
            asked = ask_confirm(ctx, candidate, others)
            return replace(asked, actions=(Say(prefix), *asked.actions))
        return offer_times(ctx, ctx.offers, prefix)
    return _ask_change(ctx, candidate, day, clock, ctx.attempts + 1, "Sorry. ")


def _day_of(offer: SlotOffer) -> str:
    return datetime.fromisoformat(offer.start).date().isoformat()


def _check_again(ctx: Ctx, node: BookingLike, day: str, clock: str) -> Step:
    """Ask the calendar again with the caller's new date and time (other wishes kept)."""
    variables = {"preferred_date": day, "preferred_time": clock}
    wishes = replace(preferences(ctx), date=day, time=clock)
    check = CheckAvailability(ctx.node_id, node.action, wishes, booking_lookup(ctx, node))
    return Step((Say("Sure, let me check."), check), variables=variables, phase=Phase.CHECKING)


def _book(ctx: Ctx, node: BookingLike, slot: SlotOffer) -> Step:
    """Book ``slot``; an address read back with it is now the caller's confirmed one."""
    return Step((_run(ctx, node, slot.start),), phase=Phase.BOOKING, candidate=slot,
                confirmed=read_back.EMAIL_VARIABLES)


def offer_times(ctx: Ctx, offers: Sequence[SlotOffer], prefix: str) -> Step:
    shown = _chronological(offers[:MAX_OFFERS])
    text = f"{prefix} {offer_sentence(shown)}{_your_time(ctx, shown)}. {WHICH}".strip()
    choices = rules.hints("choice", choices=_choices(shown))
    if len(shown) == 1:  # "yes" takes the one offer, and may book it at once
        choices = replace(choices, consent=True)
    listen = ctx.listen(choices).expecting("choice")
    return Step((Say(text), listen), phase=Phase.CHOOSE, offers=shown)


def _retry(ctx: Ctx, node: BookingLike, again: str, phase: Phase) -> Step:
    attempts = ctx.attempts + 1
    if attempts >= node.max_attempts:
        return _not_booked(ctx, "not_understood", ctx.offers)
    hints = rules.consent_hints() if phase is Phase.CONFIRM else rules.hints(
        "choice", choices=_choices(ctx.offers)
    )
    return Step(
        (Say(again), ctx.listen(hints, correction_hints()).expecting(
            "yes_no" if phase is Phase.CONFIRM else "choice")),
        phase=phase,
        attempts=attempts,
        offers=ctx.offers,
        candidate=ctx.candidate,
    )


def _not_booked(
    ctx: Ctx, reason: str, offers: Sequence[SlotOffer] = (), *, apology: str = ""
) -> Step:
    variables = {
        "booking_success": "no",
        "alternatives": offer_sentence(offers) if offers else "",
        "booking_error": reason,
    }
    said = (Say(apology),) if apology else ()
    return Step(said, variables=variables, edge="failure")


def _your_time(ctx: Ctx, offers: Sequence[SlotOffer]) -> str:
    """ "your time" after times the business's clock reads differently; else ""."""
    home = ctx.home_timezone
    if home and any(clocks_differ(ctx.timezone, home, o.local_start) for o in offers):
        return " your time" if len(offers) == 1 else ", your time"
    return ""


def _with_home_time(ctx: Ctx, offer: SlotOffer) -> str:
    """ "Tuesday, December 8th at 3 pm your time, that's 10 am Eastern time" (the business's
    clock named when it differs), else just the offer."""
    home = ctx.home_timezone
    elsewhere = speak_elsewhere(offer.local_start, ctx.timezone, home) if home else ""
    return f"{offer.spoken} your time, {elsewhere}" if elsewhere else offer.spoken


def _unavailable_prefix(ctx: Ctx) -> str:
    wanted = ctx.var("preferred_time")
    return UNAVAILABLE if wanted and "-" not in wanted else ""


# ---- speaking and hearing offers -------------------------------------------------------------


def _chronological(offers: Sequence[SlotOffer]) -> tuple[SlotOffer, ...]:
    return tuple(sorted(offers, key=lambda offer: offer.local_start))


def offer_sentence(offers: Sequence[SlotOffer]) -> str:
    """ "I have 10 am, 2 pm and 4 pm on Tuesday, December 1st" — one group per day, in the
    order given (``agent.booking.speech.speak_times``, the one builder of this sentence)."""
    return speak_times((offer.date_spoken, offer.time_spoken) for offer in offers)


def _choices(offers: Sequence[SlotOffer]) -> list[str]:
    """One choice option per offer: its full spoken form, and its time when that is unique."""
    times = [offer.time_spoken for offer in offers]
    return [
        offer.spoken + (f"|{offer.time_spoken}" if times.count(offer.time_spoken) == 1 else "")
        for offer in offers
    ]


def pick_offer(ctx: Ctx, text: str, offers: Sequence[SlotOffer]) -> SlotOffer | None:
    """The offer the caller named: by position or spoken time, by clock time, or by a day that
    has only one offer; None when the utterance names none of them."""
    if not offers or not text:
        return None
    by_phrase = ctx.read("choice", text, _choices(offers))
    if by_phrase is not None:
        return next(offer for offer in offers if offer.spoken == by_phrase)
    clock = ctx.read("time", text)
    day = ctx.read("date", text)
    if clock is not None and "-" not in clock:
        hour, minute = int(clock[:2]), int(clock[3:5])
        at = [o for o in offers if (o.local_start.hour, o.local_start.minute) == (hour, minute)]
        at = at or [  # "two" heard as 2 am when 2 pm is on offer
            o for o in offers
            if (o.local_start.hour % 12, o.local_start.minute) == (hour % 12, minute)
        ]
        on_day = _on_day(at, day)
        if on_day or at:
            return (on_day or at)[0]
    on_day = _on_day(offers, day)
    return on_day[0] if len(on_day) == 1 else None


def _on_day(offers: Sequence[SlotOffer], day: str | None) -> list[SlotOffer]:
    """Offers on ``day`` (ISO), else on its weekday: "Wednesday" names the Wednesday on offer
    even when the date reader took it for an earlier one."""
    if day is None:
        return []
    same = [o for o in offers if o.local_start.date().isoformat() == day]
    weekday = date.fromisoformat(day).weekday()
    return same or [o for o in offers if o.local_start.weekday() == weekday]
