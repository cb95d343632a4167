"""An out-of-zone caller books in their own zone: the shipped demo flow, its engine, the booking
runner, the booking service and a local calendar on the store (SQLite and PostgreSQL), with the
clock set on the weeks around the 2026 clock changes. The business is in New York (9 am to
5 pm); what the caller hears and the booking's UTC instant are checked."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from slotline.agent.booking.runner import ServiceBookingRunner
from slotline.agent.booking.service import BookingService
from slotline.agent.call.responder import CallerSaid, CallStarted, Say
from slotline.agent.config import load_settings
from slotline.agent.flow import (
    CheckAvailability,
    Flow,
    FlowAction,
    FlowEngine,
    RunBooking,
    RunCancel,
    load_flow,
    parse_flow,
)
from slotline.agent.flow.messages import FlowEvent
from slotline.agent.notify import NotificationPolicy
from slotline.agent.notify.policy import template_values
from slotline.agent.store import Store, open_store

FLOW = Path(__file__).resolve().parents[2] / "config" / "flows" / "demo_booking.yaml"
NY = "America/New_York"
LONDON_LINE = "+442079460000"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        yield opened


class Call:
    """One call of the demo flow, its actions carried out against the booking service."""

    def __init__(
        self, store: Store, now: datetime, phone: str = "", flow: Flow | None = None
    ) -> None:
        def clock() -> datetime:
            return now

        self.store = store
        flow = flow or load_flow(FLOW, booking_actions=("demo",))
        service = BookingService.from_settings(load_settings(None, {}), store, clock=clock)
        self.engine = FlowEngine(flow, now=clock, timezone=NY)
        self.runner = ServiceBookingRunner(service, call_sid="CA-zone", caller_tz=NY, clock=clock,
                                           caller_phone=phone)

    async def start(self, parameters: Mapping[str, str]) -> list[str]:
        return await self.event(CallStarted("CA-zone", dict(parameters)))

    async def say(self, text: str) -> list[str]:
        return await self.event(CallerSaid(text))

    async def event(self, event: FlowEvent) -> list[str]:
        heard: list[str] = []
        queue: deque[FlowAction] = deque(self.engine.handle(event))
        while queue:
            action = queue.popleft()
            if isinstance(action, Say):
                heard.append(action.text)
            elif isinstance(action, CheckAvailability):
                queue.extend(self.engine.handle(await self.runner.check(action)))
            elif isinstance(action, RunBooking):
                queue.extend(self.engine.handle(await self.runner.run(action)))
            elif isinstance(action, RunCancel):
                queue.extend(self.engine.handle(await self.runner.cancel(action)))
        return heard

    async def to_the_time_question(self, parameters: Mapping[str, str], day: str) -> None:
        await self.start(parameters)
        await self.say("my name is jane doe")
        await self.say("no thanks")
        assert await self.say(day) == [
            "And what time suits you? A time like 2 pm, or just morning or afternoon."]


# (now in New York, the day said, what a London caller hears for "3 pm", the booking in UTC)
LONDON_WEEKS = [
    # both clocks on standard time: 5 hours apart
    ("2026-03-02T10:00", "wednesday", "Wednesday, March 4th at 3 pm your time, "
     "that's 10 am Eastern time", "2026-03-04T15:00"),
    # New York moved on 8 March, London on 29 March: 4 hours apart
    ("2026-03-09T10:00", "tomorrow", "tomorrow at 3 pm your time, that's 11 am Eastern time",
     "2026-03-10T15:00"),
    # both on summer time: 5 hours again
    ("2026-03-30T10:00", "tomorrow", "tomorrow at 3 pm your time, that's 10 am Eastern time",
     "2026-03-31T14:00"),
    # London moved back on 25 October, New York on 1 November: 4 hours apart
    ("2026-10-26T10:00", "tomorrow", "tomorrow at 3 pm your time, that's 11 am Eastern time",
     "2026-10-27T15:00"),
    ("2026-11-02T10:00", "tomorrow", "tomorrow at 3 pm your time, that's 10 am Eastern time",
     "2026-11-03T15:00"),
]


@pytest.mark.parametrize(("now", "day", "offer", "booked_utc"), LONDON_WEEKS)
async def test_a_london_number_hears_and_books_london_times(
    store: Store, now: str, day: str, offer: str, booked_utc: str
) -> None:
    call = Call(store, datetime.fromisoformat(now).replace(tzinfo=ZoneInfo(NY)), LONDON_LINE)
    await call.to_the_time_question({"user_phone": LONDON_LINE}, day)
    assert call.engine.variables["user_timezone"] == "Europe/London"
    assert await call.say("three pm") == [
        "Let me check the calendar.", f"I can book {offer}. Shall I go ahead?"]
    heard = await call.say("yes")
    assert heard[0].startswith("You're all set for ") and heard[0].endswith(" at 3 pm your time.")
    [booking] = await store.bookings.for_call("CA-zone")
    assert booking.attendee.phone == LONDON_LINE
    assert booking.start.astimezone(UTC) == datetime.fromisoformat(booked_utc).replace(tzinfo=UTC)
    assert booking.attendee.timezone == "Europe/London"


MONDAY_AFTER_US_CHANGE = datetime(2026, 3, 9, 10, tzinfo=ZoneInfo(NY))


async def test_saying_california_at_a_question_asks_it_again_and_reads_pacific(
    store: Store,
) -> None:
    call = Call(store, MONDAY_AFTER_US_CHANGE)
    await call.to_the_time_question({}, "tomorrow")  # no number: the flow's zone
    assert call.engine.variables["user_timezone"] == NY
    assert await call.say("oh I'm in California") == [
        "Got it, Pacific time.",
        "And what time suits you? A time like 2 pm, or just morning or afternoon."]
    assert await call.say("eleven a m") == [
        "Let me check the calendar.",
        "I can book tomorrow at 11 am your time, that's 2 pm Eastern time. Shall I go ahead?"]
    await call.say("yes")
    [booking] = await store.bookings.for_call("CA-zone")
    assert booking.start == datetime(2026, 3, 10, 18, tzinfo=UTC)  # 11 am PDT
    assert booking.attendee.timezone == "America/Los_Angeles"


async def test_a_time_and_a_zone_in_one_answer(store: Store) -> None:
    call = Call(store, MONDAY_AFTER_US_CHANGE)
    await call.to_the_time_question({}, "tomorrow")
    assert await call.say("ten a m central time") == [
        "Let me check the calendar.",
        "I can book tomorrow at 10 am your time, that's 11 am Eastern time. Shall I go ahead?"]


async def test_what_time_is_that_in_london_says_the_same_time_on_london_s_clock(
    store: Store,
) -> None:
    call = Call(store, MONDAY_AFTER_US_CHANGE)
    await call.to_the_time_question({}, "tomorrow")
    assert await call.say("three pm") == [
        "Let me check the calendar.", "I can book tomorrow at 3 pm. Shall I go ahead?"]
    # 3 pm EDT is 7 pm in London this week (4 hours: London moves on 29 March)
    assert await call.say("what time is that in London?") == [
        "I can book tomorrow at 7 pm your time, that's 3 pm Eastern time. Shall I go ahead?"]
    await call.say("yes")
    [booking] = await store.bookings.for_call("CA-zone")
    assert booking.start == datetime(2026, 3, 10, 19, tzinfo=UTC)
    assert booking.attendee.timezone == "Europe/London"


async def test_i_am_in_california_at_the_confirmation_searches_again_in_pacific(
    store: Store,
) -> None:
    call = Call(store, MONDAY_AFTER_US_CHANGE)
    await call.to_the_time_question({}, "tomorrow")
    await call.say("three pm")
    # 3 pm Pacific is 6 pm Eastern, after hours: the offers are Pacific times
    assert await call.say("wait, I'm in California") == [
        "Got it, Pacific time.",
        "Sorry, that time isn't available. I have 12:30 pm, 1 pm and 1:30 pm tomorrow, your "
        "time. Which works best for you?"]
    assert await call.say("the first one") == [
        "I can book tomorrow at 12:30 pm your time, that's 3:30 pm Eastern time. "
        "Shall I go ahead?"]
    assert (await call.say("yes"))[0] == "You're all set for tomorrow at 12:30 pm your time."
    [booking] = await store.bookings.for_call("CA-zone")
    assert booking.start == datetime(2026, 3, 10, 19, 30, tzinfo=UTC)


async def test_a_campaign_contact_s_zone_column(store: Store) -> None:
    call = Call(store, MONDAY_AFTER_US_CHANGE, LONDON_LINE)
    await call.to_the_time_question({"user_timezone": "Central", "user_phone": LONDON_LINE},
                                    "tomorrow")
    assert call.engine.variables["user_timezone"] == "America/Chicago"  # the column wins
    assert (await call.say("nine a m"))[1] == (
        "I can book tomorrow at 9 am your time, that's 10 am Eastern time. Shall I go ahead?")


@pytest.mark.parametrize(("now", "when"), [
    ("2026-03-09T10:00", "tomorrow at 3 pm GMT"),  # New York on summer time, London not yet
    ("2026-03-30T10:00", "tomorrow at 3 pm BST"),
])
async def test_the_confirmation_speaks_the_attendee_s_zone(
    store: Store, now: str, when: str
) -> None:
    at = datetime.fromisoformat(now).replace(tzinfo=ZoneInfo(NY))
    call = Call(store, at, LONDON_LINE)
    await call.to_the_time_question({"user_phone": LONDON_LINE}, "tomorrow")
    await call.say("three pm")
    await call.say("yes")
    [booking] = await store.bookings.for_call("CA-zone")
    # the business's policy is in New York; the confirmation follows the attendee's zone
    values = template_values(booking, NotificationPolicy(timezone=NY), now=at)
    assert values["when"] == when


async def test_a_cancellation_is_said_on_the_clock_it_was_booked_on(store: Store) -> None:
    booking_call = Call(store, MONDAY_AFTER_US_CHANGE, LONDON_LINE)
    await booking_call.to_the_time_question({"user_phone": LONDON_LINE}, "tomorrow")
    await booking_call.say("three pm")
    await booking_call.say("yes")
    # a second call, from a number that gives no zone: the business's clock for everything
    # else, the booking's own when it is read back
    cancelling = Call(store, MONDAY_AFTER_US_CHANGE)
    await cancelling.start({})
    await cancelling.say("i'd like to cancel my appointment")
    london_line = "plus four four two zero seven nine four six zero zero zero zero"
    assert await cancelling.say(london_line) == [
        "One moment while I find your appointment.",
        "Your appointment on tomorrow at 3 pm is cancelled. Goodbye!"]


ASKS_THE_ZONE = """\
name: asks_the_zone
timezone: America/New_York
start: ask_zone
nodes:
  ask_zone: {type: conversation, say: "Which time zone are you in?", collect: user_timezone,
             extractor: timezone, next: ask_date}
  ask_date: {type: conversation, say: "What day?", collect: preferred_date, extractor: date,
             next: ask_time}
  ask_time: {type: conversation, say: "What time?", collect: preferred_time, extractor: time,
             next: book}
  book: {type: booking, action: demo, confirm: true, success: bye, failure: bye}
  bye: {type: end_call, say: "Goodbye!"}
"""


async def test_a_flow_may_ask_for_the_zone_with_the_timezone_extractor(store: Store) -> None:
    flow = parse_flow(yaml.safe_load(ASKS_THE_ZONE), booking_actions=("demo",))
    call = Call(store, MONDAY_AFTER_US_CHANGE, flow=flow)
    assert await call.start({}) == ["Which time zone are you in?"]
    assert await call.say("central time") == ["What day?"]  # the node's answer, no "got it"
    assert call.engine.variables["user_timezone"] == "America/Chicago"
    await call.say("tomorrow")
    assert await call.say("nine a m") == [
        "I can book tomorrow at 9 am your time, that's 10 am Eastern time. Shall I go ahead?"]
