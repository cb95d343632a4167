"""The line a booking's success will say, foreseen while the caller answers the read-back
(``agent.flow.foresee``), and the responder handing it to the voice (``Prepare``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slotline.agent.call.responder import CallStarted, Prepare
from slotline.agent.flow.engine import FlowEngine
from slotline.agent.flow.foresee import line_after_yes
from slotline.agent.flow.messages import (
    AvailabilityReady,
    BookingFinished,
    CallerSaid,
    Listen,
    Say,
)
from slotline.agent.flow.responder import FlowResponder
from tests.unit.test_flow_engine import (
    AT_10,
    AT_14,
    AT_16,
    BOOKING_NODES,
    CALLER,
    engine,
    says,
)
from tests.unit.test_flow_responder import OFFER, GatedCalendar, NoWebhooks

NODES = {**BOOKING_NODES,
         "book": {**BOOKING_NODES["book"], "confirm": True},
         "ok": {"type": "end_call", "say": "Booked {booked_date} at {booked_time}. Bye."}}


def at_read_back(nodes: Mapping[str, Any] = NODES) -> FlowEngine:
    e = engine(nodes, variables=CALLER)
    e.handle(CallStarted("CA1"))
    e.handle(AvailabilityReady("book", AT_14, (AT_16,)))
    return e


def test_the_confirmation_is_foreseen_at_the_read_back_and_left_as_it_was() -> None:
    e = at_read_back()
    line = line_after_yes(e)
    assert line == "Booked Tuesday, December 1st at 2 pm. Bye."
    assert e.candidate == AT_14 and e.variables.get("booking_success", "") != "yes"  # untouched
    e.handle(CallerSaid("yes"))
    assert says(e.handle(BookingFinished("book", True, AT_14, "B1"))) == [line]


def test_a_line_that_needs_the_booking_id_is_not_foreseen() -> None:
    assert line_after_yes(at_read_back(BOOKING_NODES | {  # "ref {booking_id}"
        "book": {**BOOKING_NODES["book"], "confirm": True}})) is None


def test_nothing_is_foreseen_where_a_yes_does_not_book() -> None:
    e = engine(NODES, variables=CALLER)
    assert line_after_yes(e) is None  # not started
    e.handle(CallStarted("CA1"))
    offered = e.handle(AvailabilityReady("book", None, (AT_10, AT_16)))
    assert isinstance(offered[-1], Listen)
    assert line_after_yes(e) is None  # two offers: a yes picks none


def test_a_lone_offer_booked_on_a_yes_is_foreseen() -> None:
    nodes = {**NODES, "book": {**BOOKING_NODES["book"]}}  # books without a read-back
    e = engine(nodes, variables=CALLER)
    e.handle(CallStarted("CA1"))
    e.handle(BookingFinished("book", False, alternatives=(AT_16,), reason="unavailable"))
    assert line_after_yes(e) == "Booked Tuesday, December 1st at 4 pm. Bye."


async def test_the_responder_prepares_the_line_after_the_read_back_question() -> None:
    calendar = GatedCalendar()  # offers OFFER when asked
    responder = FlowResponder(engine(NODES, variables=CALLER), booking=calendar,
                              webhooks=NoWebhooks())
    actions = [a async for a in responder.handle(CallStarted("CA1"))]
    assert isinstance(actions[-2], Listen)  # "I can book ... Shall I go ahead?"
    assert actions[-1] == Prepare(f"Booked {OFFER.date_spoken} at {OFFER.time_spoken}. Bye.")
    calendar.gate.set()
    booked = [a async for a in responder.handle(CallerSaid("yes"))]
    assert [a.text for a in booked if isinstance(a, Say)] == [actions[-1].text]
    assert not any(isinstance(a, Prepare) for a in booked)
