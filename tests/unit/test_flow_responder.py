"""FlowResponder: runners called and fed back, barge-in that never loses a booking, failing
and silent services, SMS and transfer."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from slotline.agent.call.responder import (
    Action,
    CallerSaid,
    CallEvent,
    CallStarted,
    Hangup,
    Listen,
    ReplyInterrupted,
    ReportsQuestion,
    Responder,
    Say,
)
from slotline.agent.flow import (
    AvailabilityReady,
    BookingFinished,
    CallWebhook,
    CancelFinished,
    CheckAvailability,
    FlowEngine,
    FlowResponder,
    RunBooking,
    RunCancel,
    RunReschedule,
    SendSms,
    SlotOffer,
    Transfer,
    WebhookFinished,
    parse_flow,
)
from slotline.agent.flow.booking_steps import COULD_NOT_BOOK
from slotline.providers.errors import ProviderError, ProviderTimeout
from tests.unit.test_flow_examples import NOW, Phone

OFFER = SlotOffer("2026-12-01T14:00:00-05:00", "Tuesday, December 1st", "2 pm")
NODES: dict[str, Any] = {
    "ask": {"type": "conversation", "say": "Name?", "collect": "user_name", "extractor": "name",
            "next": "book"},
    "book": {"type": "booking", "action": "demo", "say": "Let me check.", "success": "ask_email",
             "failure": "sorry"},
    "ask_email": {"type": "conversation", "say": "Booked {booked_time}. Email?",
                  "collect": "user_email", "extractor": "email", "next": "bye"},
    "bye": {"type": "end_call", "say": "Bye."},
    "sorry": {"type": "end_call", "say": "Sorry, {booking_error}."},
}


class GatedCalendar:
    """A BookingRunner whose bookings wait for `gate` (to be interrupted mid-flight)."""

    def __init__(self, failure: ProviderError | None = None, hang: bool = False) -> None:
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.failure = failure
        self.hang = hang
        self.booked: list[RunBooking] = []

    async def check(self, request: CheckAvailability) -> AvailabilityReady:
        return AvailabilityReady(request.node_id, OFFER)

    async def run(self, request: RunBooking) -> BookingFinished:
        self.started.set()
        if self.failure is not None:
            raise self.failure
        if self.hang:
            await asyncio.Event().wait()
        await self.gate.wait()
        self.booked.append(request)
        return BookingFinished(request.node_id, True, OFFER, "B1")

    async def reschedule(self, request: RunReschedule) -> BookingFinished:
        return BookingFinished(request.node_id, False, reason="not_found")

    async def cancel(self, request: RunCancel) -> CancelFinished:
        return CancelFinished(request.node_id, False, reason="not_found")


class NoWebhooks:
    async def call(self, request: CallWebhook) -> WebhookFinished:
        return WebhookFinished(request.node_id, False)


def responder(calendar: GatedCalendar, nodes: Mapping[str, Any] = NODES, **kw: Any
              ) -> FlowResponder:
    flow = parse_flow({"name": "t", "start": next(iter(nodes)), "nodes": dict(nodes)})
    return FlowResponder(FlowEngine(flow, now=lambda: NOW), booking=calendar,
                         webhooks=NoWebhooks(), **kw)


async def run(r: Responder, event: CallEvent) -> list[Action]:
    return [action async for action in r.handle(event)]


def texts(actions: list[Action]) -> list[str]:
    return [a.text for a in actions if isinstance(a, Say)]


async def test_booking_result_flows_into_the_same_reply() -> None:
    calendar = GatedCalendar()
    calendar.gate.set()
    r = responder(calendar)
    await run(r, CallStarted("CA1"))
    reply = await run(r, CallerSaid("my name is john smith"))
    assert texts(reply) == ["Let me check.", "Booked 2 pm. Email?"]
    assert isinstance(reply[-1], Listen)
    assert r.node == "ask_email" and r.variables["booking_id"] == "B1"
    assert calendar.booked[0].attendee.name == "John Smith"


async def test_barge_in_during_the_booking_never_loses_it() -> None:
    calendar = GatedCalendar()
    r = responder(calendar)
    await run(r, CallStarted("CA1"))
    heard: list[Action] = []

    async def reply() -> None:
        async for action in r.handle(CallerSaid("my name is john smith")):
            heard.append(action)

    task = asyncio.create_task(reply())
    await calendar.started.wait()
    task.cancel()  # the caller barges in while the calendar is being written
    await asyncio.gather(task, return_exceptions=True)
    assert texts(heard) == ["Let me check."] and r.node == "book"
    calendar.gate.set()
    late = await run(r, ReplyInterrupted("Let me", " check."))
    assert texts(late) == ["Booked 2 pm. Email?"]  # the result the caller has not heard yet
    assert len(calendar.booked) == 1 and r.node == "ask_email"
    assert texts(await run(r, CallerSaid("john at example dot com"))) == ["Bye."]


async def test_unspoken_speech_is_dropped_but_pending_work_runs() -> None:
    calendar = GatedCalendar()
    calendar.gate.set()
    r = responder(calendar)
    await run(r, CallStarted("CA1"))
    generator = r.handle(CallerSaid("my name is jane doe"))
    first = await generator.__anext__()
    assert first == Say("Let me check.")
    await generator.aclose()  # barge-in right after the first sentence: booking not yet run
    assert calendar.booked == []
    reply = await run(r, CallerSaid("jane at example dot com"))
    assert len(calendar.booked) == 1
    assert texts(reply) == ["Booked 2 pm. Email?", "Bye."]


async def test_a_failing_calendar_takes_the_failure_edge() -> None:
    r = responder(GatedCalendar(failure=ProviderTimeout("local", "calendar main timed out")))
    await run(r, CallStarted("CA1"))
    reply = await run(r, CallerSaid("my name is john smith"))
    assert texts(reply) == ["Let me check.", COULD_NOT_BOOK, "Sorry, timeout."]
    assert isinstance(reply[-1], Hangup)


async def test_a_calendar_that_never_answers_is_cut_off() -> None:
    r = responder(GatedCalendar(hang=True), service_timeout_s=0.05)
    await run(r, CallStarted("CA1"))
    reply = await run(r, CallerSaid("my name is john smith"))
    assert texts(reply) == ["Let me check.", COULD_NOT_BOOK, "Sorry, timeout."]


async def test_sms_and_transfer_go_to_call_control() -> None:
    nodes = {
        "sms": {"type": "send_sms", "template": "Hello", "next": "go"},
        "go": {"type": "transfer", "say": "Connecting.", "number": "+15550100200"},
    }
    phone = Phone()
    r = responder(GatedCalendar(), nodes, control=phone)
    assert texts(await run(r, CallStarted("CA1"))) == ["Connecting."]
    assert phone.sms == [SendSms("Hello")] and phone.transfers == [Transfer("+15550100200")]


async def test_without_call_control_sms_is_skipped_and_transfer_hangs_up() -> None:
    nodes = {
        "sms": {"type": "send_sms", "template": "Hello", "next": "go"},
        "go": {"type": "transfer", "number": "+15550100200"},
    }
    r = responder(GatedCalendar(), nodes)
    assert await run(r, CallStarted("CA1")) == [Hangup("transfer-unavailable")]


async def test_a_failing_sms_does_not_end_the_call() -> None:
    class BrokenPhone(Phone):
        async def send_sms(self, request: SendSms) -> None:
            raise ProviderError("twilio", "21211 invalid number")

    nodes = {
        "sms": {"type": "send_sms", "template": "Hello", "next": "bye"},
        "bye": {"type": "end_call", "say": "Bye."},
    }
    r = responder(GatedCalendar(), nodes, control=BrokenPhone())
    assert await run(r, CallStarted("CA1")) == [Say("Bye."), Hangup()]


async def test_aclose_waits_for_an_interrupted_booking() -> None:
    calendar = GatedCalendar()
    r = responder(calendar)
    await run(r, CallStarted("CA1"))
    task = asyncio.create_task(run(r, CallerSaid("my name is john smith")))
    await calendar.started.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    calendar.gate.set()
    await r.aclose()
    assert len(calendar.booked) == 1


async def test_asking_is_the_question_the_words_being_spoken_ask() -> None:
    nodes = {"greet": {"type": "greeting", "say": "Hi there.", "next": "ask"}, **NODES}
    r = responder(GatedCalendar(), nodes)
    assert isinstance(r, ReportsQuestion)
    asked: list[tuple[str, str | None]] = []
    async for action in r.handle(CallStarted("CA1")):
        if isinstance(action, Say):  # while it is spoken: which question it asks
            asked.append((action.text, None if r.asking is None else r.asking.kind))
    assert asked == [("Hi there.", None), ("Name?", "name")]
    assert r.asking is None  # the Listen has been given: the frame path knows the question
