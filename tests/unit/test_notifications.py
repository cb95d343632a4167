"""agent.notify: confirmations and reminders, each sent once, on SQLite and PostgreSQL.

The channels are small fakes of the vendors (they record what they were asked to send, or fail
as told); the store is the real one. The clock is the test's, so "24 h before" needs no waiting.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from slotline.agent.notify import (
    Delivery,
    NotificationPolicy,
    Notifier,
    Reminder,
    ReminderScheduler,
)
from slotline.agent.notify.jobs import JobKind
from slotline.agent.notify.policy import template_values
from slotline.agent.store import BookingRecord, NewBooking, Store, open_store
from slotline.providers.calendars.base import Attendee
from slotline.providers.errors import ProviderError

T0 = datetime(2026, 6, 2, 14, 0, tzinfo=UTC)  # Tuesday, June 2nd, 10 am in New York (EDT)
PHONE = "+1 555 010 2030"
ANA = Attendee("Ana", "ana@example.com", PHONE, "America/New_York")
POLICY = NotificationPolicy(business="Acme Dental", timezone="America/Chicago")
ONLY_1H = NotificationPolicy(business="Acme Dental", reminders=(Reminder.parse("1h"),))
LEASE_S = 300.0


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class FakeSms:
    """Twilio as seen from Slotline: accepts texts (or fails with the errors queued)."""

    def __init__(self, failures: Sequence[Exception] = ()) -> None:
        self.sent: list[tuple[str, str]] = []
        self.failures = list(failures)
        self._changed = asyncio.Event()

    async def send_sms(self, to: str, body: str) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((to, body))
        self._changed.set()
        return f"SM{len(self.sent):032d}"

    async def until(self, count: int) -> None:
        while len(self.sent) < count:
            self._changed.clear()
            await self._changed.wait()


class FakeEmail:
    def __init__(self, failures: Sequence[Exception] = ()) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.failures = list(failures)

    async def send_email(self, to: str, subject: str, body: str) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((to, subject, body))
        return f"<{len(self.sent)}@mail.test>"


class StuckSms:
    """A vendor that takes the request and never answers (the worker dies while waiting)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def send_sms(self, to: str, body: str) -> str:
        self.entered.set()
        await asyncio.Event().wait()
        raise AssertionError("never answers")


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 - timedelta(days=2))


@pytest.fixture
async def store(store_url: str, clock: Clock) -> AsyncIterator[Store]:
    async with open_store(store_url, clock=clock) as opened:
        yield opened


async def book(
    store: Store, key: str = "k1", start: datetime = T0, attendee: Attendee = ANA
) -> str:
    new = NewBooking(
        key, "local", start, start + timedelta(minutes=30), attendee, key, action="demo"
    )
    return (await store.bookings.create(new)).id


def policies(policy: NotificationPolicy) -> dict[str, NotificationPolicy]:
    return {"demo": policy}


async def drain(scheduler: ReminderScheduler) -> list[Delivery]:
    """Run batches until nothing is due; what became of each message."""
    handled = []
    while batch := await scheduler.run_once():
        handled += batch
    return handled


# -- confirmations -------------------------------------------------------------------------------


async def test_a_confirmation_goes_out_once_per_channel_and_the_reminders_ahead_are_scheduled(
    store: Store, clock: Clock
) -> None:
    sms, email = FakeSms(), FakeEmail()
    notifier = Notifier(store, sms, email, clock)
    booking_id = await book(store)

    result = await notifier.confirm(booking_id, POLICY)
    assert result.error == ""
    assert sorted(result.sent) == ["email", "sms"]
    assert result.reminders == ("24h:sms", "1h:sms", "24h:email", "1h:email")
    assert sms.sent == [
        (
            PHONE,
            "Hi Ana, your appointment with Acme Dental is confirmed for Tuesday, June 2nd "
            f"at 10 am EDT. Reference: {booking_id}.",
        )
    ]
    ((to, subject, body),) = email.sent
    assert to == "ana@example.com"
    assert subject == "Your appointment on Tuesday, June 2nd at 10 am EDT"
    assert body.startswith("Hi Ana,\n\nyour appointment with Acme Dental is confirmed for ")
    assert booking_id in body

    again = await notifier.confirm(booking_id, POLICY)  # e.g. the flow retried the node
    assert again.sent == ()
    assert {(d.channel, d.outcome, d.detail) for d in again.deliveries} == {
        ("sms", "already", "sent earlier"),
        ("email", "already", "sent earlier"),
    }
    assert len(sms.sent) == 1 and len(email.sent) == 1
    jobs = await store.reminders.for_booking(booking_id)
    assert len(jobs) == 6  # confirmation + 24 h + 1 h, by SMS and by e-mail
    sent = {JobKind.parse(job.kind) for job in jobs if job.sent_at is not None}
    assert sent == {JobKind("confirmation", "sms", T0), JobKind("confirmation", "email", T0)}


