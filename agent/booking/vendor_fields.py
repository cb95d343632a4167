"""Before any call: every field a calendar's vendor requires has a flow variable to fill it.

A Cal.com event type may ask its own required questions (``bookingFieldsResponses``); Cal.com
refuses a booking that leaves one unanswered, which a caller would only learn at the end of the
call. So at start-up, once the adapters have read their vendor's settings
(``providers.calendars.vendor``), each flow is checked: for every booking or reschedule node,
every calendar its booking action pools, every required vendor field must be answered by a
variable the flow can set — collected from the caller, a default in the flow's ``variables``
(a call or campaign parameter of that name then fills it), or returned by a webhook. A missing
one is a ``ConfigError`` naming the flow, the node, the calendar, the field and the variable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from slotline.agent.config_models import Settings
from slotline.agent.flow.model import BookingNode, Flow, RescheduleNode
from slotline.agent.flow.table import edge_may_set
from slotline.providers.calendars.vendor import VendorSettingsReader
from slotline.providers.errors import ConfigError

_EDGE_KEYS = ("next", "success", "failure", "fallback", "default", "goto")


def flow_variables(flow: Flow) -> frozenset[str]:
    """Every variable ``flow`` can set somewhere, and the ones every call starts with."""
    found = set(flow.initial_variables())
    for node in flow.nodes.values():
        for key in _EDGE_KEYS:
            found |= edge_may_set(node, key)
    return frozenset(found)


def missing_variables(
    flow: Flow, settings: Settings, adapters: Mapping[str, object]
) -> list[str]:
    """One line per required vendor field ``flow`` cannot fill (empty: all are filled)."""
    known = flow_variables(flow)
    problems: list[str] = []
    for node_id, node in flow.nodes.items():
        if not isinstance(node, BookingNode | RescheduleNode):
            continue
        action = settings.booking_actions.get(node.action) if node.action else None
        names: Iterable[str] = action.calendars if action is not None else ()
        if isinstance(node, RescheduleNode) and not node.action:
            names = sorted({c for a in settings.booking_actions.values() for c in a.calendars})
        for calendar in names:
            adapter = adapters.get(calendar)
            if not isinstance(adapter, VendorSettingsReader):
                continue
            for field, variable in sorted(adapter.required_variables().items()):
                if variable not in known:
                    problems.append(
                        f"node {node_id!r} books on calendar {calendar!r}, whose vendor requires "
                        f"field {field!r}: no flow variable {variable!r} (collect it, give it a "
                        f"default in `variables`, or map the field with "
                        f"calendars.{calendar}.fields)"
                    )
    return problems


def check_flows(
    flows: Iterable[Flow], settings: Settings, adapters: Mapping[str, object]
) -> None:
    """Raise a ``ConfigError`` listing every required vendor field no flow variable fills."""
    for flow in flows:
        problems = missing_variables(flow, settings, adapters)
        if problems:
            raise ConfigError(f"flow {flow.name}", "booking fields", "; ".join(problems))
