"""A correction at a read-back changes that answer and goes on, without starting over: the flow
engine with a confirming booking node, driven by events (no I/O)."""

from __future__ import annotations

import pytest

from slotline.agent.call.responder import CallStarted, Listen
from slotline.agent.flow import Phase
from slotline.agent.flow.corrections import EARLIER, LATER, Change, heard_change
from slotline.agent.flow.engine import FlowEngine
from slotline.agent.flow.messages import (
    AvailabilityReady,
    BookingFinished,
    CallerSaid,
    CheckAvailability,
    RunBooking,
    Say,
    SlotOffer,
)
from slotline.agent.flow.state import Ctx
from slotline.providers.llm import rules
from tests.unit.test_flow_engine import AT_10, AT_14, AT_16, NOW, WED_14, booking_engine, says

AT_1430 = SlotOffer("2026-12-01T14:30:00-05:00", "Tuesday, December 1st", "2:30 pm")


def at_read_back(*others: SlotOffer, candidate: SlotOffer = AT_14) -> FlowEngine:
    """A confirming booking asked "I can book <candidate>. Shall I go ahead?"."""
    e = booking_engine(confirm=True)
    e.handle(CallStarted("CA1"))
    asked = e.handle(AvailabilityReady("book", candidate, others))
    assert says(asked) == [f"I can book {candidate.spoken}. Shall I go ahead?"]
    return e


def checked(actions: list[object]) -> CheckAvailability:
    [say, check] = actions
    assert say == Say("Sure, let me check.")
    assert isinstance(check, CheckAvailability)
    return check


# what is said at "I can book Tuesday, December 1st at 2 pm. Shall I go ahead?" (NOW is
# Tuesday, November 24th) -> the date and time the calendar is asked for again
CHECK_AGAIN = [
    ("no, wednesday", "2026-12-02", "15:00"),  # the day changes, the time wish stays
    ("can we do thursday instead", "2026-12-03", "15:00"),
    ("actually friday would be better", "2026-12-04", "15:00"),
    ("no, three pm", "2026-12-01", "15:00"),  # a time not on offer, the same day
    ("no, wednesday at eleven a m", "2026-12-02", "11:00"),
    ("no, later", "2026-12-01", "15:00"),  # nothing later on offer: an hour after 2 pm
    ("do you have anything earlier", "2026-12-01", "13:00"),
]


@pytest.mark.parametrize(("said", "day", "clock"), CHECK_AGAIN)
def test_a_correction_checks_the_calendar_again_for_it(said: str, day: str, clock: str) -> None:
    e = at_read_back()
    check = checked(e.handle(CallerSaid(said)))
    assert (check.preferences.date, check.preferences.time) == (day, clock)
    assert e.phase is Phase.CHECKING
    assert (e.variables["preferred_date"], e.variables["preferred_time"]) == (day, clock)
    assert e.variables["user_name"] == "Ann Lee"  # nothing else changed
    # and the booking goes on from there: the new slot is read back, yes books it
    new = SlotOffer(f"{day}T{clock}:00-05:00", "the new day", "the new time")
    assert says(e.handle(AvailabilityReady("book", new, ()))) == [
        "I can book the new day at the new time. Shall I go ahead?"
    ]
    [run] = e.handle(CallerSaid("yes please"))
    assert isinstance(run, RunBooking) and run.slot_start == new.start
    assert run.preferences.date == day


# said at the read-back of 2 pm with other offers known -> the one asked about next
ASK_ABOUT = [
    ("no, later", (AT_10, AT_16, AT_1430), AT_1430),  # the nearest later one
    ("something later please", (AT_16,), AT_16),
    ("no, earlier", (AT_10, AT_16), AT_10),
    ("no wednesday", (AT_16, WED_14), WED_14),  # a day with one offer: that offer
]


@pytest.mark.parametrize(("said", "others", "next_one"), ASK_ABOUT)
def test_later_or_another_day_on_offer_is_asked_about(
    said: str, others: tuple[SlotOffer, ...], next_one: SlotOffer
) -> None:
    e = at_read_back(*others)
    asked = e.handle(CallerSaid(said))
    assert says(asked) == [f"I can book {next_one.spoken}. Shall I go ahead?"]
    [run] = e.handle(CallerSaid("yes"))
    assert isinstance(run, RunBooking) and run.slot_start == next_one.start