async def test_concurrent_confirmations_of_one_booking_send_once(
    store: Store, clock: Clock
) -> None:
    sms, email = FakeSms(), FakeEmail()
    booking_id = await book(store)
    notifiers = [Notifier(store, sms, email, clock, worker_id=f"call-{n}") for n in range(4)]
    results = await asyncio.gather(*(n.confirm(booking_id, POLICY) for n in notifiers))
    assert len(sms.sent) == 1 and len(email.sent) == 1
    assert sorted(channel for result in results for channel in result.sent) == ["email", "sms"]


async def test_only_usable_channels_and_reminders_still_ahead_are_used(
    store: Store, clock: Clock
) -> None:
    sms = FakeSms()
    notifier = Notifier(store, sms, FakeEmail(), clock)
    clock.now = T0 - timedelta(hours=3)  # the 24 h reminder's time has passed
    no_email = Attendee("", "", PHONE, "")
    booking_id = await book(store, attendee=no_email)
    result = await notifier.confirm(booking_id, POLICY)
    assert result.sent == ("sms",)
    assert result.reminders == ("1h:sms",)
    skipped = [(d.channel, d.detail) for d in result.deliveries if d.outcome == "skipped"]
    assert skipped == [("email", "the attendee gave no e-mail address")]
    # No name and no zone: "there", and the policy's zone (Chicago) with a relative day.
    assert sms.sent[0][1].startswith(
        "Hi there, your appointment with Acme Dental is confirmed for "
    )
    assert "today at 9 am CDT" in sms.sent[0][1]

    text_only = NotificationPolicy(email=False, reminders=())
    other = await book(store, "k2")
    outcome = await Notifier(store, None, FakeEmail(), clock).confirm(other, text_only)
    assert {d.detail for d in outcome.deliveries} == {
        "no SMS sender is configured",
        "e-mail is off for this booking action",
    }
    assert outcome.sent == () and outcome.reminders == ()
    assert await store.reminders.for_booking(other) == []


async def test_confirming_what_cannot_be_confirmed_reports_it(store: Store, clock: Clock) -> None:
    notifier = Notifier(store, FakeSms(), FakeEmail(), clock)
    assert (await notifier.confirm("NOSUCHID", POLICY)).error == "no such booking"
    booking_id = await book(store)
    await store.bookings.cancel(booking_id)
    assert (await notifier.confirm(booking_id, POLICY)).error == "the booking is cancelled"


# -- the scheduler -------------------------------------------------------------------------------


async def test_reminders_go_out_when_due_and_once(store: Store, clock: Clock) -> None:
    sms, email = FakeSms(), FakeEmail()
    notifier = Notifier(store, sms, email, clock)
    booking_id = await book(store)
    await notifier.confirm(booking_id, POLICY)
    scheduler = ReminderScheduler(notifier, policies(POLICY).get, worker_id="w1")

    clock.now = T0 - timedelta(hours=24, seconds=1)
    assert await scheduler.run_once() == []
    clock.now += timedelta(seconds=1)
    sent = await scheduler.run_once()
    assert sorted((d.kind, d.channel, d.outcome) for d in sent) == [
        ("24h", "email", "sent"),
        ("24h", "sms", "sent"),
    ]
    assert sms.sent[-1][1] == (
        "Reminder: your appointment with Acme Dental is tomorrow at 10 am EDT. "
        f"Reference: {booking_id}."
    )
    assert email.sent[-1][1] == "Reminder: your appointment tomorrow at 10 am EDT"
    assert await scheduler.run_once() == []

    clock.now = T0 - timedelta(minutes=59)
    assert [d.kind for d in await scheduler.run_once()] == ["1h", "1h"]
    assert "is today at 10 am EDT" in sms.sent[-1][1]
    assert len(sms.sent) == len(email.sent) == 3  # confirmation, 24 h, 1 h
    clock.now = T0 + timedelta(days=1)
    assert await scheduler.run_once() == []


