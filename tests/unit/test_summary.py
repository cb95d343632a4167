"""Post-call outcome (rules) and summary (rules offline; the model against the emulator)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from slotline.agent.call.calllog import CallRecord, Latency, Turn
from slotline.agent.call.summary import (
    OUTCOMES,
    FlowShape,
    Summarizer,
    classify,
    flow_shape,
    rule_summary,
)
from slotline.agent.flow import load_flow
from slotline.providers.emulators.openai import Latency as ModelLatency
from slotline.providers.emulators.openai import OpenAIEmulator, Reply
from slotline.providers.llm.openai import OpenAIChatModel

FLOWS = Path(__file__).resolve().parents[2] / "config" / "flows"
KEY = "sk-emu-test"


def shape(name: str) -> FlowShape:
    return flow_shape(load_flow(FLOWS / f"{name}.yaml"))


def call(flow: str, node: str, variables: Mapping[str, str] | None = None, *,
         status: str = "completed", caller_said: tuple[str, ...] = ("hello",),
         bookings: tuple[str, ...] = ()) -> CallRecord:
    record = CallRecord(call_sid="CA" + "1" * 32, stream_sid="MZ1", flow=flow, status=status,
                        node=node, variables=dict(variables or {}), bookings=list(bookings))
    record.add_turn(Turn("agent", "Hi, thanks for calling Slotline.",
                         latency=Latency(turn_latency_ms=0.0)))
    for text in caller_said:
        record.add_turn(Turn("caller", text))
    return record


BOOKED = {"user_name": "Jane Doe", "preferred_date": "next tuesday", "booking_success": "yes",
          "booked_date": "Tuesday, December 8th", "booked_time": "3 pm", "booking_id": "bk1"}


def test_a_booking_call_is_booked_and_says_who_what_and_when() -> None:
    demo = shape("demo_booking")
    record = call("demo_booking", "goodbye", BOOKED, bookings=("bk1",))
    assert classify(record, demo) == "booked"
    summary = rule_summary(record, demo, "booked")
    assert summary.startswith("Jane Doe booked a demo for Tuesday, December 8th at 3 pm.")


def test_a_booking_reported_only_by_the_bookings_list_still_counts() -> None:
    record = call("demo_booking", "ask_email", {"user_name": "Jane Doe"}, bookings=("bk1",))
    assert classify(record, shape("demo_booking")) == "booked"


def test_a_moved_appointment_is_rescheduled_not_booked() -> None:
    flows = shape("reschedule_cancel")
    record = call("reschedule_cancel", "moved", {**BOOKED, "booking_id": "old"})
    assert classify(record, flows) == "rescheduled"
    assert rule_summary(record, flows, "rescheduled") == (
        "Jane Doe moved their appointment to Tuesday, December 8th at 3 pm.")


def test_cancel_opt_out_and_transfer() -> None:
    flows = shape("reschedule_cancel")
    cancelled = call("reschedule_cancel", "cancelled", {
        "cancel_success": "yes", "cancelled_date": "Friday, May 1st", "cancelled_time": "10 am"})
    assert classify(cancelled, flows) == "cancelled"
    assert rule_summary(cancelled, flows, "cancelled") == (
        "The caller cancelled their appointment on Friday, May 1st at 10 am.")
    opted = call("sales_demo", "goodbye", {"opted_out": "yes"})
    opted.direction = "outbound"
    assert classify(opted, shape("sales_demo")) == "opted_out"
    assert rule_summary(opted, None, "opted_out").startswith("The callee asked not to be called")
    assert classify(call("reschedule_cancel", "to_front_desk"), flows) == "transferred"


def test_failed_silent_hung_up_and_completed_calls() -> None:
    demo = shape("demo_booking")
    failed = call("demo_booking", "ask_date", status="failed")
    failed.add_error("deepgram", "connection lost")
    assert classify(failed, demo) == "failed"
    assert rule_summary(failed, demo, "failed").endswith("failed: connection lost.")
    assert classify(call("demo_booking", "ask_name", caller_said=()), demo) == "no_answer_given"
    hung_up = call("demo_booking", "ask_time", {"user_name": "Jane Doe",
                                                "preferred_date": "next tuesday"})
    assert classify(hung_up, demo) == "caller_hung_up"
    assert rule_summary(hung_up, demo, "caller_hung_up") == (
        "Jane Doe hung up during the demo booking call (at ask_time). "
        "Collected: preferred date next tuesday.")
    no_time = call("demo_booking", "no_time", {"user_name": "Jane Doe"})
    assert classify(no_time, demo) == "completed"
    assert rule_summary(no_time, demo, "completed") == (
        "Jane Doe finished the demo booking call (no booking).")


def test_every_outcome_has_a_sentence_even_without_the_flow() -> None:
    record = call("gone_flow", "somewhere", {"user_name": "Jane Doe"})
    assert classify(record, None) == "completed"  # no shape: where it ended is unknown
    for outcome in OUTCOMES:
        text = rule_summary(record, None, outcome)  # type: ignore[arg-type]
        assert text.endswith(".") and len(text) < 300


async def test_offline_the_rules_write_the_summary() -> None:
    result = await Summarizer(None).summarize(
        call("demo_booking", "goodbye", BOOKED), shape("demo_booking"))
    assert (result.outcome, result.by) == ("booked", "rules")
    assert "Jane Doe" in result.summary and "3 pm" in result.summary


async def test_with_a_model_the_model_writes_the_sentence_from_the_transcript() -> None:
    asked: list[Mapping[str, Any]] = []

    def script(request: Mapping[str, Any]) -> Reply:
        asked.append(request)
        return Reply("Jane Doe booked a demo for Tuesday at 3 pm and declined an email.")

    async with OpenAIEmulator(api_key=KEY, script=script) as emulator:
        model = OpenAIChatModel(KEY, base_url=emulator.base_url, model="emulated-chat")
        try:
            result = await Summarizer(model).summarize(
                call("demo_booking", "goodbye", BOOKED, caller_said=("my name is jane doe",)),
                shape("demo_booking"))
        finally:
            await model.aclose()
    assert result == type(result)(
        "booked", "Jane Doe booked a demo for Tuesday at 3 pm and declined an email.", "model")
    prompt = asked[0]["messages"][-1]["content"]
    assert "caller: my name is jane doe" in prompt and "Outcome: booked" in prompt


@pytest.mark.parametrize("fault", ["http_500", "slow"])
async def test_a_failing_or_slow_model_falls_back_to_the_rules(fault: str) -> None:
    async with OpenAIEmulator(api_key=KEY) as emulator:
        if fault == "http_500":
            emulator.fail_next(500, count=5)
        model = OpenAIChatModel(KEY, base_url=emulator.base_url, model="emulated-chat")
        if fault == "slow":
            emulator.latency = ModelLatency(first_token_delay_ms=2000.0)
        try:
            result = await Summarizer(model, timeout_s=0.5).summarize(
                call("demo_booking", "goodbye", BOOKED), shape("demo_booking"))
        finally:
            await model.aclose()
    assert (result.outcome, result.by) == ("booked", "rules")
    assert result.summary.startswith("Jane Doe booked a demo")
