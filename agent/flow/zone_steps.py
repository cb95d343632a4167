"""The caller says their time zone, at any question: "I'm in London", "what's that in Pacific?".

The engine runs :func:`providers.llm.rules.timezones.zone_stated` on every answer (before the
node reads it, after the do-not-call request and the flow's intents), like a correction that may
come at any time. What a stated zone does depends on where the agent is listening:

- at a question (``conversation``): ``user_timezone`` becomes the zone; when the rest of the
  utterance answers the question ("tomorrow at 2 pm Pacific time") the answer is read in the new
  zone and the flow goes on; otherwise "Got it, Pacific time." and the question again;
- while offering times or asking "shall I book …?": "what time is that in London?" (asked) says
  the same times again on London's clock; "I'm in California" (told) searches again with the
  caller's day and time read in their zone ("2 pm" was 2 pm *there*), and the offer is spoken in
  it, naming the business's clock beside it (:mod:`agent.flow.booking_steps`).

A node that itself collects ``user_timezone`` reads its answer as usual: the engine skips this.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from types import MappingProxyType

from slotline.agent.booking.speech import speak_clock, speak_date, spoken_zone
from slotline.agent.booking.zones import load_zone
from slotline.agent.flow import booking_steps, steps
from slotline.agent.flow.messages import (
    CallerSaid,
    CheckAvailability,
    FlowAction,
    Say,
    SlotOffer,
)
from slotline.agent.flow.model import BookingNode, ConversationNode, Node, RescheduleNode
from slotline.agent.flow.state import Ctx, Phase, Step
from slotline.providers.llm.rules.timezones import ZoneStatement

ZONE_VARIABLE = "user_timezone"


def zone_heard(ctx: Ctx, node: Node, phase: Phase, heard: ZoneStatement) -> Step | None:
    """What a zone stated in ``phase`` at ``node`` does (see the module docstring); None when
    the node reads the utterance itself."""
    moved = in_zone(ctx, heard.zone)
    variables = {ZONE_VARIABLE: heard.zone}
    if isinstance(node, ConversationNode):
        if node.collect == ZONE_VARIABLE or phase is not Phase.ANSWER:
            return None
        return _at_question(moved, node, heard, variables)
    if not isinstance(node, BookingNode | RescheduleNode) or not ctx.offers:
        return None
    if heard.asked:
        offers = tuple(_spoken_in(offer, heard.zone, ctx.now) for offer in ctx.offers)
        if phase is Phase.CONFIRM and ctx.candidate is not None:
            candidate = offers[ctx.offers.index(ctx.candidate)]
            others = tuple(o for o in offers if o != candidate)
            step = booking_steps.ask_confirm(moved, candidate, others)
        else:
            step = booking_steps.offer_times(moved, offers, f"In {spoken_zone(heard.zone)} time,")
        return dataclasses.replace(step, variables=variables)
    check = CheckAvailability(ctx.node_id, node.action, booking_steps.preferences(moved),
                              booking_steps.booking_lookup(moved, node))
    return Step((_got_it(heard.zone), check), variables=variables, phase=Phase.CHECKING)


def in_zone(ctx: Ctx, zone: str) -> Ctx:
    """``ctx`` as it reads once the caller's zone is ``zone``."""
    variables = MappingProxyType({**ctx.variables, ZONE_VARIABLE: zone})
    return dataclasses.replace(ctx, timezone=zone, variables=variables)


def _at_question(
    ctx: Ctx, node: ConversationNode, heard: ZoneStatement, variables: dict[str, str]
) -> Step:
    if heard.rest:
        step = steps.answer(ctx, node, CallerSaid(heard.rest))
        if step.edge not in (None, "fallback") or step.phase is Phase.THINKING:
            return dataclasses.replace(step, variables={**variables, **step.variables})
    again: tuple[FlowAction, ...] = (_got_it(heard.zone), *steps.said(ctx, node.say),
                                     steps.listen_for(ctx, node))
    return Step(again, variables=variables, phase=Phase.ANSWER, attempts=ctx.attempts,
                questions=ctx.questions)


def _got_it(zone: str) -> Say:
    return Say(f"Got it, {spoken_zone(zone)} time.")


def _spoken_in(offer: SlotOffer, zone: str, now: datetime) -> SlotOffer:
    """The same instant on ``zone``'s clock."""
    tz = load_zone(zone)
    local = offer.local_start.astimezone(tz)
    return SlotOffer(local.isoformat(), speak_date(local.date(), now.astimezone(tz).date()),
                     speak_clock(local))
