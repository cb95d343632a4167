"""Flows: the Flow Designer model of a call, checked, drawn and run.

- :mod:`~agent.flow.model` — flow files as typed frozen models; ``flow.schema.json`` is their schema
- :mod:`~agent.flow.validate` — every problem of a flow, with node id and field; loading
- :mod:`~agent.flow.table` — the edges the engine follows, the validator checks, the graph draws
- :mod:`~agent.flow.engine` — the pure, table-driven engine: ``handle(event) -> list[action]``
- :mod:`~agent.flow.messages` — its events and actions, and the booking protocol
- :mod:`~agent.flow.responder` — ``FlowResponder``: the engine behind the call session's seam
- :mod:`~agent.flow.llm`, :mod:`~agent.flow.llm_steps` — the model's jobs: extraction when the
  rules read nothing, free answers, branch conditions described in words
- :mod:`~agent.flow.graph`, :mod:`~agent.flow.cli` — Mermaid/DOT and the ``slotline flow`` commands
"""

from slotline.agent.flow.engine import FlowEngine, transition_table
from slotline.agent.flow.llm import LlmStats
from slotline.agent.flow.messages import (
    AskModel,
    Attendee,
    AvailabilityReady,
    BookingFinished,
    CallWebhook,
    CancelFinished,
    CheckAvailability,
    ConditionsJudged,
    FlowAction,
    FlowEvent,
    JudgeConditions,
    Lookup,
    ModelAnswered,
    Preferences,
    RunBooking,
    RunCancel,
    RunReschedule,
    SendSms,
    SlotOffer,
    Transfer,
    Wanted,
    WebhookFinished,
)
from slotline.agent.flow.model import Flow
from slotline.agent.flow.responder import BookingRunner, CallControl, FlowResponder, WebhookRunner
from slotline.agent.flow.state import Phase
from slotline.agent.flow.validate import (
    FlowInvalid,
    FlowProblem,
    llm_warnings,
    load_flow,
    parse_flow,
    validate,
)

__all__ = [
    "AskModel",
    "Attendee",
    "AvailabilityReady",
    "BookingFinished",
    "BookingRunner",
    "CallControl",
    "CallWebhook",
    "CancelFinished",
    "CheckAvailability",
    "ConditionsJudged",
    "Flow",
    "FlowAction",
    "FlowEngine",
    "FlowEvent",
    "FlowInvalid",
    "FlowProblem",
    "FlowResponder",
    "JudgeConditions",
    "LlmStats",
    "Lookup",
    "ModelAnswered",
    "Phase",
    "Preferences",
    "RunBooking",
    "RunCancel",
    "RunReschedule",
    "SendSms",
    "SlotOffer",
    "Transfer",
    "Wanted",
    "WebhookFinished",
    "WebhookRunner",
    "llm_warnings",
    "load_flow",
    "parse_flow",
    "transition_table",
    "validate",
]
