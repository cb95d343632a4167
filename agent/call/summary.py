"""After the call: what came of it (the outcome) and a sentence or two saying so (the summary).

The outcome is always decided by rules over the call record, because a CRM filters on it and
it must not depend on a model's wording. In order, the first that holds:

    opted_out        the callee asked not to be called again (``opted_out`` = yes)
    cancelled        a cancel node succeeded (``cancel_success`` = yes)
    rescheduled      a booking succeeded and the call ended after a ``reschedule`` node's success
    booked           a booking succeeded, or the call made a booking
    transferred      the call left the flow at a ``transfer`` node
    failed           the call's status is failed (an error, the server stopped)
    no_answer_given  the caller said nothing the recogniser heard
    caller_hung_up   the caller hung up before the flow reached an end
    completed        the flow reached an ``end_call`` (its ``reason`` goes into the summary)

The summary is built from the flow, where the call ended and the collected variables ("John
Smith booked a demo for Tuesday, December 8th at 3 pm."). With a model configured
(``llm.provider: openai``) the model writes the sentence instead, from the transcript; if it
fails or is slow the rules' sentence is used, so a call always gets one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Literal, get_args

from slotline.agent.call.calllog import CallRecord
from slotline.agent.flow.model import BookingNode, EndCallNode, Flow, RescheduleNode
from slotline.agent.flow.table import edge_target, edges
from slotline.providers.base import ChatMessage, ChatModel, TextDelta
from slotline.providers.errors import ProviderError

log = logging.getLogger(__name__)

Outcome = Literal[
    "booked", "rescheduled", "cancelled", "transferred", "opted_out", "no_answer_given",
    "caller_hung_up", "failed", "completed",
]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
_YES = frozenset(("yes", "true"))
# The model writes one sentence; past this the call's end waits on it too long, and the rules'
# sentence is as useful.
MODEL_TIMEOUT_S = 8.0
_MODEL_MAX_CHARS = 400  # a "sentence" longer than this is not one: the rules' is used
_TRANSCRIPT_MAX_CHARS = 8000  # what the model reads of a long call (its start says most)
# Variables that are the engine's bookkeeping, not what the caller told us.
_INTERNAL = frozenset((
    "booking_success", "booking_error", "booking_id", "alternatives", "booked_start",
    "cancel_success", "opted_out",
))


@dataclass(frozen=True, slots=True)
class FlowShape:
    """What the rules need of a flow: each node's type, each ``end_call``'s reason, and which
    nodes a successful booking or reschedule leads to (before any other booking step)."""

    name: str
    node_types: Mapping[str, str]
    end_reasons: Mapping[str, str]
    after_booking: Mapping[str, str]  # node -> the booking action whose success reaches it
    after_reschedule: frozenset[str]


def flow_shape(flow: Flow) -> FlowShape:
    """The flow's ``FlowShape`` (computed once per flow; the flow's graph is small)."""
    nodes = flow.nodes
    after_booking: dict[str, str] = {}
    after_reschedule: set[str] = set()
    for node in nodes.values():
        if not isinstance(node, BookingNode | RescheduleNode):
            continue
        reached = _reached_from(flow, edge_target(node, "success"))
        if isinstance(node, RescheduleNode):
            after_reschedule |= reached
        else:
            for node_id in reached:
                after_booking.setdefault(node_id, node.action)
    return FlowShape(
        name=flow.name,
        node_types={node_id: node.type for node_id, node in nodes.items()},
        end_reasons={node_id: node.reason for node_id, node in nodes.items()
                     if isinstance(node, EndCallNode)},
        after_booking=after_booking,
        after_reschedule=frozenset(after_reschedule),
    )


def _reached_from(flow: Flow, start: str | None) -> set[str]:
    """Nodes reachable from ``start`` without entering another booking, reschedule or cancel
    step (past one of those, the call's outcome is that step's)."""
    seen: set[str] = set()
    todo = [start] if start is not None else []
    while todo:
        node_id = todo.pop()
        if node_id in seen or node_id not in flow.nodes:
            continue
        seen.add(node_id)
        node = flow.nodes[node_id]
        if node.type in {"booking", "reschedule", "cancel"} and node_id != start:
            continue
        todo.extend(edge.target for edge in edges(node))
    return seen


def classify(record: CallRecord, shape: FlowShape | None) -> Outcome:
    """The call's outcome by the module's rules (first that holds)."""
    found = record.variables
    node_type = shape.node_types.get(record.node, "") if shape is not None else ""
    if found.get("opted_out", "").lower() in _YES:
        return "opted_out"
    if found.get("cancel_success", "").lower() in _YES:
        return "cancelled"
    if found.get("booking_success", "").lower() in _YES or record.bookings:
        moved = shape is not None and record.node in shape.after_reschedule
        return "rescheduled" if moved and not record.bookings else "booked"
    if node_type == "transfer":
        return "transferred"
    if record.status == "failed":
        return "failed"
    if not any(turn.role == "caller" and turn.text.strip() for turn in record.turns):
        return "no_answer_given"
    if shape is not None and node_type != "end_call":
        return "caller_hung_up"
    return "completed"


def rule_summary(record: CallRecord, shape: FlowShape | None, outcome: Outcome) -> str:
    """One or two sentences from the flow, where the call ended and what was collected."""
    found = record.variables
    who = found.get("user_name", "").strip() or (
        "The callee" if record.direction == "outbound" else "The caller")
    when = _when(found.get("booked_date", ""), found.get("booked_time", ""))
    flow = record.flow.replace("_", " ") or "the"
    if outcome == "booked":
        action = shape.after_booking.get(record.node, "") if shape is not None else ""
        what = _with_article(action.replace("_", " ")) if action else "an appointment"
        return f"{who} booked {what}{' for ' + when if when else ''}.{_collected(found)}"
    if outcome == "rescheduled":
        return f"{who} moved their appointment{' to ' + when if when else ''}."
    if outcome == "cancelled":
        was = _when(found.get("cancelled_date", ""), found.get("cancelled_time", ""))
        return f"{who} cancelled their appointment{' on ' + was if was else ''}."
    if outcome == "opted_out":
        return f"{who} asked not to be called again; the number is on the do-not-call list."
    if outcome == "transferred":
        return f"{who} was transferred to a person from the {flow} call.{_collected(found)}"
    if outcome == "failed":
        cause = record.errors[-1]["message"] if record.errors else "an error"
        return f"The {flow} call with {_lower_first(who)} failed: {cause}.{_collected(found)}"
    if outcome == "no_answer_given":
        return f"{who} did not answer; the {flow} call ended without a reply."
    if outcome == "caller_hung_up":
        return (f"{who} hung up during the {flow} call (at {record.node or 'the start'})."
                f"{_collected(found)}")
    reason = shape.end_reasons.get(record.node, "completed") if shape is not None else "completed"
    ending = "" if reason == "completed" else f" ({reason.replace('-', ' ')})"
    return f"{who} finished the {flow} call{ending}.{_collected(found)}"


def _when(date: str, time: str) -> str:
    return f"{date} at {time}" if date and time else date or time


def _with_article(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text.startswith("The ") else text


def _collected(found: Mapping[str, str]) -> str:
    """" Collected: preferred date next tuesday." — what the caller told us, briefly."""
    shown = [f"{name.replace('_', ' ')} {value}" for name, value in found.items()
             if name not in _INTERNAL and name != "user_name" and not name.startswith("booked_")
             and not name.startswith("cancelled_") and value and len(value) <= 60][:4]
    return f" Collected: {'; '.join(shown)}." if shown else ""


@dataclass(frozen=True, slots=True)
class CallSummary:
    outcome: Outcome
    summary: str
    by: Literal["rules", "model"]


class Summarizer:
    """Outcome by rules; summary by ``model`` when there is one, else (or when it fails) by
    rules. One per server."""

    def __init__(self, model: ChatModel | None, *, timeout_s: float = MODEL_TIMEOUT_S) -> None:
        self._model = model
        self._timeout_s = timeout_s

    async def summarize(self, record: CallRecord, shape: FlowShape | None) -> CallSummary:
        outcome = classify(record, shape)
        rules = rule_summary(record, shape, outcome)
        if self._model is None or not record.turns:
            return CallSummary(outcome, rules, "rules")
        try:
            async with asyncio.timeout(self._timeout_s):
                said = await self._ask(record, outcome)
        except (ProviderError, TimeoutError) as exc:
            log.warning("call_sid=%s summary by the model failed (%s); using the rules'",
                        record.call_sid, type(exc).__name__)
            return CallSummary(outcome, rules, "rules")
        if not said or len(said) > _MODEL_MAX_CHARS:
            return CallSummary(outcome, rules, "rules")
        return CallSummary(outcome, said, "model")

    async def _ask(self, record: CallRecord, outcome: Outcome) -> str:
        assert self._model is not None
        lines = [f"{turn.role}: {turn.heard_text if turn.heard_text is not None else turn.text}"
                 for turn in record.turns if turn.text.strip()]
        transcript = "\n".join(lines)[:_TRANSCRIPT_MAX_CHARS]
        facts = ", ".join(f"{k}={v}" for k, v in record.variables.items() if v)
        messages = (
            ChatMessage("system", (
                "You write one-sentence notes about finished phone calls for a CRM. Answer "
                "with the sentence only: at most 30 words, the caller's name if known, and "
                "what was agreed, with dates and times as they were said.")),
            ChatMessage("user", (
                f"Call flow: {record.flow}\nOutcome: {outcome}\nCollected: {facts or 'nothing'}"
                f"\nTranscript:\n{transcript}")),
        )
        parts: list[str] = []
        async with aclosing(self._model.stream(messages)) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
        return " ".join("".join(parts).split())
