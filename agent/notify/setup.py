"""Settings → confirmations and reminders for the server.

``build_notifications`` returns None when no booking action sends anything. Otherwise it makes
the channels (a Twilio SMS sender when the Twilio secrets and ``twilio.from_number`` are set,
SMTP when ``email.smtp_host`` is), one ``NotificationPolicy`` per action from its
``confirmations`` settings, and the reminder scheduler (a server resource). A channel an action
asks for but that is not configured is a start-up error, not a silent skip.

``BookingNotices`` is what the booking runner calls after a booking, a move or a cancel: the
confirmation is sent in the background (the caller never waits on an SMS gateway), and what it
could not send is retried by the scheduler, which owns the same jobs. An e-mail address given
after the booking was made (``contact_added``) is written onto the booking first; confirming
again then sends only what had no address before (the jobs already sent are not repeated).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from slotline.agent.config_models import Secrets, Settings
from slotline.agent.notify.notifier import Notifier
from slotline.agent.notify.policy import NotificationPolicy, Reminder
from slotline.agent.notify.scheduler import ReminderScheduler
from slotline.agent.store import Store
from slotline.providers.errors import ConfigError
from slotline.providers.notify.base import EmailSender, SmsSender

log = logging.getLogger(__name__)


@dataclass
class BookingNotices:
    """Confirmations after booking events, without holding up the call."""

    notifier: Notifier
    policies: Mapping[str, NotificationPolicy]
    _tasks: set[asyncio.Task[object]] = field(default_factory=set)

    def policy_for(self, action: str) -> NotificationPolicy | None:
        return self.policies.get(action)

    def booked(self, booking_id: str, action: str) -> None:
        policy = self.policies.get(action)
        if policy is not None:
            self._spawn(self.notifier.confirm(booking_id, policy), booking_id)

    def rescheduled(self, booking_id: str, action: str) -> None:
        policy = self.policies.get(action)
        if policy is not None:
            self._spawn(self.notifier.rescheduled(booking_id, policy), booking_id)

    def cancelled(self, booking_id: str) -> None:
        self._spawn(self.notifier.cancelled(booking_id), booking_id)

    def contact_added(self, booking_id: str, action: str, email: str) -> None:
        """The caller gave ``email`` after booking: put it on the booking, then confirm."""
        policy = self.policies.get(action)
        if policy is not None and policy.email:
            self._spawn(self._add_email(booking_id, email, policy), booking_id)

    async def _add_email(self, booking_id: str, email: str, policy: NotificationPolicy) -> object:
        store = self.notifier.store
        booking = await store.bookings.get(booking_id)
        if booking is None or booking.status != "confirmed":
            return None
        if booking.attendee.email != email:  # (the booking service usually put it there)
            updated = await store.bookings.set_attendee(
                booking_id, dataclasses.replace(booking.attendee, email=email)
            )
            if updated is None:  # cancelled meanwhile
                return None
        return await self.notifier.confirm(booking_id, policy)

    def _spawn(self, work: Coroutine[Any, Any, object], booking_id: str) -> None:
        async def run() -> object:
            try:
                return await work
            except Exception:  # never into the call; the scheduler retries pending jobs
                log.exception("notifications for booking %s failed", booking_id)
                return None

        task = asyncio.create_task(run(), name=f"notify-{booking_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for confirmations in flight (server shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass
class Notifications:
    notices: BookingNotices
    scheduler: ReminderScheduler

    async def start(self) -> None:
        await self.scheduler.start()

    async def aclose(self) -> None:
        await self.notices.drain()
        await self.scheduler.aclose()


def _sms(settings: Settings, secrets: Secrets, session: aiohttp.ClientSession) -> SmsSender:
    from slotline.providers.notify.sms import TwilioSms
    from slotline.providers.telephony.twilio_rest import TwilioRest

    if secrets.twilio_account_sid is None or secrets.twilio_auth_token is None:
        raise ConfigError("environment", "TWILIO_ACCOUNT_SID",
                          "SMS confirmations need TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
    rest = TwilioRest(
        secrets.twilio_account_sid.get_secret_value(),
        secrets.twilio_auth_token.get_secret_value(),
        base_url=settings.twilio.base_url,
        session=session,
    )
    return TwilioSms(rest, settings.twilio.from_number)


def _email(settings: Settings, secrets: Secrets) -> EmailSender:
    from slotline.providers.notify.email import SmtpEmail

    email = settings.email
    if not email.smtp_host:
        raise ConfigError("settings", "email.smtp_host", "e-mail confirmations need an SMTP host")
    password = secrets.smtp_password.get_secret_value() if secrets.smtp_password else None
    return SmtpEmail(
        email.smtp_host,
        email.smtp_port,
        email.from_address,
        username=email.username or None,
        password=password,
        starttls=email.security == "starttls",
        use_ssl=email.security == "tls",
        timeout_s=email.timeout_s,
    )


def build_notifications(
    settings: Settings, secrets: Secrets, store: Store, session: aiohttp.ClientSession,
    *, business: str = "us",
) -> Notifications | None:
    wanted = {
        name: action.confirmations
        for name, action in settings.booking_actions.items()
        if action.confirmations.sms or action.confirmations.email
    }
    if not wanted:
        return None
    sms = _sms(settings, secrets, session) if any(c.sms for c in wanted.values()) else None
    email = _email(settings, secrets) if any(c.email for c in wanted.values()) else None
    policies = {
        name: NotificationPolicy(
            sms=confirm.sms,
            email=confirm.email,
            reminders=tuple(Reminder.parse(offset) for offset in confirm.reminders),
            timezone=settings.calendars[settings.booking_actions[name].calendars[0]].timezone,
            business=business,
        )
        for name, confirm in wanted.items()
    }
    notifier = Notifier(store, sms, email)
    notices = BookingNotices(notifier, policies)
    scheduler = ReminderScheduler(notifier, notices.policy_for)
    return Notifications(notices, scheduler)