NAMES = [
    ("actually my name is anna kowalczyk", "Anna Kowalczyk", "Anna"),
    ("no, my name is john smith", "John Smith", "John"),
    ("the name's priya", "Priya", "Priya"),
]


@pytest.mark.parametrize(("said", "name", "first"), NAMES)
def test_a_new_name_is_taken_and_the_same_question_asked(said: str, name: str, first: str) -> None:
    e = at_read_back(AT_16)
    asked = e.handle(CallerSaid(said))
    assert says(asked) == [f"Thank you, {first}.",
                           "I can book Tuesday, December 1st at 2 pm. Shall I go ahead?"]
    assert e.variables["user_name"] == name and e.phase is Phase.CONFIRM
    [run] = e.handle(CallerSaid("yes"))
    assert isinstance(run, RunBooking) and run.attendee.name == name
    assert run.slot_start == AT_14.start


@pytest.mark.parametrize("said", ["actually my name is sam about good",
                                  "my name is emma paul to"])
def test_a_name_that_cannot_be_read_is_asked_about_not_taken_for_a_yes(said: str) -> None:
    e = at_read_back(AT_16)
    asked = e.handle(CallerSaid(said))
    assert says(asked) == ["Sorry, I didn't catch the name. Shall I book Tuesday, December 1st "
                           "at 2 pm?"]
    assert e.variables["user_name"] == "Ann Lee" and e.phase is Phase.CONFIRM
    [run] = e.handle(CallerSaid("yes"))
    assert isinstance(run, RunBooking) and run.attendee.name == "Ann Lee"


NOT_CHANGES = [
    ("yes", "yes"),
    ("yes that works", "yes"),
    ("yes, two pm is great", "yes"),  # the time read back itself
    ("yes tuesday is fine", "yes"),  # the day read back itself
    ("no", "no"),
    ("no thanks", "no"),
    ("nope not at one", "no"),  # a time ruled out is no time asked for
    ("no one", "no"),  # the pronoun, not "no" and then 1 pm
]


@pytest.mark.parametrize(("said", "meaning"), NOT_CHANGES)
def test_plain_answers_are_not_changes(said: str, meaning: str) -> None:
    e = at_read_back(AT_16)
    actions = e.handle(CallerSaid(said))
    if meaning == "yes":
        [run] = actions
        assert isinstance(run, RunBooking) and run.slot_start == AT_14.start
    else:
        assert says(actions)[0].startswith("No problem. I have 4 pm")


def test_a_correction_at_the_offers_is_taken_too() -> None:
    e = booking_engine(confirm=True)
    e.handle(CallStarted("CA1"))
    e.handle(AvailabilityReady("book", None, (AT_10, AT_14)))
    assert e.phase is Phase.CHOOSE
    check = checked(e.handle(CallerSaid("do you have anything later")))
    assert (check.preferences.date, check.preferences.time) == ("2026-12-01", "15:00")
    e.handle(AvailabilityReady("book", None, (AT_16,)))
    asked = e.handle(CallerSaid("my name is jane doe"))
    assert says(asked)[0] == "Thank you, Jane." and e.variables["user_name"] == "Jane Doe"
    assert e.phase is Phase.CHOOSE


def test_the_reader_alone() -> None:
    ctx = Ctx("book", {"user_name": "Ann Lee"}, NOW, "America/New_York", rules.extract)
    assert heard_change(ctx, "no later", AT_14) == Change(shift=LATER)
    assert heard_change(ctx, "anything sooner", AT_14) == Change(shift=EARLIER)
    assert heard_change(ctx, "earlier or later", AT_14) is None  # both: not understood
    assert heard_change(ctx, "my name is ann lee", AT_14) is None  # the name it has
    assert heard_change(ctx, "no wednesday", AT_14) == Change(date="2026-12-02")