async def test_two_schedulers_on_one_database_send_each_reminder_once(
    store_url: str, store: Store, clock: Clock
) -> None:
    sms, email = FakeSms(), FakeEmail()
    confirmer = Notifier(store, sms, email, clock)
    for n in range(6):
        booking_id = await book(store, f"cal{n}", T0 + timedelta(minutes=n))
        await confirmer.confirm(booking_id, POLICY)
    sms.sent.clear()
    email.sent.clear()

    async with open_store(store_url, clock=clock) as other_process:
        schedulers = [
            ReminderScheduler(
                Notifier(db, sms, email, clock), policies(POLICY).get, worker_id=name, batch_size=3
            )
            for db, name in ((store, "a"), (other_process, "b"))
        ]
        for due in (T0 - timedelta(hours=23), T0 - timedelta(minutes=30)):  # 24 h, then 1 h
            clock.now = due
            handled = [d for run in await asyncio.gather(*map(drain, schedulers)) for d in run]
            assert {d.outcome for d in handled} == {"sent"}
            sends = Counter((d.booking_id, d.kind, d.channel) for d in handled)
            assert len(sends) == 6 * 2 and set(sends.values()) == {1}
    assert len(sms.sent) == len(set(sms.sent)) == 6 * 2
    assert len(email.sent) == len(set(email.sent)) == 6 * 2


async def test_a_scheduler_killed_while_sending_leaves_the_job_to_another_after_the_lease(
    store_url: str, store: Store, clock: Clock
) -> None:
    booking_id = await book(store)
    await Notifier(store, FakeSms(), None, clock).confirm(booking_id, ONLY_1H)
    clock.now = T0 - timedelta(minutes=50)

    stuck = StuckSms()
    doomed = ReminderScheduler(Notifier(store, stuck, None, clock), policies(ONLY_1H).get)
    run = asyncio.create_task(doomed.run_once())
    await stuck.entered.wait()
    run.cancel()  # the process died mid-send: no mark_sent, no release
    await asyncio.wait({run})

    sms = FakeSms()
    async with open_store(store_url, clock=clock) as restarted:
        survivor = ReminderScheduler(Notifier(restarted, sms, None, clock), policies(ONLY_1H).get)
        assert await survivor.run_once() == []  # the dead worker's lease still runs
        clock.now += timedelta(seconds=LEASE_S + 1)
        assert [d.outcome for d in await survivor.run_once()] == ["sent"]
        assert await survivor.run_once() == []
    assert len(sms.sent) == 1
    (job,) = [j for j in await store.reminders.for_booking(booking_id) if j.kind.startswith("1h")]
    assert job.sent_at is not None and job.attempts == 2


async def test_pending_reminders_survive_a_restart(store_url: str, clock: Clock) -> None:
    async with open_store(store_url, clock=clock) as first_run:
        booking_id = await book(first_run)
        result = await Notifier(first_run, FakeSms(), FakeEmail(), clock).confirm(
            booking_id, POLICY
        )
        assert len(result.reminders) == 4
    sms, email = FakeSms(), FakeEmail()
    clock.now = T0 - timedelta(minutes=10)
    async with open_store(store_url, clock=clock) as second_run:
        scheduler = ReminderScheduler(Notifier(second_run, sms, email, clock), policies(POLICY).get)
        handled = await drain(scheduler)
    # Down for a day: the 24 h reminders are late and the 1 h ones due; only those go out.
    assert sorted((d.kind, d.channel, d.outcome) for d in handled) == [
        ("1h", "email", "sent"),
        ("1h", "sms", "sent"),
        ("24h", "email", "skipped"),
        ("24h", "sms", "skipped"),
    ]
    assert {d.detail for d in handled if d.kind == "24h"} == {"superseded by the 1h reminder"}
    assert len(sms.sent) == len(email.sent) == 1


