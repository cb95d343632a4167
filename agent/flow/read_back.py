"""The e-mail address at the booking's read-back: what the caller said must reach the booking,
or be asked again, never replaced.

Addresses heard by voice are often wrong (a probe read 2 of 12 spelled e-mails exactly), so an
address the caller gave at a question (``Ctx.unread``, set by ``steps.collected``) is read back
with the slot before the booking uses it — one question, not two, so a caller who gave none
hears nothing more::

    I can book Tuesday, December 8th at 3 pm, and send the details to
    s a r a h m i l l e r at outlook dot com. Shall I go ahead?

    "yes"                                   -> booked with it (the address is confirmed)
    "no, it's sarah miller at gmail dot com" -> that address is read back instead
    "no, the email is wrong"                 -> EMAIL: "What's the right email address?"
    "no"                                     -> AMEND: "Should I change the time, or the email
                                                address?" ("the time": the other offers, as a
                                                "no" does without an address)

At EMAIL a new address is read back again; "no thanks" books without one; an address not
understood ``max_attempts`` times is dropped ("I'll book it without an email address"), never
kept unread. A booking node without ``confirm`` still asks when there is an address to read
back. The steps here only build what is said and listened for; ``booking_steps`` decides.

Where the address is used before any booking (consultation's deposit request goes to it), the
question that asks for it reads it back on its own (``read_back: true`` on the conversation
node, ``steps.verify_answer``): "That's s a r a h m i l l e r at outlook dot com. Is that
right?" — yes goes on (and the booking does not read it again), another address is read back
instead, "no" asks the question again with the address cleared.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from slotline.agent.booking.speech import speak_email
from slotline.agent.flow.corrections import correction_hints
from slotline.agent.flow.messages import Say
from slotline.agent.flow.state import Ctx, Phase, Step
from slotline.providers.llm import rules

EMAIL = "user_email"  # the variable the booking's attendee takes the address from
EMAIL_VARIABLES = frozenset((EMAIL,))
TIME, ADDRESS = "time", "email"
# What a "no" to a read-back with an address may be about.
AMEND_CHOICES = (
    f"{TIME}|the time|time|the day|day|the date|date|the appointment|both",
    f"{ADDRESS}|the email|email|the email address|email address|the address|address|"
    "the e-mail|e-mail",
)
WHICH = "Should I change the time, or the email address?"
WHICH_AGAIN = "Sorry, is it the time or the email address you'd like to change?"
ASK_EMAIL = "What's the right email address? Or say no thanks."
ASK_EMAIL_AGAIN = "Sorry, could you say the email address again? Or say no thanks."
DROPPED = "I'll book it without an email address."


def email_to_read(ctx: Ctx) -> str:
    """The address to read back, as said ("j o h n at gmail dot com"), or "" when there is
    none the caller gave and has not yet confirmed."""
    address = ctx.var(EMAIL)
    return speak_email(address) if address and EMAIL in ctx.unread else ""


def read_back_address(ctx: Ctx) -> str:
    """The address being read back ("" when none is)."""
    return ctx.var(EMAIL) if EMAIL in ctx.unread else ""


def confirm_question(when: str, email_spoken: str = "") -> str:
    """The read-back before booking: "I can book <when>. Shall I go ahead?", with the address
    (as ``speak_email`` says it) when there is one to confirm."""
    if not email_spoken:
        return f"I can book {when}. Shall I go ahead?"
    return f"I can book {when}, and send the details to {email_spoken}. Shall I go ahead?"


def verify_question(email_spoken: str) -> str:
    """A conversation node's read-back (``read_back: true``): "That's <address>. Is that
    right?"."""
    return f"That's {email_spoken}. Is that right?"


def with_email(ctx: Ctx, address: str) -> Ctx:
    """``ctx`` as it reads once the caller gave ``address`` ("" = none), not yet read back."""
    variables = MappingProxyType({**ctx.variables, EMAIL: address})
    unread = ctx.unread | EMAIL_VARIABLES if address else ctx.unread - EMAIL_VARIABLES
    return dataclasses.replace(ctx, variables=variables, unread=unread)


def ask_which(ctx: Ctx, text: str, attempts: int = 0) -> Step:
    """Ask whether the time or the address is to change (AMEND), keeping the offers."""
    choices = rules.hints("choice", choices=AMEND_CHOICES)
    listen = ctx.listen(choices, rules.hints("email"), correction_hints()).expecting("choice")
    return Step((Say(text), listen), phase=Phase.AMEND, attempts=attempts, offers=ctx.offers,
                candidate=ctx.candidate)


def ask_email(ctx: Ctx, text: str, attempts: int = 0) -> Step:
    """Ask for the address again (EMAIL), keeping the offers."""
    listen = ctx.listen(rules.hints("email")).expecting("email")
    return Step((Say(text), listen), phase=Phase.EMAIL, attempts=attempts, offers=ctx.offers,
                candidate=ctx.candidate)
