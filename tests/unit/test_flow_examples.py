"""Every example flow in config/flows/, driven by text through FlowResponder to the end.

The booking side is a real in-memory calendar (office hours, 30-minute slots, proposals and
speech from ``agent.booking``) behind the ``BookingRunner`` protocol; webhooks and call control
are small recording implementations of their protocols.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import pytest

from slotline.agent.booking import BookingRules, Interval, Slot, TimeOfDay, available_slots, propose
from slotline.agent.booking.speech import speak_clock, speak_date
from slotline.agent.call.responder import (
    Action,
    CallerSaid,
    CallEvent,
    CallStarted,
    Hangup,
    Listen,
    Say,
)
from slotline.agent.flow import (
    AvailabilityReady,
    BookingFinished,
    CallWebhook,
    CancelFinished,
    CheckAvailability,
    Flow,
    FlowEngine,
    FlowResponder,
    Lookup,
    Preferences,
    RunBooking,
    RunCancel,
    RunReschedule,
    SendSms,
    SlotOffer,
    Transfer,
    WebhookFinished,
    load_flow,
    validate,
)
from slotline.agent.flow.validate import read_flow_file

FLOWS = Path(__file__).resolve().parents[2] / "config" / "flows"
ACTIONS = {
    "demo_booking": {"demo"},
    "sales_demo": {"sales"},
    "support_callback": {"support_callback"},
    "consultation": {"consultation"},
    "multi_service": {"haircut", "coloring", "styling"},
    "reschedule_cancel": {"demo"},  # offered when no booking is found
    "lead_qualify": {"demo"},  # outbound; driven in test_flow_outbound_examples.py
    "appointment_confirm": set(),
}
NY = "America/New_York"
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo(NY))  # a Tuesday


@dataclass
class Booking:
    id: str
    action: str
    slot: Slot
    name: str
    email: str
    phone: str
    fields: Mapping[str, str] = field(default_factory=dict)


class CalendarRunner:
    """The BookingRunner protocol over one in-memory calendar per booking action."""

    def __init__(self, *, tz: str = NY, now: datetime = NOW, busy: tuple[Interval, ...] = ()):
        self.tz = tz
        self.zone = ZoneInfo(tz)
        self.now = now
        self.rules = BookingRules(timezone=tz)
        self.busy = list(busy)
        self.bookings: dict[str, Booking] = {}
        self.requests: list[object] = []
        self._ids = itertools.count(1)

    def book_existing(self, action: str, start: datetime, phone: str) -> Booking:
        booking = Booking(f"B{next(self._ids)}", action, Slot(start, start + timedelta(minutes=30)),
                          "Jane Doe", "", phone)
        self.bookings[booking.id] = booking
        return booking

    def _free(self, ignore: str = "") -> list[Slot]:
        taken = [
            Interval(b.slot.start, b.slot.end) for b in self.bookings.values() if b.id != ignore
        ]
        return available_slots(
            self.rules, window_start=self.now, window_end=self.now + timedelta(days=21),
            now=self.now, busy=[*self.busy, *taken],
        )

    def offer(self, slot: Slot) -> SlotOffer:
        local = slot.start.astimezone(self.zone)
        return SlotOffer(local.isoformat(), speak_date(local.date(), self.now.date()),
                         speak_clock(local))

    def _wanted(self, prefs: Preferences, free: list[Slot]) -> Slot | None:
        if not prefs.date or not prefs.time or "-" in prefs.time:
            return None
        start = datetime.combine(date.fromisoformat(prefs.date), time.fromisoformat(prefs.time),
                                 self.zone)
        return next((slot for slot in free if slot.start == start), None)

    def _alternatives(self, prefs: Preferences, free: list[Slot]) -> tuple[SlotOffer, ...]:
        picks = propose(
            free,
            preferred_date=date.fromisoformat(prefs.date) if prefs.date else None,
            preferred_time=time.fromisoformat(prefs.time) if prefs.time and "-" not in prefs.time
            else None,
            time_of_day=cast(TimeOfDay, prefs.time_of_day) if prefs.time_of_day else None,
            tz=self.tz,
        )
        return tuple(self.offer(slot) for slot in picks)

    def _find(self, lookup: Lookup) -> Booking | None:
        for booking in self.bookings.values():
            if lookup.booking_reference and booking.id.lower() == lookup.booking_reference.lower():
                return booking
            if lookup.phone and booking.phone == lookup.phone:
                return booking
        return None

    def _pick(self, free: list[Slot], prefs: Preferences, slot_start: str) -> Slot | None:
        if slot_start:
            start = datetime.fromisoformat(slot_start)
            return next((slot for slot in free if slot.start == start), None)
        return self._wanted(prefs, free)

    async def check(self, request: CheckAvailability) -> AvailabilityReady:
        self.requests.append(request)
        ignore = ""
        if request.lookup is not None:
            found = self._find(request.lookup)
            if found is None:
                return AvailabilityReady(request.node_id, None, reason="not_found")
            ignore = found.id
        free = self._free(ignore)
        wanted = self._wanted(request.preferences, free)
        alternatives = self._alternatives(request.preferences, free)
        if wanted is not None:
            alternatives = tuple(a for a in alternatives if a != self.offer(wanted))
        offer = None if wanted is None else self.offer(wanted)
        return AvailabilityReady(request.node_id, offer, alternatives)

    async def run(self, request: RunBooking) -> BookingFinished:
        self.requests.append(request)
        free = self._free()
        slot = self._pick(free, request.preferences, request.slot_start)
        if slot is None:
            reason = "taken" if request.slot_start else "unavailable"
            return BookingFinished(request.node_id, False, reason=reason,
                                   alternatives=self._alternatives(request.preferences, free))
        person = request.attendee
        booking = Booking(f"B{next(self._ids)}", request.action, slot, person.name, person.email,
                          person.phone, dict(request.fields))
        self.bookings[booking.id] = booking
        return BookingFinished(request.node_id, True, self.offer(slot), booking.id)

    async def reschedule(self, request: RunReschedule) -> BookingFinished:
        self.requests.append(request)
        found = self._find(request.lookup)
        if found is None:
            return BookingFinished(request.node_id, False, reason="not_found")
        free = self._free(ignore=found.id)
        slot = self._pick(free, request.preferences, request.slot_start)
        if slot is None:
            return BookingFinished(request.node_id, False, reason="unavailable",
                                   alternatives=self._alternatives(request.preferences, free))
        found.slot = slot
        return BookingFinished(request.node_id, True, self.offer(slot), found.id)

    async def cancel(self, request: RunCancel) -> CancelFinished:
        self.requests.append(request)
        found = self._find(request.lookup)
        if found is None:
            return CancelFinished(request.node_id, False, reason="not_found")
        del self.bookings[found.id]
        return CancelFinished(request.node_id, True, self.offer(found.slot), found.id)


class Webhooks:
    """The WebhookRunner protocol: canned answers per custom action, every call recorded."""

    def __init__(self, answers: Mapping[str, Mapping[str, str] | None] | None = None) -> None:
        self.answers = dict(answers or {})
        self.calls: list[CallWebhook] = []

    async def call(self, request: CallWebhook) -> WebhookFinished:
        self.calls.append(request)
        answer = self.answers.get(request.webhook)
        if answer is None:
            return WebhookFinished(request.node_id, False, reason="declined")
        return WebhookFinished(request.node_id, True, answer)


def found(reference: str) -> Webhooks:
    """The built-in ``find_booking`` answering one booking (as ``CallerBookings`` would for
    the store's booking ``reference`` on Monday, November 30th at 9 am)."""
    return Webhooks({"find_booking": {
        "found_count": "1", "found_date": "Monday, November 30th", "found_time": "9 am",
        "found_list": "Monday, November 30th at 9 am", "booking_reference": reference,
    }})


class Phone:
    """The CallControl protocol, recording what it was asked to do."""

    def __init__(self) -> None:
        self.sms: list[SendSms] = []
        self.transfers: list[Transfer] = []

    async def send_sms(self, request: SendSms) -> None:
        self.sms.append(request)

    async def transfer(self, request: Transfer) -> None:
        self.transfers.append(request)


class Call:
    """One call through FlowResponder, by text."""

    def __init__(self, flow: Flow, calendar: CalendarRunner | None = None,
                 webhooks: Webhooks | None = None) -> None:
        self.calendar = calendar or CalendarRunner()
        self.webhooks = webhooks or Webhooks()
        self.phone = Phone()
        engine = FlowEngine(flow, now=lambda: NOW)
        self.responder = FlowResponder(engine, booking=self.calendar, webhooks=self.webhooks,
                                       control=self.phone)
        self.log: list[Action] = []

    async def send(self, event: CallEvent) -> str:
        actions = [action async for action in self.responder.handle(event)]
        self.log.extend(actions)
        return " ".join(a.text for a in actions if isinstance(a, Say))

    async def start(self, **parameters: str) -> str:
        return await self.send(CallStarted("CA" + "0" * 32, parameters))

    async def say(self, text: str) -> str:
        return await self.send(CallerSaid(text))

    @property
    def hung_up(self) -> bool:
        return any(isinstance(a, Hangup) for a in self.log)

    @property
    def variables(self) -> Mapping[str, str]:
        return self.responder.variables


def example(name: str) -> Flow:
    return load_flow(FLOWS / f"{name}.yaml", booking_actions=ACTIONS[name])


def test_every_example_flow_is_tested_and_valid() -> None:
    names = sorted(path.stem for path in FLOWS.glob("*.yaml"))
    assert names == sorted(ACTIONS)
    for name in names:
        document = read_flow_file(FLOWS / f"{name}.yaml")
        assert validate(document, booking_actions=ACTIONS[name], source=name) == []


async def test_demo_booking_with_proposals_and_confirmation() -> None:
    call = Call(example("demo_booking"))
    greeting = await call.start()
    assert "This is Ava" in greeting and greeting.endswith("May I have your name?")
    asked = await call.say("my name is john smith")
    assert "John Smith" in asked and "email address" in asked
    assert "what day" in (await call.say("john dot smith at example dot com")).lower()
    assert "what time" in (await call.say("next tuesday")).lower()
    offered = await call.say("in the afternoon please")
    assert offered.startswith("Let me check the calendar. I have noon, 2 pm and 4:30 pm on "
                              "Tuesday, December 1st.")
    assert call.variables["time_preference"] == "afternoon"
    confirm = await call.say("the second one")
    assert confirm == (  # the address heard is read back with the slot, before it is used
        "I can book Tuesday, December 1st at 2 pm, and send the details to "
        "j o h n dot s m i t h at example dot com. Shall I go ahead?"
    )
    assert call.calendar.bookings == {}  # nothing is booked before the caller says yes
    booked = await call.say("yes")
    assert booked.startswith("You're all set for Tuesday, December 1st at 2 pm.")
    [booking] = call.calendar.bookings.values()
    assert booking.slot.start == datetime(2026, 12, 1, 14, 0, tzinfo=ZoneInfo(NY))
    assert booking.name == "John Smith" and booking.fields["preferred_date"] == "2026-12-01"
    # the address was asked before booking, so the booking carries it
    assert booking.email == "john.smith@example.com"
    assert "Thank you, John Smith." in booked and call.hung_up
    assert call.responder.engine.path == (
        "greet", "ask_name", "ask_email", "ask_date", "ask_time", "book", "booked", "goodbye"
    )


async def test_demo_booking_exact_time_taken_offers_the_nearest() -> None:
    three_pm = datetime(2026, 12, 1, 15, 0, tzinfo=ZoneInfo(NY))
    calendar = CalendarRunner(busy=(Interval(three_pm, three_pm + timedelta(hours=1)),))
    call = Call(example("demo_booking"), calendar)
    await call.start()
    await call.say("it's jane doe")
    assert "What day" in await call.say("no thanks")  # no e-mail address: the question skipped
    await call.say("december first")
    offered = await call.say("three p m")
    assert "Sorry, that time isn't available. I have 2 pm, 2:30 pm and 4 pm on Tuesday" in offered
    assert "Shall I go ahead?" in await call.say("four p m")
    bye = await call.say("yes that works")
    assert "all set for Tuesday, December 1st at 4 pm" in bye
    assert call.hung_up and "Jane Doe" in bye and "user_email" not in call.variables
    [booking] = call.calendar.bookings.values()
    assert booking.name == "Jane Doe" and booking.email == ""


async def test_demo_booking_free_exact_time_is_confirmed_directly() -> None:
    call = Call(example("demo_booking"))
    await call.start()
    await call.say("my name is john smith")
    await call.say("it's j smith at example dot org")
    await call.say("next tuesday")
    assert await call.say("ten thirty in the morning") == (
        "Let me check the calendar. I can book Tuesday, December 1st at 10:30 am, and send "
        "the details to j s m i t h at example dot org. Shall I go ahead?"
    )
    assert "all set" in await call.say("yes")


async def test_demo_booking_cancel_intent_from_anywhere() -> None:
    calendar = CalendarRunner()
    thursday_9am = datetime(2026, 11, 26, 9, 0, tzinfo=ZoneInfo(NY))
    calendar.book_existing("demo", thursday_9am, "+15551234567")
    call = Call(example("demo_booking"), calendar)
    await call.start()
    await call.say("my name is john smith")
    asked = await call.say("actually i want to cancel my appointment")
    assert "phone number" in asked
    done = await call.say("five five five one two three four five six seven")
    assert "Thursday, November 26th at 9 am is cancelled" in done and call.hung_up
    assert calendar.bookings == {}


async def test_sales_demo_team_books_and_solo_gets_a_trial_text() -> None:
    crm = Webhooks({"crm_lead": {"lead_id": "L-17"}})
    call = Call(example("sales_demo"), webhooks=crm)
    await call.start(user_phone="+15550001111")
    await call.say("this is mary johnson")
    await call.say("acme dental")
    await call.say("a small team")
    assert "What email" in await call.say("yes we do")
    assert crm.calls[0].variables == {"company": "acme dental"}
    assert call.variables["lead_id"] == "L-17"
    assert "Which day" in await call.say("mary at acme dental dot com")
    await call.say("next tuesday")
    # the booking node does not confirm, but the address heard is read back before it is used
    asked = await call.say("three p m")
    assert asked.endswith("I can book Tuesday, December 1st at 3 pm, and send the details to "
                          "m a r y at a c m e d e n t a l dot com. Shall I go ahead?")
    assert call.calendar.bookings == {}
    done = await call.say("yes")
    assert "your demo is on Tuesday, December 1st at 3 pm" in done and call.hung_up
    [booking] = call.calendar.bookings.values()
    assert booking.action == "sales" and booking.fields["company"] == "acme dental"
    assert (booking.name, booking.email) == ("Mary Johnson", "mary@acmedental.com")

    solo = Call(example("sales_demo"))  # the CRM is down: the caller still goes on
    await solo.start(user_phone="+15550001111")
    await solo.say("my name is paul allen")
    await solo.say("freelance")
    await solo.say("just me")
    bye = await solo.say("no")
    assert "free trial" in bye and solo.hung_up and solo.calendar.bookings == {}
    assert solo.phone.sms[0].to == "+15550001111" and "trial" in solo.phone.sms[0].text


async def test_sales_demo_not_interested_intent() -> None:
    call = Call(example("sales_demo"))
    await call.start()
    bye = await call.say("sorry i'm not interested")
    assert "No problem at all" in bye and call.hung_up


async def test_support_callback_books_the_pick_without_confirming_and_texts_it() -> None:
    call = Call(example("support_callback"))
    await call.start()
    await call.say("my name is david lee")
    await call.say("my router keeps dropping the connection")
    await call.say("five five five one two three four five six seven")
    offered = await call.say("morning")
    assert offered == "I have 10 am, 10:30 am and 11:30 am today. Which works best for you?"
    done = await call.say("ten thirty")
    assert "A technician will call you today at 10:30 am" in done and call.hung_up
    [sms] = call.phone.sms
    assert sms.to == "+15551234567" and "today at 10:30 am" in sms.text
    assert call.variables["issue"] == "my router keeps dropping the connection"


async def test_support_callback_urgent_goes_to_the_engineer_on_call() -> None:
    call = Call(example("support_callback"))
    await call.start()
    said = await call.say("it's urgent, the whole office is down")
    assert "engineer on call" in said
    assert call.phone.transfers == [Transfer("+15005550007")]


async def test_consultation_new_client_pays_deposit_before_booking() -> None:
    payments = Webhooks({"payment_deposit": {"payment_id": "pay_1"}})
    calendar = CalendarRunner(tz="America/Chicago")
    call = Call(example("consultation"), calendar, payments)
    await call.start()
    await call.say("my name is susan clark")
    await call.say("estate planning")
    await call.say("no")
    # read back before the deposit request goes to it (and not read again at the booking)
    assert await call.say("susan at example dot com") == (
        "That's s u s a n at example dot com. Is that right?"
    )
    assert "Which day" in await call.say("yes")
    await call.say("december first")
    asked = await call.say("two p m")
    assert "fifty dollar deposit" in asked and "I can book Tuesday, December 1st at 2 pm." in asked
    assert payments.calls[0].variables == {
        "user_name": "Susan Clark", "user_email": "susan@example.com", "topic": "estate"
    }
    done = await call.say("yes")
    assert "booked for Tuesday, December 1st at 2 pm" in done and call.hung_up
    [booking] = calendar.bookings.values()
    assert booking.fields["payment_id"] == "pay_1" and booking.email == "susan@example.com"


async def test_consultation_failed_deposit_books_nothing() -> None:
    call = Call(example("consultation"), CalendarRunner(tz="America/Chicago"), Webhooks())
    await call.start()
    for answer in ("my name is susan clark", "taxes", "no", "susan at example dot com", "yes",
                   "december first"):
        await call.say(answer)
    said = await call.say("in the morning")
    assert "deposit didn't go through" in said and call.hung_up
    assert call.calendar.bookings == {}


@pytest.mark.parametrize(("said", "action"), [
    ("a haircut please", "haircut"), ("colouring", "coloring"), ("a blow dry", "styling"),
])
async def test_multi_service_books_on_the_service_calendar(said: str, action: str) -> None:
    call = Call(example("multi_service"), CalendarRunner(tz="America/Los_Angeles"))
    await call.start()
    await call.say(said)
    await call.say("it's jane doe")
    assert "Which day" in await call.say("no thanks")
    await call.say("next tuesday")
    offered = await call.say("morning")
    assert offered.startswith("I have 9 am, 10 am and 11:30 am on Tuesday, December 1st.")
    assert "Shall I go ahead?" in await call.say("ten")
    done = await call.say("yes")
    assert f"Your {action} is booked for Tuesday, December 1st at 10 am" in done
    [booking] = call.calendar.bookings.values()
    assert booking.action == action


async def test_multi_service_unclear_service_reprompts_then_falls_back() -> None:
    call = Call(example("multi_service"))
    await call.start()
    assert (await call.say("um")) .startswith("Sorry, was that a haircut")
    assert "call us back" in await call.say("what do you have") and call.hung_up


async def test_reschedule_by_reference() -> None:
    calendar = CalendarRunner()
    existing = calendar.book_existing("demo", datetime(2026, 11, 30, 9, 0, tzinfo=ZoneInfo(NY)),
                                      "+15559998888")
    call = Call(example("reschedule_cancel"), calendar, found(existing.id))
    await call.start()
    await call.say("i need to move it")
    await call.say("yes i have the reference")
    assert "Monday, November 30th at 9 am. Is that the one?" in await call.say(existing.id)
    await call.say("yes")
    await call.say("december first")
    assert "I can book Tuesday, December 1st at 3 pm" in await call.say("three p m")
    done = await call.say("yes please")
    assert "now on Tuesday, December 1st at 3 pm" in done and call.hung_up
    assert calendar.bookings[existing.id].slot.start == datetime(2026, 12, 1, 15, 0,
                                                                 tzinfo=ZoneInfo(NY))
    [move] = [r for r in calendar.requests if isinstance(r, RunReschedule)]
    assert move.lookup == Lookup(booking_reference=existing.id, phone="")


async def test_cancel_by_phone_number_after_confirmation() -> None:
    calendar = CalendarRunner()
    existing = calendar.book_existing(
        "demo", datetime(2026, 11, 30, 9, 0, tzinfo=ZoneInfo(NY)), "+15551234567")
    call = Call(example("reschedule_cancel"), calendar, found(existing.id))
    await call.start()
    await call.say("cancel")
    await call.say("no, use my phone number")
    assert "Is that the one?" in await call.say("five five five one two three four five six seven")
    assert "shall I cancel" in await call.say("yes")
    done = await call.say("yes")
    assert "Monday, November 30th at 9 am is cancelled" in done and calendar.bookings == {}


async def test_reschedule_unknown_reference_is_reported() -> None:
    nothing = {"found_count": "0", "found_date": "", "found_time": "", "found_list": "",
               "booking_reference": ""}
    call = Call(example("reschedule_cancel"), webhooks=Webhooks({"find_booking": nothing}))
    await call.start()
    await call.say("reschedule")
    await call.say("the reference")
    assert "book a new one?" in await call.say("zz nine")
    said = await call.say("no thanks")
    assert "couldn't find that appointment" in said and call.hung_up
    [find] = call.webhooks.calls
    assert find.webhook == "find_booking" and find.variables == {"booking_reference": "zz nine"}


def test_listen_hints_follow_the_question() -> None:
    flow = example("demo_booking")
    engine = FlowEngine(flow, now=lambda: NOW)
    actions = engine.handle(CallStarted("CA1"))
    listen = actions[-1]
    assert isinstance(listen, Listen) and "my name is john smith" in listen.hints.phrases
    assert "cancel my appointment" in listen.hints.phrases  # intents are listened for too
    engine.handle(CallerSaid("my name is john smith"))
    engine.handle(CallerSaid("no thanks"))  # no e-mail address
    listen = engine.handle(CallerSaid("next tuesday"))[-1]
    assert isinstance(listen, Listen) and listen.hints.grammar  # the time grammar
    assert "grammar time;" in listen.hints.grammar and "morning" in listen.hints.phrases