@pytest.mark.parametrize("said", [
    "no at i book at", "no book it",  # "go ahead and book it" misheard
    "no that works", "yes no at", "no wait yes",  # a yes and a no: neither is sure
    "that doesn't suit me that's fine", "that won't be a problem",  # a negation the yes lacks
])
def test_an_answer_that_is_yes_and_no_is_asked_again(said: str) -> None:
    e = at_read_back(AT_16)
    actions = e.handle(CallerSaid(said))
    assert says(actions) == [f"Sorry, shall I book {AT_14.spoken}? Please say yes or no."]
    assert not any(isinstance(a, RunBooking) for a in actions) and e.phase is Phase.CONFIRM


@pytest.mark.parametrize("said", [
    "i'm betty dot that's fine",  # "i'm busy at that time" as the offline recogniser heard it
    "sounds good william", "yes dot com",  # a name, an address's words: no yes holds them
])
def test_a_yes_among_words_no_yes_holds_is_asked_again(said: str) -> None:
    e = at_read_back(AT_16)
    actions = e.handle(CallerSaid(said))
    assert says(actions) == [f"Sorry, shall I book {AT_14.spoken}? Please say yes or no."]
    assert not any(isinstance(a, RunBooking) for a in actions) and e.phase is Phase.CONFIRM


def test_a_yes_with_the_callers_own_name_or_mark_books() -> None:
    e = at_read_back(AT_16)
    e.handle(CallerSaid("no, my name is john smith"))
    [run] = e.handle(CallerSaid("yes that's right john"))
    assert isinstance(run, RunBooking) and run.attendee.name == "John Smith"
    assert any(isinstance(a, RunBooking)
               for a in at_read_back(AT_16).handle(CallerSaid("yes please mark it down")))


def test_a_run_of_digits_names_no_other_offer() -> None:
    """A recogniser's "at two three five" for "that suits me fine": not the 2 pm on offer."""
    e = at_read_back(AT_14, candidate=AT_16)
    actions = e.handle(CallerSaid("at two three five"))
    assert says(actions) == [f"Sorry, shall I book {AT_16.spoken}? Please say yes or no."]
    assert e.phase is Phase.CONFIRM


@pytest.mark.parametrize("said", ["no don't book it", "no i'd rather not book"])
def test_a_no_to_booking_is_still_a_no(said: str) -> None:
    assert says(at_read_back(AT_16).handle(CallerSaid(said)))[0].startswith("No problem.")


@pytest.mark.parametrize("said", [
    "good you make at the morning instead",  # a misheard "could you make it the morning ..."
    "sounds good the evening instead", "yes in the morning",  # AT_14 is 2 pm
    "good we dry three o'clock",  # a misheard "could we try three o'clock": another hour
])
def test_a_yes_that_asks_for_another_time_is_asked_again(said: str) -> None:
    e = at_read_back(AT_16)
    actions = e.handle(CallerSaid(said))
    assert says(actions) == [f"Sorry, shall I book {AT_14.spoken}? Please say yes or no."]
    assert not any(isinstance(a, RunBooking) for a in actions) and e.phase is Phase.CONFIRM


@pytest.mark.parametrize("said", ["yes the afternoon is fine", "yes please", "sounds good",
                                  "why not", "i don't mind", "yes that's not a problem"])
def test_a_yes_to_the_time_read_back_books(said: str) -> None:
    actions = at_read_back(AT_16).handle(CallerSaid(said))
    assert any(isinstance(a, RunBooking) for a in actions)


def test_the_read_back_asks_the_recogniser_for_a_sure_yes() -> None:
    actions = at_read_back(AT_16).handle(CallerSaid("hmm"))  # asked again
    [listen] = [a for a in actions if isinstance(a, Listen)]
    assert listen.hints.consent and "<refusal>" in (listen.hints.grammar or "")


# a day or time heard at the read-back without a word of change (a recogniser's "the fourth"
# for "of course") -> asked about, nothing searched yet
UNSURE = [
    ("the fourth", "Did you want Friday, December 4th instead?", "2026-12-04", "15:00"),
    ("thursday", "Did you want Thursday, December 3rd instead?", "2026-12-03", "15:00"),
    ("that's of april eighth", "Did you want Thursday, April 8th instead?", "2027-04-08",
     "15:00"),
    ("at three pm", "Did you want 3 pm instead?", "2026-12-01", "15:00"),
    ("friday at ten a m", "Did you want Friday, December 4th at 10 am instead?", "2026-12-04",
     "10:00"),
]


