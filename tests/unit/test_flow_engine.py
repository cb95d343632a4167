"""The flow engine by its events and actions: transitions, reprompts, intents, the booking
dialogue, results of services, and the guards."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from slotline.agent.call.responder import (
    CallerSaid,
    CallStarted,
    DtmfPressed,
    Hangup,
    Listen,
    ReplyInterrupted,
    Say,
)
from slotline.agent.flow import (
    AvailabilityReady,
    BookingFinished,
    CallWebhook,
    CancelFinished,
    CheckAvailability,
    Flow,
    FlowAction,
    FlowEngine,
    Lookup,
    Phase,
    Preferences,
    RunBooking,
    RunCancel,
    RunReschedule,
    SendSms,
    SlotOffer,
    Transfer,
    WebhookFinished,
    parse_flow,
    transition_table,
)
from slotline.agent.flow.state import GIVE_UP, INTERNAL_ERROR
from slotline.providers.errors import ProtocolError

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=NY)
AT_10 = SlotOffer("2026-12-01T10:00:00-05:00", "Tuesday, December 1st", "10 am")
AT_14 = SlotOffer("2026-12-01T14:00:00-05:00", "Tuesday, December 1st", "2 pm")
AT_16 = SlotOffer("2026-12-01T16:00:00-05:00", "Tuesday, December 1st", "4 pm")
WED_14 = SlotOffer("2026-12-02T14:00:00-05:00", "Wednesday, December 2nd", "2 pm")


def flow(nodes: Mapping[str, Any], **header: Any) -> Flow:
    document = {"name": "t", "start": next(iter(nodes)), "timezone": "America/New_York",
                **header, "nodes": dict(nodes)}
    return parse_flow(document, source="test")


def engine(nodes: Mapping[str, Any], **header: Any) -> FlowEngine:
    return FlowEngine(flow(nodes, **header), now=lambda: NOW)


def says(actions: list[FlowAction]) -> list[str]:
    return [a.text for a in actions if isinstance(a, Say)]


ASK_NAME = {"type": "conversation", "say": "Your name?", "collect": "user_name",
            "extractor": "name", "next": "bye"}
BYE = {"type": "end_call", "say": "Bye {user_name}."}


def test_start_greets_asks_and_listens() -> None:
    e = engine({"hi": {"type": "greeting", "say": "Hi, I'm {agent_name}.", "next": "ask"},
                "ask": ASK_NAME, "bye": BYE}, agent_name="Ava")
    actions = e.handle(CallStarted("CA1"))
    assert says(actions) == ["Hi, I'm Ava.", "Your name?"]
    assert isinstance(actions[-1], Listen) and actions[-1].hints.phrases
    assert e.node_id == "ask" and e.phase is Phase.ANSWER and e.path == ("hi", "ask")
    actions = e.handle(CallerSaid("my name is john smith"))
    assert actions == [Say("Bye John Smith."), Hangup("completed")]
    assert e.ended and e.variables["user_name"] == "John Smith"


def test_reprompt_then_fallback() -> None:
    ask = {**ASK_NAME, "reprompt": "Sorry, your name again?", "fallback": "human"}
    e = engine({"ask": ask, "bye": BYE, "human": {"type": "transfer", "number": "+15550100"}})
    e.handle(CallStarted("CA1"))
    first = e.handle(CallerSaid(""))
    assert says(first) == ["Sorry, your name again?"] and isinstance(first[-1], Listen)
    assert e.node_id == "ask"
    assert e.handle(CallerSaid("what")) == [Transfer("+15550100")]
    assert e.ended and "user_name" not in e.variables


def test_default_reprompt_and_no_fallback_ends_politely() -> None:
    e = engine({"ask": {**ASK_NAME, "max_attempts": 3}, "bye": BYE})
    e.handle(CallStarted("CA1"))
    assert says(e.handle(CallerSaid("hmm"))) == ["Sorry, I didn't catch that. Your name?"]
    assert says(e.handle(CallerSaid("hmm"))) == ["Sorry, I didn't catch that. Your name?"]
    assert e.handle(CallerSaid("hmm")) == [Say(GIVE_UP), Hangup("no-match")]


def test_optional_question_is_skipped_on_no() -> None:
    ask = {"type": "conversation", "say": "Email?", "collect": "user_email", "extractor": "email",
           "optional": True, "next": "bye"}
    e = engine({"ask": ask, "bye": {"type": "end_call", "say": "Bye."}})
    e.handle(CallStarted("CA1"))
    assert e.handle(CallerSaid("no thanks")) == [Say("Bye."), Hangup("completed")]
    assert "user_email" not in e.variables


def test_or_collect_takes_the_second_reading() -> None:
    ask = {"type": "conversation", "say": "When?", "collect": "preferred_time", "extractor": "time",
           "or_collect": {"variable": "time_preference", "extractor": "time_of_day"},
           "next": "bye"}
    e = engine({"ask": ask, "bye": {"type": "end_call"}})
    e.handle(CallStarted("CA1"))
    e.handle(CallerSaid("in the afternoon please"))
    assert dict(e.variables) == {"user_timezone": "America/New_York",
                                 "time_preference": "afternoon"}


@pytest.mark.parametrize(("service", "expected"), [
    ("haircut", "cut"), ("Coloring", "color"), ("styling", "style"), ("nails", "other"),
])
def test_branch_conditions_in_order_then_default(service: str, expected: str) -> None:
    ends = {name: {"type": "end_call", "say": name} for name in ("cut", "color", "style", "other")}
    branch = {"type": "branch", "default": "other", "conditions": [
        {"variable": "service", "equals": "haircut", "goto": "cut"},
        {"variable": "service", "in": ["coloring", "highlights"], "goto": "color"},
        {"variable": "service", "not_equals": "nails", "goto": "style"},
    ]}
    e = engine({"route": branch, **ends}, variables={"service": service})
    assert says(e.handle(CallStarted("CA1"))) == [expected]


def test_is_set_and_call_parameters_for_declared_variables_only() -> None:
    branch = {"type": "branch", "default": "unknown", "conditions": [
        {"variable": "user_phone", "is_set": True, "goto": "known"},
    ]}
    nodes = {"route": branch, "known": {"type": "end_call", "say": "Known {user_phone}."},
             "unknown": {"type": "end_call", "say": "Unknown."}}
    e = engine(nodes, variables={"user_phone": ""})
    assert says(e.handle(CallStarted("CA1", {"user_phone": "+1555", "other": "x"}))) == [
        "Known +1555."
    ]
    assert "other" not in e.variables
    e = engine(nodes, variables={"user_phone": ""})
    assert says(e.handle(CallStarted("CA1"))) == ["Unknown."]


INTENT_NODES = {
    "ask": ASK_NAME,
    "bye": BYE,
    "cancel": {"type": "conversation", "say": "Your number?", "collect": "user_phone",
               "extractor": "phone", "next": "done"},
    "done": {"type": "end_call", "say": "Done."},
}
INTENTS = [{"name": "cancel", "phrases": ["cancel my appointment"], "goto": "cancel"},
           {"name": "human", "keywords": ["person", "talk"], "goto": "done"}]


def test_intent_jumps_from_anywhere_but_its_own_node() -> None:
    e = engine(INTENT_NODES, intents=INTENTS)
    e.handle(CallStarted("CA1"))
    assert says(e.handle(CallerSaid("actually, cancel my appointment"))) == ["Your number?"]
    assert e.node_id == "cancel"
    again = e.handle(CallerSaid("i said cancel my appointment"))  # already there: a reprompt
    assert says(again) == ["Sorry, I didn't catch that. Your number?"]


def test_intent_keywords_in_any_order() -> None:
    e = engine(INTENT_NODES, intents=INTENTS)
    e.handle(CallStarted("CA1"))
    assert e.handle(CallerSaid("can i talk to a real person")) == [Say("Done."), Hangup()]


def test_dtmf_is_read_like_a_spoken_digit() -> None:
    ask = {"type": "conversation", "say": "Press 1 for sales.", "collect": "menu",
           "extractor": "number", "next": "bye"}
    e = engine({"ask": ask, "bye": {"type": "end_call", "say": "Option {menu}."}})
    e.handle(CallStarted("CA1"))
    assert says(e.handle(DtmfPressed("1"))) == ["Option 1."]


def test_reply_interrupted_is_recorded_without_moving() -> None:
    e = engine({"ask": ASK_NAME, "bye": BYE})
    e.handle(CallStarted("CA1"))
    heard = ReplyInterrupted("Your", " name?")
    assert e.handle(heard) == [] and e.node_id == "ask" and e.phase is Phase.ANSWER
    assert e.interruptions == (heard,)


def test_out_of_order_events_are_protocol_errors() -> None:
    e = engine({"ask": ASK_NAME, "bye": BYE})
    with pytest.raises(ProtocolError, match="flow_unexpected_event"):
        e.handle(CallerSaid("hello"))  # before CallStarted
    e.handle(CallStarted("CA1"))
    with pytest.raises(ProtocolError, match="flow_unexpected_event"):
        e.handle(BookingFinished("ask", success=True))


def test_events_after_the_end_are_ignored() -> None:
    e = engine({"bye": {"type": "end_call", "say": "Bye."}})
    assert e.handle(CallStarted("CA1")) == [Say("Bye."), Hangup()]
    assert e.handle(CallerSaid("hello?")) == [] and e.ended


def test_a_runaway_loop_ends_the_call() -> None:
    loop = Flow.model_validate({"name": "loop", "start": "a", "nodes": {
        "a": {"type": "jump", "goto": "b"}, "b": {"type": "jump", "goto": "a"}}})
    e = FlowEngine(loop, now=lambda: NOW, max_steps=10)
    assert e.handle(CallStarted("CA1")) == [Say(INTERNAL_ERROR), Hangup("error")]
    assert len(e.path) == 10


def test_messages_sms_and_transfer() -> None:
    nodes = {
        "hi": {"type": "message", "say": "Hello.", "next": "sms"},
        "sms": {"type": "send_sms", "template": "Hi {user_name}", "to": "{user_phone}",
                "next": "go"},
        "go": {"type": "transfer", "say": "Transferring.", "number": "+15550100200"},
    }
    e = engine(nodes, variables={"user_name": "Ann", "user_phone": "+1555"})
    assert e.handle(CallStarted("CA1")) == [
        Say("Hello."), SendSms("Hi Ann", "+1555"), Say("Transferring."), Transfer("+15550100200")
    ]
    assert e.ended


# ---- booking ---------------------------------------------------------------------------------

BOOKING_NODES = {
    "book": {"type": "booking", "action": "demo", "say": "Checking.", "success": "ok",
             "failure": "sorry"},
    "ok": {"type": "end_call", "say": "Booked {booked_date} at {booked_time}, ref {booking_id}."},
    "sorry": {"type": "end_call", "say": "Sorry. {alternatives}"},
}
CALLER = {"user_name": "Ann Lee", "user_email": "ann@example.com", "preferred_date": "2026-12-01",
          "preferred_time": "15:00", "service": "cut"}


def booking_engine(confirm: bool = False, **node: Any) -> FlowEngine:
    nodes = {**BOOKING_NODES, "book": {**BOOKING_NODES["book"], "confirm": confirm, **node}}
    return engine(nodes, variables=CALLER)


def test_booking_runs_the_preferred_time_and_books() -> None:
    e = booking_engine()
    actions = e.handle(CallStarted("CA1"))
    assert says(actions) == ["Checking."]
    run = actions[-1]
    assert isinstance(run, RunBooking) and e.phase is Phase.BOOKING
    assert run.action == "demo" and run.slot_start == ""
    assert run.preferences == Preferences("2026-12-01", "15:00", "")
    assert run.attendee.name == "Ann Lee" and run.attendee.email == "ann@example.com"
    assert run.attendee.timezone == "America/New_York" and run.fields["service"] == "cut"
    done = e.handle(BookingFinished("book", True, AT_14, "B7"))
    assert done == [Say("Booked Tuesday, December 1st at 2 pm, ref B7."), Hangup()]
    assert e.variables["booking_success"] == "yes"
    assert e.variables["booked_start"] == AT_14.start


def test_booking_offers_alternatives_then_books_the_pick_and_survives_a_race() -> None:
    e = booking_engine()
    e.handle(CallStarted("CA1"))
    offered = e.handle(BookingFinished("book", False, alternatives=(AT_16, AT_10, AT_14),
                                       reason="unavailable"))
    assert says(offered) == ["Sorry, that time isn't available. I have 10 am, 2 pm and 4 pm on "
                             "Tuesday, December 1st. Which works best for you?"]
    assert e.phase is Phase.CHOOSE and isinstance(offered[-1], Listen)
    [run] = e.handle(CallerSaid("the second one"))
    assert isinstance(run, RunBooking) and run.slot_start == AT_14.start
    raced = e.handle(BookingFinished("book", False, alternatives=(AT_14, AT_16), reason="taken"))
    assert says(raced) == ["Sorry, that time was just taken. I have 4 pm on Tuesday, December "
                           "1st. Which works best for you?"]
    [run] = e.handle(CallerSaid("yes please"))  # one offer left: yes takes it
    assert isinstance(run, RunBooking) and run.slot_start == AT_16.start
    assert says(e.handle(BookingFinished("book", True, AT_16, "B8")))[0].startswith("Booked")


def test_booking_with_nothing_free_takes_failure() -> None:
    e = booking_engine()
    e.handle(CallStarted("CA1"))
    assert says(e.handle(BookingFinished("book", False, reason="no_slots"))) == ["Sorry. "]
    assert e.variables["booking_success"] == "no" and e.variables["booking_error"] == "no_slots"


def test_booking_without_failure_edge_ends_politely() -> None:
    book = {**BOOKING_NODES["book"], "failure": None}
    e = engine({"book": book, "ok": BOOKING_NODES["ok"]}, variables=CALLER)
    e.handle(CallStarted("CA1"))
    actions = e.handle(BookingFinished("book", False))
    assert isinstance(actions[-1], Hangup) and actions[-1].reason == "failed"


def test_confirm_yes_books_the_requested_slot() -> None:
    e = booking_engine(confirm=True)
    [_, check] = e.handle(CallStarted("CA1"))
    assert isinstance(check, CheckAvailability) and check.lookup is None
    asked = e.handle(AvailabilityReady("book", AT_14, (AT_16,)))
    assert says(asked) == ["I can book Tuesday, December 1st at 2 pm. Shall I go ahead?"]
    assert e.phase is Phase.CONFIRM
    [run] = e.handle(CallerSaid("yes that works"))
    assert isinstance(run, RunBooking) and run.slot_start == AT_14.start


def test_confirm_no_offers_the_others_and_a_second_no_fails() -> None:
    e = booking_engine(confirm=True)
    e.handle(CallStarted("CA1"))
    e.handle(AvailabilityReady("book", AT_14, (AT_16, WED_14)))
    offered = e.handle(CallerSaid("no"))
    assert says(offered) == ["No problem. I have 4 pm on Tuesday, December 1st, or 2 pm on "
                             "Wednesday, December 2nd. Which works best for you?"]
    assert says(e.handle(CallerSaid("no, neither"))) == [
        "Sorry. I have 4 pm on Tuesday, December 1st, or 2 pm on Wednesday, December 2nd"
    ]
    assert e.variables["booking_error"] == "declined"


def test_confirm_another_time_asks_about_that_one() -> None:
    e = booking_engine(confirm=True)
    e.handle(CallStarted("CA1"))
    e.handle(AvailabilityReady("book", AT_14, (AT_16,)))
    asked = e.handle(CallerSaid("no, how about four"))
    assert says(asked) == ["I can book Tuesday, December 1st at 4 pm. Shall I go ahead?"]
    [run] = e.handle(CallerSaid("yes"))
    assert isinstance(run, RunBooking) and run.slot_start == AT_16.start


def test_confirming_the_time_itself_is_not_a_change_of_day() -> None:
    e = booking_engine(confirm=True)
    e.handle(CallStarted("CA1"))
    e.handle(AvailabilityReady("book", AT_14, (WED_14,)))
    [run] = e.handle(CallerSaid("yes, two pm is great"))
    assert isinstance(run, RunBooking) and run.slot_start == AT_14.start


def test_choose_by_day_and_time_and_confirm_the_pick() -> None:
    e = booking_engine(confirm=True)
    e.handle(CallStarted("CA1"))
    e.handle(AvailabilityReady("book", None, (AT_14, WED_14)))
    asked = e.handle(CallerSaid("wednesday at two"))
    assert says(asked) == ["I can book Wednesday, December 2nd at 2 pm. Shall I go ahead?"]


def test_unclear_answers_in_the_booking_dialogue_end_in_failure() -> None:
    e = booking_engine(confirm=True, max_attempts=2)
    e.handle(CallStarted("CA1"))
    e.handle(AvailabilityReady("book", None, (AT_10, AT_14)))
    again = e.handle(CallerSaid("purple"))
    assert says(again) == ["Sorry, which one would you like? I have 10 am and 2 pm on Tuesday, "
                           "December 1st."]
    assert says(e.handle(CallerSaid("purple")))[0].startswith("Sorry. I have")
    assert e.variables["booking_error"] == "not_understood"


def test_stale_results_are_rejected() -> None:
    e = booking_engine()
    e.handle(CallStarted("CA1"))
    with pytest.raises(ProtocolError, match="flow_stale_result"):
        e.handle(BookingFinished("elsewhere", True))


def test_reschedule_needs_a_lookup_and_sends_it() -> None:
    nodes = {
        "move": {"type": "reschedule", "reference_variable": "booking_reference",
                 "phone_variable": "user_phone", "success": "ok", "failure": "sorry"},
        "ok": {"type": "end_call", "say": "Moved to {booked_time}."},
        "sorry": {"type": "end_call", "say": "Not moved: {booking_error}."},
    }
    e = engine(nodes, variables={"booking_reference": "", "user_phone": ""})
    assert says(e.handle(CallStarted("CA1"))) == ["Not moved: no_lookup."]
    e = engine(nodes, variables={"booking_reference": "", "user_phone": "+1555"})
    [run] = e.handle(CallStarted("CA1"))
    assert isinstance(run, RunReschedule) and run.lookup == Lookup("", "+1555")
    assert says(e.handle(BookingFinished("move", True, AT_10, "B1"))) == ["Moved to 10 am."]


def test_cancel_outputs() -> None:
    nodes = {
        "cancel": {"type": "cancel", "phone_variable": "user_phone", "say": "One moment.",
                   "success": "ok", "failure": "sorry"},
        "ok": {"type": "end_call", "say": "Cancelled {cancelled_date} at {cancelled_time}."},
        "sorry": {"type": "end_call", "say": "Not found."},
    }
    e = engine(nodes, variables={"user_phone": "+1555"})
    assert e.handle(CallStarted("CA1")) == [
        Say("One moment."), RunCancel("cancel", Lookup("", "+1555"))
    ]
    assert says(e.handle(CancelFinished("cancel", True, AT_10, "B1"))) == [
        "Cancelled Tuesday, December 1st at 10 am."
    ]
    assert e.variables["cancel_success"] == "yes"


@pytest.mark.parametrize(("result", "said"), [
    ({"payment_id": "p1"}, "Paid p1."),
    ({}, "Declined."),  # success without the promised variable is a failure
])
def test_webhook_variables_in_and_out(result: dict[str, str], said: str) -> None:
    nodes = {
        "pay": {"type": "webhook", "webhook": "deposit", "send": ["user_name"],
                "receive": ["payment_id"], "success": "ok", "failure": "no"},
        "ok": {"type": "end_call", "say": "Paid {payment_id}."},
        "no": {"type": "end_call", "say": "Declined."},
    }
    e = engine(nodes, variables={"user_name": "Ann"})
    assert e.handle(CallStarted("CA1")) == [CallWebhook("pay", "deposit", {"user_name": "Ann"})]
    assert says(e.handle(WebhookFinished("pay", True, result))) == [said]


def test_transition_table_lists_every_rule() -> None:
    rows = transition_table()
    assert ("idle", "CallStarted", "started") in rows
    assert ("choose", "CallerSaid", "choose_answer") in rows
    assert ("email", "CallerSaid", "email_answer") in rows  # an address read back, re-asked
    assert ("change", "CallerSaid", "change_answer") in rows  # "did you want Friday instead?"
    assert len(rows) == len(set(rows)) == 14  # + the two model results
