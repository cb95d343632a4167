"""The outbound example flows (lead_qualify, appointment_confirm), the callee in the caller's
seat: contact columns arrive as call parameters, answers by text — the very words the
simulated callee's recordings say (agent/assets/caller/: yes, day_tuesday, time_3pm, no)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from slotline.agent.booking import Interval
from slotline.agent.call.responder import CallerSaid, CallStarted, Hangup, Listen, Say
from slotline.agent.config import load_settings
from slotline.agent.flow import (
    AvailabilityReady,
    BookingFinished,
    CheckAvailability,
    FlowEngine,
    Lookup,
    Preferences,
    RunBooking,
    RunReschedule,
    SlotOffer,
    load_flow,
    validate,
)
from slotline.agent.flow.messages import OptOut
from slotline.agent.flow.state import DO_NOT_CALL, OPT_OUT_GOODBYE
from slotline.agent.flow.validate import read_flow_file
from tests.unit.test_flow_examples import FLOWS, NOW, NY, CalendarRunner, Call, example

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples.yaml"
PHONE = "+15551234567"
LEAD = {"user_name": "Jane", "company": "Acme Dental", "user_phone": PHONE}
PATIENT = {"user_name": "Maria", "appointment_date": "Tuesday, December 8th",
           "appointment_time": "10 am", "user_phone": PHONE}
# what the recordings say, in order: yes.wav, day_tuesday.wav, time_3pm.wav, yes.wav
BOOKING_ANSWERS = ("yes", "next tuesday", "three p m", "yes")


@pytest.mark.parametrize("name", ["lead_qualify", "appointment_confirm"])
def test_loads_and_validates_against_the_examples_config(name: str) -> None:
    actions = set(load_settings(EXAMPLES, {}).booking_actions)
    document = read_flow_file(FLOWS / f"{name}.yaml")
    assert validate(document, booking_actions=actions, source=name) == []
    assert load_flow(FLOWS / f"{name}.yaml", booking_actions=actions).name == name


# ---- lead_qualify ------------------------------------------------------------------------------


def test_lead_qualify_books_through_the_engine() -> None:
    engine = FlowEngine(load_flow(FLOWS / "lead_qualify.yaml"), now=lambda: NOW)
    greeting = engine.handle(CallStarted("CA1", LEAD))
    assert [a.text for a in greeting if isinstance(a, Say)] == [
        "Hi Jane, this is Ava from Slotline, calling about the demo you asked for.",
        "Would you like to book a free thirty-minute demo?",
    ]
    yes, tuesday, three_pm, confirm = BOOKING_ANSWERS
    assert engine.handle(CallerSaid(yes))[0] == Say("What day suits you?")
    asked_time = engine.handle(CallerSaid(tuesday))[0]
    assert isinstance(asked_time, Say) and asked_time.text.startswith("And what time suits")
    *_, check = engine.handle(CallerSaid(three_pm))
    assert check == CheckAvailability("book", "demo", Preferences("2026-12-01", "15:00"))
    at_3 = SlotOffer("2026-12-01T15:00:00-05:00", "Tuesday, December 1st", "3 pm")
    asked = engine.handle(AvailabilityReady("book", at_3))
    assert asked[0] == Say("I can book Tuesday, December 1st at 3 pm. Shall I go ahead?")
    [book] = engine.handle(CallerSaid(confirm))
    assert isinstance(book, RunBooking) and book.slot_start == at_3.start
    assert book.attendee.name == "Jane" and book.attendee.phone == PHONE
    assert book.fields["company"] == "Acme Dental" and book.fields["interested"] == "yes"
    done = engine.handle(BookingFinished("book", True, at_3, "B1"))
    assert done == [Say("You're all set for Tuesday, December 1st at 3 pm."),
                    Say("Thanks, Jane. Goodbye."), Hangup("completed")]


async def test_lead_qualify_books_on_a_calendar() -> None:
    call = Call(example("lead_qualify"))
    await call.start(**LEAD)
    replies = [await call.say(answer) for answer in BOOKING_ANSWERS]
    assert replies[-1] == ("You're all set for Tuesday, December 1st at 3 pm. "
                           "Thanks, Jane. Goodbye.")
    [booking] = call.calendar.bookings.values()
    assert booking.action == "demo" and booking.phone == PHONE
    assert booking.slot.start == datetime(2026, 12, 1, 15, 0, tzinfo=ZoneInfo(NY))
    assert call.hung_up and call.responder.engine.path[-2:] == ("booked", "goodbye")


async def test_lead_qualify_decline_ends_politely() -> None:
    call = Call(example("lead_qualify"))
    assert (await call.start()).startswith("Hi there, this is Ava")  # no name in the contacts
    bye = await call.say("no thanks")
    assert bye == "No problem at all. Thanks for your time, and have a good day. Goodbye."
    assert call.hung_up and Hangup("declined") in call.log
    assert call.variables["interested"] == "no" and call.calendar.requests == []


async def test_lead_qualify_no_free_time_ends_politely() -> None:
    fully_booked = CalendarRunner(busy=(Interval(NOW, NOW + timedelta(days=60)),))
    call = Call(example("lead_qualify"), fully_booked)
    await call.start(**LEAD)
    await call.say("yes")
    await call.say("next tuesday")
    said = await call.say("three p m")
    assert "Someone from our team will follow up" in said and call.hung_up
    assert call.responder.engine.node_id == "no_time"


# ---- appointment_confirm -----------------------------------------------------------------------


async def test_appointment_confirm_kept() -> None:
    call = Call(example("appointment_confirm"))
    greeting = await call.start(**PATIENT)
    assert greeting == ("Hi Maria, this is Sam from Riverside Clinic, calling about your "
                        "appointment on Tuesday, December 8th at 10 am. Can you still make it?")
    assert await call.say("yes") == "Great, we'll see you then. Goodbye."
    assert call.hung_up and call.variables["keeping"] == "yes"
    assert call.calendar.requests == []


async def test_appointment_confirm_without_the_details_does_not_make_them_up() -> None:
    call = Call(example("appointment_confirm"))
    greeting = await call.start(user_name="Maria")
    assert greeting == ("Hi Maria, this is Sam from Riverside Clinic, calling about your "
                        "upcoming appointment. Can you still make it?")


async def test_appointment_confirm_moves_the_booking_found_by_phone() -> None:
    calendar = CalendarRunner()
    existing = calendar.book_existing("demo", datetime(2026, 11, 30, 9, 0, tzinfo=ZoneInfo(NY)),
                                      PHONE)
    call = Call(example("appointment_confirm"), calendar)
    await call.start(**PATIENT)
    assert await call.say("no") == "Would you like to move it to another day?"
    assert await call.say("yes") == "Which day would suit you better?"
    await call.say("next tuesday")
    asked = await call.say("three p m")
    assert asked == ("Let me check the calendar. I can book Tuesday, December 1st at 3 pm. "
                     "Shall I go ahead?")
    [check] = calendar.requests
    assert isinstance(check, CheckAvailability) and check.lookup == Lookup(phone=PHONE)
    done = await call.say("yes")
    assert done == "All set. Your appointment is now on Tuesday, December 1st at 3 pm. Goodbye."
    [move] = [r for r in calendar.requests if isinstance(r, RunReschedule)]
    assert move.lookup == Lookup(phone=PHONE)
    assert calendar.bookings[existing.id].slot.start == datetime(2026, 12, 1, 15, 0,
                                                                 tzinfo=ZoneInfo(NY))


async def test_appointment_confirm_booking_not_found_hands_over_to_the_front_desk() -> None:
    call = Call(example("appointment_confirm"))  # nothing booked under this number
    await call.start(**PATIENT)
    for answer in ("no", "yes", "next tuesday"):
        await call.say(answer)
    said = await call.say("three p m")
    assert "The front desk will call you back" in said and call.hung_up
    assert call.variables["booking_error"] == "not_found"


async def test_appointment_confirm_cancels_when_not_moving() -> None:
    calendar = CalendarRunner()
    calendar.book_existing("demo", datetime(2026, 11, 30, 9, 0, tzinfo=ZoneInfo(NY)), PHONE)
    call = Call(example("appointment_confirm"), calendar)
    await call.start(**PATIENT)
    await call.say("no")
    assert await call.say("no thanks") == "Shall I cancel it, then?"
    done = await call.say("yes")
    assert "Your appointment is cancelled" in done and calendar.bookings == {}


async def test_appointment_confirm_not_cancelling_leaves_a_note() -> None:
    call = Call(example("appointment_confirm"))
    await call.start(**PATIENT)
    for answer in ("no", "no"):
        await call.say(answer)
    assert "I'll let the front desk know" in await call.say("no")
    assert call.calendar.requests == []


# ---- opt-out in both ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "parameters", "before"), [
    ("lead_qualify", LEAD, ()),
    ("lead_qualify", LEAD, ("yes", "next tuesday")),
    ("appointment_confirm", PATIENT, ()),
    ("appointment_confirm", PATIENT, ("no", "yes")),
])
def test_opt_out_fires_in_both(name: str, parameters: dict[str, str],
                               before: tuple[str, ...]) -> None:
    engine = FlowEngine(load_flow(FLOWS / f"{name}.yaml"), now=lambda: NOW)
    listen = engine.handle(CallStarted("CA1", parameters))[-1]
    assert isinstance(listen, Listen) and "take me off your list" in listen.hints.phrases
    for said in before:
        engine.handle(CallerSaid(said))
    actions = engine.handle(CallerSaid("please take me off your list"))
    assert actions == [OptOut(), Say(OPT_OUT_GOODBYE), Hangup(DO_NOT_CALL)]
    assert engine.variables["opted_out"] == "yes"


def test_the_cancel_intent_does_not_swallow_a_do_not_call_request() -> None:
    engine = FlowEngine(load_flow(FLOWS / "appointment_confirm.yaml"), now=lambda: NOW)
    engine.handle(CallStarted("CA1", PATIENT))
    actions = engine.handle(CallerSaid("cancel my appointment and stop calling me"))
    assert actions[0] == OptOut() and engine.ended