async def test_no_reminder_for_a_cancelled_booking_or_for_the_time_a_booking_left(
    store: Store, clock: Clock
) -> None:
    sms = FakeSms()
    notifier = Notifier(store, sms, None, clock)
    scheduler = ReminderScheduler(notifier, policies(ONLY_1H).get)
    cancelled = await book(store, "k1")
    moved = await book(store, "k2")
    dropped = await book(store, "k3")
    for booking_id in (cancelled, moved, dropped):
        await notifier.confirm(booking_id, ONLY_1H)
    await store.bookings.cancel(cancelled)  # the jobs are still there: the scheduler skips them
    await store.bookings.cancel(dropped)
    assert await notifier.cancelled(dropped) == 1
    later = T0 + timedelta(hours=5)
    await store.bookings.move(moved, later, later + timedelta(minutes=30))
    sms.sent.clear()

    clock.now = T0 - timedelta(minutes=30)
    outcomes = sorted((d.booking_id, d.outcome, d.detail) for d in await scheduler.run_once())
    assert outcomes == sorted(
        [
            (cancelled, "skipped", "the booking is cancelled"),
            (moved, "skipped", "the booking moved to another time"),
        ]
    )
    assert sms.sent == []
    assert await scheduler.run_once() == []

    # Confirming the new time: one new confirmation, the new time's reminder when it is due.
    result = await notifier.rescheduled(moved, ONLY_1H)
    assert result.sent == ("sms",) and result.reminders == ("1h:sms",)
    assert "at 3 pm EDT" in sms.sent[0][1]
    clock.now = later - timedelta(minutes=30)
    assert [d.outcome for d in await scheduler.run_once()] == ["sent"]
    assert len(sms.sent) == 2


async def test_a_reschedule_before_the_first_reminder_drops_the_old_times_jobs(
    store: Store, clock: Clock
) -> None:
    sms = FakeSms()
    notifier = Notifier(store, sms, None, clock)
    booking_id = await book(store)
    await notifier.confirm(booking_id, POLICY)
    later = T0 + timedelta(days=1)
    await store.bookings.move(booking_id, later, later + timedelta(minutes=30))
    await notifier.rescheduled(booking_id, POLICY)
    pending = [job for job in await store.reminders.for_booking(booking_id) if not job.sent_at]
    assert {JobKind.parse(job.kind) for job in pending} == {
        JobKind("24h", "sms", later),
        JobKind("1h", "sms", later),
    }
    assert len(sms.sent) == 2  # the first confirmation and the new time's


# -- failing channels ----------------------------------------------------------------------------


async def test_a_passing_failure_is_retried_later_and_sent_once(store: Store, clock: Clock) -> None:
    sms = FakeSms([ProviderError("twilio", "503 from the API", retryable=True)])
    email = FakeEmail([RuntimeError("connection reset")])  # an unmapped error: also retried
    notifier = Notifier(store, sms, email, clock, retry_delays_s=(60.0, 600.0))
    scheduler = ReminderScheduler(notifier, policies(ONLY_1H).get)
    booking_id = await book(store)

    result = await notifier.confirm(booking_id, ONLY_1H)  # the call is never disturbed
    assert result.error == "" and result.sent == ()
    assert {(d.channel, d.outcome) for d in result.deliveries} == {
        ("sms", "retrying"),
        ("email", "retrying"),
    }
    assert await scheduler.run_once() == []  # backing off
    clock.now += timedelta(seconds=59)
    assert await scheduler.run_once() == []
    clock.now += timedelta(seconds=1)
    assert sorted((d.kind, d.outcome) for d in await scheduler.run_once()) == [
        ("confirmation", "sent"),
        ("confirmation", "sent"),
    ]
    assert len(sms.sent) == len(email.sent) == 1
    again = await notifier.confirm(booking_id, ONLY_1H)
    assert {d.outcome for d in again.deliveries} == {"already"}


async def test_failures_are_given_up_with_their_reason_and_no_personal_data(
    store: Store, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="slotline.agent.notify")
    bad_number = ProviderError(
        "twilio", "The 'To' number +15550102030 is not a valid phone number", retryable=False
    )
    sms = FakeSms([bad_number])
    email = FakeEmail([ProviderError("smtp", "421 try later", retryable=True)] * 3)
    notifier = Notifier(store, sms, email, clock, retry_delays_s=(10.0, 10.0))
    scheduler = ReminderScheduler(notifier, policies(ONLY_1H).get)
    booking_id = await book(store)

    result = await notifier.confirm(booking_id, ONLY_1H)
    outcomes = {d.channel: (d.outcome, d.detail) for d in result.deliveries}
    assert outcomes["sms"][0] == "failed"
    assert "not a valid phone number" in outcomes["sms"][1]
    assert outcomes["email"][0] == "retrying"
    for _ in range(2):
        clock.now += timedelta(seconds=10)
        (delivery,) = await scheduler.run_once()
    assert delivery.outcome == "failed"
    assert delivery.detail.startswith("gave up after 3 attempts: ProviderError: smtp: 421")
    clock.now += timedelta(days=1)
    assert await scheduler.run_once() == []
    assert sms.sent == [] and email.sent == []

    jobs = {job.kind.split("@")[0]: job for job in await store.reminders.for_booking(booking_id)}
    assert jobs["confirmation:sms"].failed_at is not None
    assert jobs["confirmation:sms"].attempts == 1
    assert "5550102030" not in jobs["confirmation:sms"].last_error
    assert jobs["confirmation:email"].attempts == 3
    assert "5550102030" not in caplog.text and "ana@example.com" not in caplog.text
    assert "not a valid phone number" in caplog.text


