"""What one dialled attempt came to, and whether its contact is called again — no I/O.

Two signals settle an answered call: Twilio's final status (``completed``, via the status
callback or ``GET Calls/{sid}``) and the end of its media session (the conversation's own
account: did it end normally, did it book, did the callee opt out). They arrive in either
order and from different processes, so the store settles an attempt when both are in
(``ready``), or when Twilio's final status has waited ``SESSION_GRACE_S`` for the session (a
media stream that never connected; a server killed mid-call). A session's end alone never
settles: the call may go on without its stream (a transfer), so the dialer asks Twilio.

The outcome, first rule that holds::

    the dial itself failed (REST error)          failed       reason: the error
    the callee asked not to be called            do_not_call
    a booking was made on the call               booked
    busy / no-answer                             busy / no_answer
    failed / canceled                            failed
    AMD said machine (or fax)                    voicemail    reason: left or hung up
    answered, the conversation ended normally    declined
    answered, the conversation broke or never
    started (no stream; server died)             failed       reason: says which

``no_answer``, ``busy`` and ``failed`` are tried again after ``retry_after_s``, doubling each
time (capped at ``MAX_BACKOFF_S``), until the contact has had ``max_attempts``; every other
outcome is final.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, get_args

Outcome = Literal[
    "pending", "booked", "declined", "no_answer", "busy", "voicemail", "failed",
    "do_not_call", "invalid",
]
OUTCOMES: Final = get_args(Outcome)
RETRIED: Final = frozenset({"no_answer", "busy", "failed"})
# Twilio's CallStatus values after which nothing more happens to a call
FINAL_STATUSES: Final = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
# How long one settling signal waits for the other (see the module doc): a stream that is
# coming connects within a second or two of the answer; a session outlives Twilio's
# `completed` only by its own teardown.
SESSION_GRACE_S: Final = 30.0
MAX_BACKOFF_S: Final = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class AttemptFacts:
    """Everything known of one attempt when it is settled."""

    call_status: str  # Twilio's final CallStatus; "" if it never came
    answered: bool  # the call reached in-progress
    answered_by: str = ""  # the async AMD verdict ("" if none came)
    machine_action: str = ""  # what was done on a machine verdict: hangup | voicemail
    booking_id: str | None = None  # a booking made on this call
    opted_out: bool = False  # the callee asked not to be called again, on this call
    session_status: str = ""  # the media session's end: completed | failed | "" (none)
    dial_error: str = ""  # the create request failed: why


def is_machine(answered_by: str) -> bool:
    return answered_by.startswith("machine") or answered_by == "fax"


def classify(facts: AttemptFacts) -> tuple[Outcome, str]:
    """The attempt's outcome and a short reason (see the module doc's table)."""
    if facts.dial_error:
        return "failed", facts.dial_error
    if facts.opted_out:
        return "do_not_call", "asked not to be called again"
    if facts.booking_id:
        return "booked", ""
    status = facts.call_status
    if status == "busy":
        return "busy", ""
    if status == "no-answer":
        return "no_answer", ""
    if status in ("failed", "canceled"):
        return "failed", f"Twilio ended the call as {status}"
    if is_machine(facts.answered_by):
        if facts.machine_action == "voicemail":
            if facts.session_status == "completed":
                return "voicemail", "voicemail left"
            return "voicemail", "answering machine; the message did not finish"
        return "voicemail", f"answering machine ({facts.answered_by}); hung up"
    if not facts.answered:
        return "no_answer", "never answered"
    if facts.session_status == "completed":
        return "declined", ""
    if facts.session_status == "failed":
        return "failed", "the conversation failed"
    return "failed", "answered, but the conversation never finished (no media stream, or the "\
        "server stopped)"


def next_try(
    outcome: Outcome, attempts: int, *, max_attempts: int, retry_after_s: float, now: datetime
) -> datetime | None:
    """When the contact is called again after ``attempts`` attempts; None: never."""
    if outcome not in RETRIED or attempts >= max_attempts:
        return None
    backoff_s = min(retry_after_s * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S)
    return now + timedelta(seconds=backoff_s)


def ready(
    *, final: bool, answered: bool, session_ended: bool, waited_s: float
) -> bool:
    """Whether an attempt can be settled now (see the module doc)."""
    if not final:  # the call may go on without its stream (a transfer): ask Twilio
        return False
    if not answered or session_ended:
        return True
    return waited_s >= SESSION_GRACE_S
