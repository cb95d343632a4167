"""The flow's edges and outputs: the one table the engine follows, the validator checks and
the graph is drawn from.

An edge is a node field naming another node. Which fields a node type has as edges, and which
variables each edge guarantees are set when it is taken, are fixed here::

    greeting, message, send_sms   next
    conversation                  next (sets `collect`), fallback (no answer understood)
    branch                        if:<i> per condition (its `goto`), default
    booking, reschedule           success (booking outputs), failure
    cancel                        success (cancel outputs), failure
    webhook                       success (the `receive` variables), failure
    jump                          goto
    transfer, end_call            (none: the call leaves the flow)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from slotline.agent.flow.model import (
    BookingNode,
    BranchNode,
    CancelNode,
    Condition,
    ConversationNode,
    Node,
    RescheduleNode,
    WebhookNode,
)

EDGE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "greeting": ("next",),
    "message": ("next",),
    "conversation": ("next", "fallback"),
    "branch": ("default",),  # plus one "if:<i>" edge per condition, before it
    "booking": ("success", "failure"),
    "reschedule": ("success", "failure"),
    "cancel": ("success", "failure"),
    "jump": ("goto",),
    "transfer": (),
    "send_sms": ("next",),
    "webhook": ("success", "failure"),
    "end_call": (),
}

BOOKED_OUTPUTS = frozenset(
    ("booking_success", "booked_date", "booked_time", "booked_start", "booking_id", "alternatives")
)
NOT_BOOKED_OUTPUTS = frozenset(("booking_success", "alternatives", "booking_error"))
CANCELLED_OUTPUTS = frozenset(("cancel_success", "cancelled_date", "cancelled_time", "booking_id"))
NOT_CANCELLED_OUTPUTS = frozenset(("cancel_success",))

WAITS_FOR_CALLER = frozenset(("conversation", "booking", "reschedule"))
"""Node types where the caller speaks (and so where a global intent can fire)."""
INSTANT = frozenset(("greeting", "message", "branch", "jump", "send_sms"))
"""Node types that pass straight on: a cycle of only these would never wait for anything."""


@dataclass(frozen=True, slots=True)
class Edge:
    key: str  # "next", "fallback", "success", "failure", "goto", "default", "if:0", …
    label: str  # for diagrams
    target: str


def edges(node: Node) -> tuple[Edge, ...]:
    """The node's edges that are set, in table order."""
    found: list[Edge] = []
    if isinstance(node, BranchNode):
        for index, condition in enumerate(node.conditions):
            found.append(Edge(f"if:{index}", condition_label(condition), condition.goto))
    for name in EDGE_FIELDS[node.type]:
        target = getattr(node, name)
        if target is not None:
            found.append(Edge(name, name, target))
    return tuple(found)


def edge_target(node: Node, key: str) -> str | None:
    """Where the edge ``key`` of ``node`` leads; None when the node does not set that edge."""
    for edge in edges(node):
        if edge.key == key:
            return edge.target
    return None


def edge_outputs(node: Node, key: str) -> frozenset[str]:
    """The variables the engine has set by the time it takes the edge ``key``."""
    if isinstance(node, ConversationNode):
        collects_surely = not node.optional and node.or_collect is None
        return frozenset((node.collect,)) if key == "next" and collects_surely else frozenset()
    if isinstance(node, BookingNode | RescheduleNode):
        return BOOKED_OUTPUTS if key == "success" else NOT_BOOKED_OUTPUTS
    if isinstance(node, CancelNode):
        return CANCELLED_OUTPUTS if key == "success" else NOT_CANCELLED_OUTPUTS
    if isinstance(node, WebhookNode) and key == "success":
        return frozenset(node.receive)
    return frozenset()


def edge_may_set(node: Node, key: str) -> frozenset[str]:
    """The variables that may (not must) be set when the edge ``key`` is taken."""
    if isinstance(node, ConversationNode) and key == "next":
        also = (node.or_collect.variable,) if node.or_collect is not None else ()
        return frozenset((node.collect, *also))
    return edge_outputs(node, key)


def condition_label(condition: Condition) -> str:
    """ "service = haircut", "user_email is set", "“sounds like a customer”" — a condition as
    a diagram label (a described one quoted, and cut at 40 characters)."""
    if condition.when is not None:
        when = condition.when if len(condition.when) <= 40 else condition.when[:39] + "…"
        return f"“{when}”"
    test = condition.test
    if test == "is_set":
        return f"{condition.variable} is set"
    if test == "is_not_set":
        return f"{condition.variable} is not set"
    if test == "in":
        return f"{condition.variable} in {', '.join(condition.in_ or ())}"
    symbol = "=" if test == "equals" else "≠"
    value = condition.equals if test == "equals" else condition.not_equals
    return f"{condition.variable} {symbol} {value}"