# -- running in the background -------------------------------------------------------------------


async def test_the_background_scheduler_sends_what_comes_due_and_stops(
    store: Store, clock: Clock
) -> None:
    sms = FakeSms()
    notifier = Notifier(store, sms, None, clock)
    booking_id = await book(store)
    await notifier.confirm(booking_id, POLICY)
    clock.now = T0 - timedelta(hours=23)
    scheduler = ReminderScheduler(notifier, policies(POLICY).get, poll_s=0.01)
    async with scheduler:
        await asyncio.wait_for(sms.until(2), timeout=10)  # a hang guard, not a time budget
        clock.now = T0 - timedelta(minutes=30)
        await asyncio.wait_for(sms.until(3), timeout=10)
        with pytest.raises(RuntimeError, match="already running"):
            await scheduler.start()
    assert [body.split(" is ")[1] for _, body in sms.sent[1:]] == [
        f"tomorrow at 10 am EDT. Reference: {booking_id}.",
        f"today at 10 am EDT. Reference: {booking_id}.",
    ]
    jobs = await store.reminders.for_booking(booking_id)
    assert len(jobs) == 3 and all(job.sent_at is not None for job in jobs)
    await scheduler.aclose()  # closing twice is harmless


async def test_a_lease_shorter_than_a_batch_is_refused(store: Store, clock: Clock) -> None:
    notifier = Notifier(store, FakeSms(), None, clock, send_timeout_s=20.0)
    with pytest.raises(ValueError, match="outlast a batch"):
        ReminderScheduler(notifier, policies(POLICY).get, lease_s=60.0, batch_size=50)
    with pytest.raises(ValueError, match="shorter than lease_s"):
        Notifier(store, FakeSms(), None, clock, lease_s=10.0, send_timeout_s=20.0)


# -- policy --------------------------------------------------------------------------------------


def test_a_policy_refuses_templates_it_could_not_fill() -> None:
    with pytest.raises(ValueError, match=r"reminder_sms: unknown placeholder \{nmae\}"):
        NotificationPolicy(reminder_sms="Hi {nmae}")
    with pytest.raises(ValueError, match="confirmation_subject"):
        NotificationPolicy(confirmation_subject="{date:%Y}")
    with pytest.raises(ValueError, match="confirmation_email"):
        NotificationPolicy(confirmation_email="Hi {name")
    with pytest.raises(ValueError, match="listed twice"):
        NotificationPolicy(reminders=(Reminder.parse("1h"), Reminder("1h", timedelta(hours=2))))
    with pytest.raises(ValueError, match="unknown time zone"):
        NotificationPolicy(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="not an offset"):
        Reminder.parse("1 hour")
    assert Reminder.parse("30m") == Reminder("30m", timedelta(minutes=30))
    assert Reminder.parse("2d").before == timedelta(days=2)
    assert JobKind.parse("24h") is None  # not one of ours
    kind = JobKind("24h", "email", T0)
    assert JobKind.parse(kind.encode()) == kind


def test_template_values_speak_the_time_in_the_attendees_zone() -> None:
    record = BookingRecord(
        "REF12345", "demo", "main", "local", "",
        T0 + timedelta(minutes=30), T0 + timedelta(hours=1),
        "confirmed", Attendee("Ana", timezone="Europe/Berlin"), "", {}, "k", T0, T0,
    )  # fmt: skip
    values = template_values(record, POLICY, now=T0 - timedelta(days=1))
    assert values["when"] == "tomorrow at 4:30 pm CEST"
    assert values["date"] == "Tuesday, June 2nd"
    assert values["reference"] == "REF12345" and values["business"] == "Acme Dental"
