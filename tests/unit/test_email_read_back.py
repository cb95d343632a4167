"""An e-mail address heard from the caller is read back with the slot before the booking uses
it, and corrected there (``agent.flow.read_back``): the sentence builders, then the flow engine
driven by events (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from slotline.agent.booking.speech import speak_email
from slotline.agent.call.responder import CallerSaid, CallStarted
from slotline.agent.flow import (
    AvailabilityReady,
    BookingFinished,
    CheckAvailability,
    FlowEngine,
    Phase,
    RunBooking,
)
from slotline.agent.flow.read_back import confirm_question
from slotline.agent.flow.validate import FlowInvalid
from tests.unit.test_flow_engine import AT_10, AT_14, AT_16, BOOKING_NODES, engine, says

SPOKEN = [
    ("john.smith@gmail.com", "j o h n dot s m i t h at gmail dot com"),
    ("sarahmiller@outlook.com", "s a r a h m i l l e r at outlook dot com"),
    ("jane_doe-2@example.org", "j a n e underscore d o e dash 2 at example dot org"),
    ("a+b@yahoo.co.uk", "a plus b at yahoo dot c o dot u k"),  # "co", "uk": letters
    ("x@aol.com", "x at a o l dot com"),  # a name said as letters is spelled
    ("mary@acmedental.com", "m a r y at a c m e d e n t a l dot com"),  # unknown: spelled
    ("zoë@icloud.com", "z o ë at icloud dot com"),
    (" Ann@Example.COM ", "a n n at example dot com"),
]


@pytest.mark.parametrize(("address", "said"), SPOKEN)
def test_an_address_is_said_as_a_person_reads_it_on_the_phone(address: str, said: str) -> None:
    assert speak_email(address) == said


def test_the_read_back_names_the_address_only_when_there_is_one() -> None:
    when = "Tuesday, December 1st at 2 pm"
    assert confirm_question(when) == "I can book Tuesday, December 1st at 2 pm. Shall I go ahead?"
    assert confirm_question(when, "a n n at gmail dot com") == (
        "I can book Tuesday, December 1st at 2 pm, and send the details to a n n at gmail dot "
        "com. Shall I go ahead?"
    )


# ---- in the flow: asked, read back with the slot, corrected ----------------------------------

ASK_EMAIL = {"type": "conversation", "say": "Email?", "collect": "user_email",
             "extractor": "email", "optional": True, "next": "book", "fallback": "book"}
KNOWN = {"user_name": "Ann Lee", "preferred_date": "2026-12-01", "preferred_time": "14:00"}
HEARD = "a n n at gmail dot com"
READ_BACK = f"I can book Tuesday, December 1st at 2 pm, and send the details to {HEARD}. " \
            "Shall I go ahead?"
PLAIN = "I can book Tuesday, December 1st at 2 pm. Shall I go ahead?"


def asked_email(confirm: bool = True, **variables: str) -> FlowEngine:
    book = {**BOOKING_NODES["book"], "confirm": confirm}
    e = engine({"ask": ASK_EMAIL, **BOOKING_NODES, "book": book},
               variables={**KNOWN, **variables})
    assert says(e.handle(CallStarted("CA1"))) == ["Email?"]
    return e


def read_back(e: FlowEngine, *others: Any, said: str = "ann at gmail dot com") -> list[str]:
    """The caller says ``said`` at the e-mail question; what the read-back says."""
    [_, check] = e.handle(CallerSaid(said))
    assert isinstance(check, CheckAvailability)
    return says(e.handle(AvailabilityReady("book", AT_14, others)))


def booked(e: FlowEngine, said: str = "yes") -> RunBooking:
    [run] = e.handle(CallerSaid(said))
    assert isinstance(run, RunBooking) and run.slot_start == AT_14.start
    return run


def test_the_address_heard_is_read_back_with_the_slot_and_yes_books_with_it() -> None:
    e = asked_email()
    assert read_back(e) == [READ_BACK]
    assert booked(e).attendee.email == "ann@gmail.com"


def test_a_confirmed_address_is_not_read_back_again_after_the_time_was_taken() -> None:
    e = asked_email()
    read_back(e, AT_16)
    booked(e)
    offered = says(e.handle(BookingFinished("book", success=False, reason="taken",
                                            alternatives=(AT_16,))))
    assert offered[0].startswith("Sorry, that time was just taken.")
    assert says(e.handle(CallerSaid("four pm"))) == [
        "I can book Tuesday, December 1st at 4 pm. Shall I go ahead?"
    ]


def test_a_declined_address_adds_nothing_to_the_read_back() -> None:
    e = asked_email()
    assert read_back(e, said="no thanks") == [PLAIN]
    assert booked(e).attendee.email == ""


def test_an_address_not_heard_from_the_caller_is_not_read_back() -> None:
    e = engine({**BOOKING_NODES, "book": {**BOOKING_NODES["book"], "confirm": True}},
               variables={**KNOWN, "user_email": "ann@example.com"})  # a call parameter
    [_, check] = e.handle(CallStarted("CA1"))
    assert isinstance(check, CheckAvailability)
    assert says(e.handle(AvailabilityReady("book", AT_14, ()))) == [PLAIN]
    assert booked(e).attendee.email == "ann@example.com"


def test_a_booking_without_confirm_still_reads_an_address_back() -> None:
    e = asked_email(confirm=False)
    assert read_back(e) == [READ_BACK]
    assert booked(e).attendee.email == "ann@gmail.com"
    declined = asked_email(confirm=False)
    [run] = declined.handle(CallerSaid("no thanks"))[-1:]  # no address: booked straight away
    assert isinstance(run, RunBooking) and run.slot_start == ""


CORRECTIONS = [
    "no, it's anna at gmail dot com",
    "no it is anna at gmail dot com",
    "actually anna at gmail dot com",
]


@pytest.mark.parametrize("said", CORRECTIONS)
def test_another_address_at_the_read_back_is_read_back_in_its_place(said: str) -> None:
    e = asked_email()
    read_back(e, AT_16)
    assert says(e.handle(CallerSaid(said))) == [READ_BACK.replace("a n n", "a n n a")]
    assert e.phase is Phase.CONFIRM and e.variables["user_email"] == "anna@gmail.com"
    run = booked(e)
    assert run.attendee.email == "anna@gmail.com"


@pytest.mark.parametrize("said", ["no, the email is wrong", "that's the wrong email address",
                                  "no that's not my email"])
def test_the_address_called_wrong_is_asked_for_again(said: str) -> None:
    e = asked_email()
    read_back(e)
    assert says(e.handle(CallerSaid(said))) == ["What's the right email address? Or say no thanks."]
    assert e.phase is Phase.EMAIL
    assert says(e.handle(CallerSaid("it's anna at gmail dot com"))) == [
        READ_BACK.replace("a n n", "a n n a")
    ]
    assert booked(e, "yes please").attendee.email == "anna@gmail.com"


def test_a_plain_no_asks_what_to_change_and_the_email_is_asked_for() -> None:
    e = asked_email()
    read_back(e, AT_16)
    assert says(e.handle(CallerSaid("no"))) == ["Should I change the time, or the email address?"]
    assert e.phase is Phase.AMEND
    assert says(e.handle(CallerSaid("the email"))) == [
        "What's the right email address? Or say no thanks."
    ]
    e.handle(CallerSaid("anna at gmail dot com"))
    assert booked(e).attendee.email == "anna@gmail.com"


def test_a_plain_no_then_the_time_offers_the_others_with_the_address_still_to_read() -> None:
    e = asked_email()
    read_back(e, AT_10, AT_16)
    e.handle(CallerSaid("no"))
    offered = says(e.handle(CallerSaid("the time")))
    assert offered == ["No problem. I have 10 am and 4 pm on Tuesday, December 1st. Which works "
                       "best for you?"]
    assert says(e.handle(CallerSaid("four pm"))) == [
        READ_BACK.replace("2 pm", "4 pm")  # the address is still unconfirmed: read back
    ]


def test_at_the_question_what_to_change_a_new_address_is_taken() -> None:
    e = asked_email()
    read_back(e)
    e.handle(CallerSaid("no"))
    assert says(e.handle(CallerSaid("it's anna at gmail dot com"))) == [
        READ_BACK.replace("a n n", "a n n a")
    ]


def test_no_thanks_when_asked_again_books_without_an_address() -> None:
    e = asked_email()
    read_back(e)
    e.handle(CallerSaid("no, the email is wrong"))
    assert says(e.handle(CallerSaid("no thanks"))) == ["No problem.", PLAIN]
    assert booked(e).attendee.email == ""
    assert e.variables["user_email"] == ""


def test_an_address_not_understood_twice_is_dropped_never_kept() -> None:
    e = asked_email()
    read_back(e)
    e.handle(CallerSaid("no, the email is wrong"))
    assert says(e.handle(CallerSaid("purple elephants"))) == [
        "Sorry, could you say the email address again? Or say no thanks."
    ]
    assert says(e.handle(CallerSaid("banana"))) == ["I'll book it without an email address.",
                                                    PLAIN]
    assert booked(e).attendee.email == ""


def test_yes_with_the_same_address_again_is_a_yes() -> None:
    e = asked_email()
    read_back(e)
    assert booked(e, "yes, ann at gmail dot com").attendee.email == "ann@gmail.com"


# ---- read back at the question itself (``read_back: true``: used before any booking) ---------

VERIFIED = {**ASK_EMAIL, "read_back": True, "optional": False, "max_attempts": 3}


def verifying(**ask: Any) -> FlowEngine:
    book = {**BOOKING_NODES["book"], "confirm": True}
    e = engine({"ask": {**VERIFIED, **ask}, **BOOKING_NODES, "book": book}, variables=KNOWN)
    e.handle(CallStarted("CA1"))
    return e


def test_a_read_back_question_asks_before_going_on_and_the_booking_does_not_ask_again() -> None:
    e = verifying()
    assert says(e.handle(CallerSaid("ann at gmail dot com"))) == [
        f"That's {HEARD}. Is that right?"
    ]
    assert e.phase is Phase.VERIFY and e.node_id == "ask"
    [_, check] = e.handle(CallerSaid("yes that's right"))
    assert isinstance(check, CheckAvailability)
    assert says(e.handle(AvailabilityReady("book", AT_14, ()))) == [PLAIN]  # confirmed once
    assert booked(e).attendee.email == "ann@gmail.com"


def test_another_address_at_the_question_read_back_is_read_back_in_its_place() -> None:
    e = verifying()
    e.handle(CallerSaid("ann at gmail dot com"))
    assert says(e.handle(CallerSaid("no, it's anna at gmail dot com"))) == [
        "That's a n n a at gmail dot com. Is that right?"
    ]
    e.handle(CallerSaid("yes"))
    assert e.node_id == "book" and e.variables["user_email"] == "anna@gmail.com"


def test_no_at_the_question_read_back_clears_the_address_and_asks_again() -> None:
    e = verifying(reprompt="Sorry, your email again?")
    e.handle(CallerSaid("ann at gmail dot com"))
    assert says(e.handle(CallerSaid("no"))) == ["Sorry about that. Sorry, your email again?"]
    assert e.phase is Phase.ANSWER and e.variables["user_email"] == ""
    e.handle(CallerSaid("anna at gmail dot com"))
    e.handle(CallerSaid("yes"))
    assert e.variables["user_email"] == "anna@gmail.com" and e.node_id == "book"


def test_out_of_attempts_the_address_is_cleared_and_the_fallback_taken() -> None:
    e = verifying(max_attempts=2)  # fallback: book
    e.handle(CallerSaid("ann at gmail dot com"))
    assert says(e.handle(CallerSaid("purple elephants"))) == [f"That's {HEARD}. Is that right?"]
    e.handle(CallerSaid("purple elephants"))
    assert e.node_id == "book" and e.variables["user_email"] == ""
    assert says(e.handle(AvailabilityReady("book", AT_14, ()))) == [PLAIN]


def test_read_back_is_for_an_email_question_only() -> None:
    with pytest.raises(FlowInvalid, match="read_back is for the email extractor only"):
        engine({"ask": {**VERIFIED, "extractor": "name"}, **BOOKING_NODES})
