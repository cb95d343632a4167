"""Which messages a booking gets, as rows of ``reminder_jobs``: one job per (message, channel).

A job's kind names the message, the channel and the appointment time it was written for:
``"24h:sms@2026-06-02T14:00:00+00:00"``, ``"confirmation:email@..."``. That one string makes
every guarantee fall out of the table's ``UNIQUE (booking_id, kind)``:

- confirming a booking twice schedules nothing new, so nothing is sent twice;
- a booking moved to another time gets fresh jobs (new kinds), and a job written for the old time
  is recognised as stale when it comes due (its time no longer matches the booking's);
- SMS and e-mail are separate jobs, so a failing channel is retried without re-sending the other.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from slotline.agent.notify.policy import CONFIRMATION, NotificationPolicy, Purpose
from slotline.agent.store import BookingRecord

Channel = Literal["sms", "email"]
CHANNELS: tuple[Channel, ...] = ("sms", "email")
_CHANNEL_NAMES = {"sms": "SMS", "email": "e-mail"}


@dataclass(frozen=True, slots=True)
class JobKind:
    name: str  # CONFIRMATION or a reminder's kind ("24h")
    channel: Channel
    start: datetime  # the appointment time the message was scheduled for

    @property
    def purpose(self) -> Purpose:
        return "confirmation" if self.name == CONFIRMATION else "reminder"

    def encode(self) -> str:
        return f"{self.name}:{self.channel}@{self.start.astimezone(UTC).isoformat()}"

    @classmethod
    def parse(cls, text: str) -> JobKind | None:
        """The kind of a job this module scheduled; None for anything else."""
        head, at, when = text.partition("@")
        name, colon, channel = head.partition(":")
        if not (at and colon and name) or channel not in CHANNELS:
            return None
        try:
            start = datetime.fromisoformat(when)
        except ValueError:
            return None
        if start.tzinfo is None:
            return None
        return cls(name, "sms" if channel == "sms" else "email", start)


@dataclass(frozen=True, slots=True)
class Plan:
    """What ``Notifier.confirm`` writes for one booking."""

    due: dict[str, datetime]  # job kind → due time (confirmations: now)
    confirmations: tuple[str, ...]  # the confirmation kinds among them, sent straight away
    keep: frozenset[str]  # every kind of the booking's current time (others are stale)
    skipped: tuple[tuple[Channel, str], ...]  # channels not used, and why


def plan(
    booking: BookingRecord,
    policy: NotificationPolicy,
    now: datetime,
    senders: Collection[Channel],
) -> Plan:
    """The jobs ``booking`` gets under ``policy`` at ``now``: a confirmation per usable channel
    and the reminders still ahead (a reminder whose time has passed is not scheduled)."""
    names = (CONFIRMATION, *(reminder.kind for reminder in policy.reminders))
    keep = frozenset(
        JobKind(name, channel, booking.start).encode() for name in names for channel in CHANNELS
    )
    due: dict[str, datetime] = {}
    confirmations: list[str] = []
    skipped: list[tuple[Channel, str]] = []
    for channel in CHANNELS:
        reason = unusable(channel, booking, policy, senders)
        if reason:
            skipped.append((channel, reason))
            continue
        kind = JobKind(CONFIRMATION, channel, booking.start).encode()
        due[kind] = now
        confirmations.append(kind)
        for reminder in policy.reminders:
            due_at = booking.start - reminder.before
            if due_at > now:
                due[JobKind(reminder.kind, channel, booking.start).encode()] = due_at
    return Plan(due, tuple(confirmations), keep, tuple(skipped))


def unusable(
    channel: Channel,
    booking: BookingRecord,
    policy: NotificationPolicy,
    senders: Collection[Channel],
) -> str:
    """Why ``booking`` gets nothing on ``channel`` ("" when it can). Never names the address."""
    label = _CHANNEL_NAMES[channel]
    if not (policy.sms if channel == "sms" else policy.email):
        return f"{label} is off for this booking action"
    if channel not in senders:
        return f"no {label} sender is configured"
    if channel == "sms" and not booking.attendee.phone:
        return "the attendee gave no phone number"
    if channel == "email" and not booking.attendee.email:
        return "the attendee gave no e-mail address"
    return ""
