"""The line a booking's success will say, known while the caller is still answering.

At a read-back ("I can book Tuesday at 10 am. Shall I go ahead?"), or at a lone offer booked on
a yes, the caller's likely answer is a yes, and what the agent says once the booking is made
("You're all set for Tuesday, December 8th at 10 am.") depends only on the time read back. The
responder hands that line to the call's voice (``Prepare``) so that it is synthesized while the
caller answers, and the confirmation plays the moment the booking is made instead of a TTS
round trip later.

Safe by construction, like ``agent.flow.anticipate``: the question is put to a *fork* of the
engine (``FlowEngine.fork``) and only a sentence comes out; nothing is booked, nothing is said.
A line that needs what only the real booking knows (its ``booking_id``) is not foreseen. When
the caller says anything else, or the booking goes otherwise, the prepared audio is never used.
"""

from __future__ import annotations

from slotline.agent.flow.engine import FlowEngine
from slotline.agent.flow.messages import (
    BookingFinished,
    CallerSaid,
    RunBooking,
    RunReschedule,
    Say,
)
from slotline.agent.flow.state import Phase
from slotline.providers.errors import ProtocolError

# Where a yes may book: the read-back, and offers (a lone offer is booked on a yes)
_BOOKS_ON_YES = frozenset((Phase.CONFIRM, Phase.CHOOSE))
# Stands in for the booking's id, which only the real booking knows: a line holding it is not
# foreseen
_UNKNOWN_ID = "\x00booking-id\x00"


def line_after_yes(engine: FlowEngine) -> str | None:
    """What the agent says first once a yes to the current question has booked, or None when a
    yes would not book (or the line cannot be known before the booking)."""
    if engine.phase not in _BOOKS_ON_YES:
        return None
    twin = engine.fork()
    try:
        run = next((a for a in twin.handle(CallerSaid("yes"))
                    if isinstance(a, RunBooking | RunReschedule)), None)
        if run is None or twin.candidate is None:
            return None
        done = BookingFinished(run.node_id, True, twin.candidate, booking_id=_UNKNOWN_ID)
        said = next((a.text for a in twin.handle(done) if isinstance(a, Say)), None)
    except ProtocolError:  # the flow would not take these events here
        return None
    if said is None or _UNKNOWN_ID in said:
        return None
    return said
