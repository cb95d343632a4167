"""Booking confirmations (sent at once) and the delivery of every notification job.

``confirm`` is called from a call right after a booking: it writes the booking's jobs (see
``agent.notify.jobs``), then claims its confirmation jobs and sends them itself, so the caller
gets the text while still on the line; the reminders wait for ``ReminderScheduler``. Both go
through ``deliver``, under the store's claim: a job is sent by the one worker holding it and
marked sent, so a second ``confirm`` or a second scheduler finds nothing to send.

Nothing here raises into the call: failures come back in a ``ConfirmResult`` and are logged
without phone numbers or addresses. A channel failure that may pass (``ProviderError.retryable``,
a timeout) puts the job back with a growing delay, a bounded number of times; any other is
given up with its reason kept in the job's ``last_error``.

A send that times out may still have been delivered by the vendor; it is retried anyway (a
duplicate reminder is better than none), as is a send whose worker died before ``mark_sent``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from slotline.agent.logs import mask
from slotline.agent.notify.invite import invitation_for
from slotline.agent.notify.jobs import CHANNELS, Channel, JobKind, plan, unusable
from slotline.agent.notify.policy import NotificationPolicy, template_values
from slotline.agent.store import BookingRecord, ReminderJob, Store, utc_now
from slotline.providers.errors import ProviderError
from slotline.providers.notify.base import EmailSender, InvitationSender, SmsSender

logger = logging.getLogger(__name__)

Outcome = Literal["sent", "retrying", "failed", "skipped", "already"]
PolicyLookup = Callable[[str], NotificationPolicy | None]  # booking action → its policy

# Longer than any send (``send_timeout_s``): a worker still sending keeps its claim.
DEFAULT_LEASE_S = 300.0
# An SMS or SMTP hand-over takes well under a second; 20 s covers a slow relay.
DEFAULT_SEND_TIMEOUT_S = 20.0
# Waits after the 1st, 2nd, 3rd failed attempt: a vendor outage of up to ~40 minutes is ridden
# out; then the job is given up (4 attempts in all).
DEFAULT_RETRY_DELAYS_S = (60.0, 300.0, 1800.0)
_MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one message. ``detail``: the vendor's id when sent, else why (no PII)."""

    booking_id: str
    kind: str  # "confirmation" or a reminder's kind ("24h")
    channel: Channel | None  # None: not a job this module scheduled
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ConfirmResult:
    booking_id: str
    deliveries: tuple[Delivery, ...] = ()
    reminders: tuple[str, ...] = ()  # reminders now scheduled, "24h:sms"
    error: str = ""  # why nothing could be done (no such booking, store down...)

    @property
    def sent(self) -> tuple[Channel, ...]:
        return tuple(
            item.channel
            for item in self.deliveries
            if item.outcome == "sent" and item.channel is not None
        )


