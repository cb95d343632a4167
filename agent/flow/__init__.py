"""Flows: the Flow Designer model of a call, checked, drawn and run.

- :mod:`~agent.flow.model` — flow files as typed frozen models; ``flow.schema.json`` is their schema
- :mod:`~agent.flow.validate` — every problem of a flow, with node id and field; loading
- :mod:`~agent.flow.table` — the edges the engine follows, the validator checks, the graph draws
- :mod:`~agent.flow.engine` — the pure, table-driven engine: ``handle(event) -> list[action]``
- :mod:`~agent.flow.messages` — its events and actions, and the booking protocol
- :mod:`~agent.flow.responder` — ``FlowResponder``: the engine behind the call session's seam
- :mod:`~agent.flow.graph`, :mod:`~agent.flow.cli` — Mermaid/DOT and the ``slotline flow`` commands
"""

from agent.flow.engine import FlowEngine, transition_table
from agent.flow.messages import (
    Attendee,
    AvailabilityReady,
    BookingFinished,
    CallWebhook,
    CancelFinished,
    CheckAvailability,
    FlowAction,
    FlowEvent,
    Lookup,
    Preferences,
    RunBooking,
    RunCancel,
    RunReschedule,
    SendSms,
    SlotOffer,
    Transfer,
    WebhookFinished,
)
from agent.flow.model import Flow
from agent.flow.responder import BookingRunner, CallControl, FlowResponder, WebhookRunner
from agent.flow.state import Phase
from agent.flow.validate import FlowInvalid, FlowProblem, load_flow, parse_flow, validate

__all__ = [
    "Attendee",
    "AvailabilityReady",
    "BookingFinished",
    "BookingRunner",
    "CallControl",
    "CallWebhook",
    "CancelFinished",
    "CheckAvailability",
    "Flow",
    "FlowAction",
    "FlowEngine",
    "FlowEvent",
    "FlowInvalid",
    "FlowProblem",
    "FlowResponder",
    "Lookup",
    "Phase",
    "Preferences",
    "RunBooking",
    "RunCancel",
    "RunReschedule",
    "SendSms",
    "SlotOffer",
    "Transfer",
    "WebhookFinished",
    "WebhookRunner",
    "load_flow",
    "parse_flow",
    "transition_table",
    "validate",
]