@pytest.mark.parametrize(("said", "question", "day", "clock"), UNSURE)
def test_a_day_heard_without_a_word_of_change_is_asked_about_first(
    said: str, question: str, day: str, clock: str
) -> None:
    e = at_read_back()
    assert says(e.handle(CallerSaid(said))) == [question]
    assert e.phase is Phase.CHANGE and e.variables["preferred_date"] == "2026-12-01"
    check = checked(e.handle(CallerSaid("yes please")))
    assert (check.preferences.date, check.preferences.time) == (day, clock)


def test_no_to_the_day_asked_about_goes_back_to_the_read_back_and_yes_books() -> None:
    e = at_read_back(AT_16)
    e.handle(CallerSaid("the fourth"))
    assert says(e.handle(CallerSaid("no"))) == [
        "Sorry, my mistake.", "I can book Tuesday, December 1st at 2 pm. Shall I go ahead?"]
    assert e.phase is Phase.CONFIRM
    [run] = e.handle(CallerSaid("yes"))
    assert isinstance(run, RunBooking) and run.slot_start == AT_14.start


def test_another_day_said_to_the_question_is_searched_and_a_muddle_is_asked_again() -> None:
    e = at_read_back()
    e.handle(CallerSaid("the fourth"))
    assert says(e.handle(CallerSaid("um"))) == ["Sorry. Did you want Friday, December 4th "
                                                "instead?"]
    check = checked(e.handle(CallerSaid("no the seventh")))
    assert check.preferences.date == "2026-12-07"
    e = at_read_back()
    e.handle(CallerSaid("the fourth"))
    assert checked(e.handle(CallerSaid("yes the fourth"))).preferences.date == "2026-12-04"


def test_answers_never_understood_go_back_to_the_read_back_not_to_a_search() -> None:
    e = at_read_back()
    e.handle(CallerSaid("the fourth"))
    for _ in range(5):
        said = says(e.handle(CallerSaid("banana")))
        if e.phase is not Phase.CHANGE:
            break
    assert said == ["Sorry, I didn't catch that.",
                    "I can book Tuesday, December 1st at 2 pm. Shall I go ahead?"]
    assert e.phase is Phase.CONFIRM


def test_a_yes_with_a_stray_negation_does_not_take_a_lone_offer() -> None:
    e = booking_engine()
    e.handle(CallStarted("CA1"))
    e.handle(BookingFinished("book", False, alternatives=(AT_16,), reason="unavailable"))
    actions = e.handle(CallerSaid("that doesn't suit me that's fine"))
    assert not any(isinstance(a, RunBooking) for a in actions) and e.phase is Phase.CHOOSE
    assert any(isinstance(a, RunBooking) for a in e.handle(CallerSaid("that's fine")))


def test_at_the_offers_a_bare_day_is_asked_about_and_no_offers_them_again() -> None:
    e = booking_engine(confirm=True)
    e.handle(CallStarted("CA1"))
    e.handle(AvailabilityReady("book", None, (AT_10, AT_16)))
    assert says(e.handle(CallerSaid("the ninth"))) == [
        "Did you want Wednesday, December 9th instead?"]
    again = says(e.handle(CallerSaid("no")))
    assert again[0].startswith("Sorry, my mistake. I have 10 am and 4 pm")
    assert e.phase is Phase.CHOOSE


@pytest.mark.parametrize("said", ["no, the fourth", "can we do the fourth", "the fourth instead",
                                  "how about the fourth", "is the fourth possible",
                                  "maybe the fourth"])
def test_a_day_with_a_word_of_change_is_searched_at_once(said: str) -> None:
    ctx = Ctx("book", {"user_name": "Ann Lee"}, NOW, "America/New_York", rules.extract)
    assert heard_change(ctx, said, AT_14) == Change(date="2026-12-04")
    assert heard_change(ctx, said.replace("the fourth", "friday"), AT_14) == \
        Change(date="2026-12-04")
    assert heard_change(ctx, "friday", AT_14) == Change(date="2026-12-04", unsure=True)