class Notifier:
    """Sends a booking's notifications over the channels given (None = that channel is off)."""

    def __init__(
        self,
        store: Store,
        sms: SmsSender | None = None,
        email: EmailSender | None = None,
        clock: Callable[[], datetime] = utc_now,
        *,
        worker_id: str = "",
        lease_s: float = DEFAULT_LEASE_S,
        send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S,
        retry_delays_s: Sequence[float] = DEFAULT_RETRY_DELAYS_S,
    ) -> None:
        if not 0 < send_timeout_s < lease_s:
            raise ValueError("send_timeout_s must be positive and shorter than lease_s")
        self.store = store
        self._sms = sms
        self._email = email
        self._clock = clock
        self.worker_id = worker_id or f"notifier-{uuid.uuid4().hex[:12]}"
        self.lease_s = lease_s
        self.send_timeout_s = send_timeout_s
        self._retry_delays_s = tuple(retry_delays_s)

    @property
    def channels(self) -> tuple[Channel, ...]:
        """The channels with a sender."""
        senders = {"sms": self._sms, "email": self._email}
        return tuple(channel for channel in CHANNELS if senders[channel] is not None)

    async def confirm(self, booking_id: str, policy: NotificationPolicy) -> ConfirmResult:
        """Schedule the booking's confirmation and reminders for its current time and send the
        confirmation now. Calling it again sends nothing twice; calling it after the booking
        moved drops the old time's pending jobs and confirms the new time."""
        try:
            return await self._confirm(booking_id, policy)
        except Exception as error:  # the store failed: the call goes on, the booking stands
            logger.warning(
                "booking %s: confirmation not sent: %s", booking_id, describe_error(error)
            )
            return ConfirmResult(booking_id, error=describe_error(error))

    async def rescheduled(self, booking_id: str, policy: NotificationPolicy) -> ConfirmResult:
        """After a booking moved (same id): ``confirm`` its new time."""
        return await self.confirm(booking_id, policy)

    async def cancelled(self, booking_id: str) -> int:
        """After a booking was cancelled: drop its pending jobs; returns how many. (The
        scheduler also skips jobs of cancelled bookings, so this is tidiness, not safety.)"""
        return await self.store.reminders.drop_unsent(booking_id)

    async def _confirm(self, booking_id: str, policy: NotificationPolicy) -> ConfirmResult:
        booking = await self.store.bookings.get(booking_id)
        if booking is None:
            return ConfirmResult(booking_id, error="no such booking")
        if booking.status != "confirmed":
            return ConfirmResult(booking_id, error=f"the booking is {booking.status}")
        now = self._clock()
        if booking.start <= now:
            return ConfirmResult(booking_id, error="the appointment has already started")
        jobs = plan(booking, policy, now, self.channels)
        dropped = await self.store.reminders.drop_unsent_except(booking_id, jobs.keep)
        if dropped:
            logger.info("booking %s: dropped %d jobs of an earlier time", booking_id, dropped)
        await self.store.reminders.schedule(booking_id, jobs.due)
        claimed = await self.store.reminders.claim_for_booking(
            booking_id, jobs.confirmations, self.worker_id, lease_s=self.lease_s
        )
        async with asyncio.TaskGroup() as group:
            sends = [
                group.create_task(
                    self._deliver_safely(job, lambda _action: policy),
                    name=f"confirm-{booking_id}-{job.kind}",
                )
                for job in claimed
            ]
        deliveries = [send.result() for send in sends]
        others = [kind for kind in jobs.confirmations if kind not in {j.kind for j in claimed}]
        if others:
            deliveries += await self._already(booking_id, others)
        skipped = [
            Delivery(booking_id, "confirmation", channel, "skipped", reason)
            for channel, reason in jobs.skipped
        ]
        reminders = tuple(
            f"{kind.name}:{kind.channel}"
            for kind in map(JobKind.parse, jobs.due)
            if kind is not None and kind.purpose == "reminder"
        )
        return ConfirmResult(booking_id, tuple(deliveries + skipped), reminders)

    async def _already(self, booking_id: str, kinds: Sequence[str]) -> list[Delivery]:
        """Confirmation jobs this call did not claim: sent before, or held by someone else."""
        jobs = {job.kind: job for job in await self.store.reminders.for_booking(booking_id)}
        deliveries = []
        for kind in kinds:
            parsed = JobKind.parse(kind)
            job = jobs.get(kind)
            if parsed is None or job is None:
                continue
            if job.sent_at is not None:
                detail = "sent earlier"
            elif job.failed_at is not None:
                detail = f"given up earlier: {job.last_error}"
            else:
                detail = "being sent by another worker or waiting for a retry"
            deliveries.append(Delivery(booking_id, parsed.name, parsed.channel, "already", detail))
        return deliveries

    async def _deliver_safely(self, job: ReminderJob, policy_for: PolicyLookup) -> Delivery:
        try:
            return await self.deliver(job, worker=self.worker_id, policy_for=policy_for)
        except Exception as error:  # the store failed after the claim: the lease brings it back
            parsed = JobKind.parse(job.kind)
            name, channel = (job.kind, None) if parsed is None else (parsed.name, parsed.channel)
            detail = f"left to the scheduler: {describe_error(error)}"
            logger.warning("booking %s: %s by %s: %s", job.booking_id, name, channel, detail)
            return Delivery(job.booking_id, name, channel, "retrying", detail)

    async def deliver(self, job: ReminderJob, *, worker: str, policy_for: PolicyLookup) -> Delivery:
        """Send one job claimed by ``worker`` and record the outcome in the store. Raises only
        when the store does (the job then stays claimed until its lease runs out)."""
        kind = JobKind.parse(job.kind)
        if kind is None:
            await self.store.reminders.give_up(job.id, worker, "not a notification job")
            return Delivery(job.booking_id, job.kind, None, "failed", "not a notification job")
        booking = await self.store.bookings.get(job.booking_id)
        policy = None if booking is None else policy_for(booking.action)
        now = self._clock()
        reason = self._why_not(kind, booking, policy, now)
        if reason or booking is None or policy is None:
            return await self._give_up(job, worker, kind, reason, "skipped")
        try:
            async with asyncio.timeout(self.send_timeout_s):
                message_id = await self._send(kind, booking, policy, now)
        except TimeoutError:
            timeout = f"no answer in {self.send_timeout_s} s"
            return await self._failed(job, worker, kind, timeout, True)
        except ProviderError as error:
            return await self._failed(job, worker, kind, describe_error(error), error.retryable)
        except Exception as error:  # an unmapped sender error: retried, bounded like the rest
            return await self._failed(job, worker, kind, describe_error(error), True)
        if not await self.store.reminders.mark_sent(job.id, worker):
            logger.warning(
                "booking %s: %s by %s sent after its claim ran out; it may have gone twice",
                job.booking_id, kind.name, kind.channel,
            )  # fmt: skip
        logger.info("booking %s: %s sent by %s", job.booking_id, kind.name, kind.channel)
        return Delivery(job.booking_id, kind.name, kind.channel, "sent", message_id)

    async def _send(
        self, kind: JobKind, booking: BookingRecord, policy: NotificationPolicy, now: datetime
    ) -> str:
        values = template_values(booking, policy, now)
        if kind.channel == "sms":
            assert self._sms is not None  # _why_not checked
            text = policy.sms_text(kind.purpose, values)
            return await self._sms.send_sms(booking.attendee.phone, text)
        assert self._email is not None
        subject, body = policy.email_text(kind.purpose, values)
        if kind.purpose == "confirmation" and isinstance(self._email, InvitationSender):
            invitation = invitation_for(booking, policy, body, now)  # agent.notify.invite
            return await self._email.send_invitation(
                booking.attendee.email, subject, invitation.description, invitation
            )
        return await self._email.send_email(booking.attendee.email, subject, body)

    def _why_not(
        self,
        kind: JobKind,
        booking: BookingRecord | None,
        policy: NotificationPolicy | None,
        now: datetime,
    ) -> str:
        """Why this job must not be sent now ("" = send it)."""
        if booking is None:
            return "the booking no longer exists"
        if booking.status != "confirmed":
            return f"the booking is {booking.status}"
        if booking.start != kind.start:
            return "the booking moved to another time"
        if booking.start <= now:
            return "the appointment has already started"
        if policy is None:
            return f"booking action {booking.action!r} sends no notifications"
        if kind.purpose == "reminder":
            reminder = policy.reminder(kind.name)
            if reminder is None:
                return f"reminder {kind.name!r} is no longer configured"
            for closer in policy.reminders:  # late (the workers were down): send the latest only
                if closer.before < reminder.before and now >= booking.start - closer.before:
                    return f"superseded by the {closer.kind} reminder"
        return unusable(kind.channel, booking, policy, self.channels)

    async def _failed(
        self, job: ReminderJob, worker: str, kind: JobKind, error: str, retryable: bool
    ) -> Delivery:
        if retryable and job.attempts <= len(self._retry_delays_s):
            retry_at = self._clock() + timedelta(seconds=self._retry_delays_s[job.attempts - 1])
            await self.store.reminders.retry_later(job.id, worker, at=retry_at, error=error)
            logger.warning(
                "booking %s: %s by %s failed (attempt %d), retrying at %s: %s",
                job.booking_id, kind.name, kind.channel, job.attempts, retry_at.isoformat(), error,
            )  # fmt: skip
            return Delivery(job.booking_id, kind.name, kind.channel, "retrying", error)
        if retryable:
            error = f"gave up after {job.attempts} attempts: {error}"
        return await self._give_up(job, worker, kind, error, "failed")

    async def _give_up(
        self, job: ReminderJob, worker: str, kind: JobKind, reason: str, outcome: Outcome
    ) -> Delivery:
        await self.store.reminders.give_up(job.id, worker, reason)
        log = logger.warning if outcome == "failed" else logger.info
        log("booking %s: %s by %s not sent: %s", job.booking_id, kind.name, kind.channel, reason)
        return Delivery(job.booking_id, kind.name, kind.channel, outcome, reason)


def describe_error(error: BaseException) -> str:
    """An error for logs and ``last_error``: its type and text, phone numbers and e-mail
    addresses masked (a vendor may quote the recipient), bounded in length."""
    text = str(error) or "(no message)"
    return mask(f"{type(error).__name__}: {text}")[:_MAX_ERROR_CHARS]
