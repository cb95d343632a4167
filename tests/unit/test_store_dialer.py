"""The dialer's store: claiming (pacing, concurrency, calling windows, do-not-call), recording
what Twilio says of an attempt and settling it exactly once — on SQLite and PostgreSQL, with a
clock the test moves by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from slotline.agent.dialer.outcomes import SESSION_GRACE_S
from slotline.agent.dialer.window import CallingWindow
from slotline.agent.store import NewBooking, Store, open_store
from slotline.agent.store.attempts import MAX_EVENTS
from slotline.agent.store.dialer_records import (
    AttemptRow,
    Claimed,
    ContactRow,
    NewContact,
    Settled,
    Wait,
)
from slotline.providers.calendars.base import Attendee

T0 = datetime(2026, 6, 2, 14, 0, tzinfo=UTC)
NY, LA = "America/New_York", "America/Los_Angeles"
SETTINGS: Mapping[str, Any] = {
    "cps": 2.0, "concurrency": 10, "max_attempts": 3, "retry_after_s": 60.0,
}  # fmt: skip


class Clock:
    """The store's notion of now, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def always_open(_zones: Sequence[str], now: datetime) -> datetime:
    return now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def store(store_url: str, clock: Clock) -> AsyncIterator[Store]:
    async with open_store(store_url, clock=clock) as opened:
        yield opened


def phone(line: int) -> str:
    return f"+1555010{line:04d}"


async def new_campaign(store: Store, contacts: int | Sequence[NewContact], **settings: Any) -> str:
    rows = (
        [NewContact(line=n, phone=phone(n), timezones=(NY,)) for n in range(1, contacts + 1)]
        if isinstance(contacts, int) else list(contacts)
    )  # fmt: skip
    return await store.campaigns.create(
        name="test", flow="demo_booking", settings={**SETTINGS, **settings}, contacts=rows
    )


async def claim(
    store: Store, campaign_id: str, *, worker: str = "w1", window: CallingWindow | None = None
) -> Claimed | Wait:
    next_open = always_open if window is None else window.next_open
    return await store.campaigns.claim(campaign_id, worker=worker, next_open=next_open)


async def claimed(store: Store, campaign_id: str, **kwargs: Any) -> Claimed:
    result = await claim(store, campaign_id, **kwargs)
    assert isinstance(result, Claimed), result
    return result


async def contact(store: Store, campaign_id: str, contact_id: str) -> ContactRow:
    (found,) = [c for c in await store.campaigns.contacts(campaign_id) if c.id == contact_id]
    return found


async def status(store: Store, sid: str, value: str, duration_s: int | None = None) -> AttemptRow:
    row = await store.attempts.record_status(
        sid, value, event={"CallStatus": value, "CallSid": sid}, duration_s=duration_s
    )
    assert row is not None
    return row


async def final(store: Store, attempt: AttemptRow, sid: str, value: str) -> None:
    """Twilio took the call and ended it as ``value`` (busy, no-answer, completed ...)."""
    await store.attempts.dialed(attempt.id, sid)
    await status(store, sid, value)


# -- pacing and concurrency ----------------------------------------------------------------------


async def test_pacing_spaces_claims_by_one_over_cps(store: Store, clock: Clock) -> None:
    cid = await new_campaign(store, 12, cps=2, concurrency=20)
    half = timedelta(seconds=0.5)
    first = await claimed(store, cid)
    assert first.attempt.started_at == T0
    assert await claim(store, cid) == Wait("pacing", T0 + half)
    assert await claim(store, cid) == Wait("pacing", T0 + half)  # still nothing at T0
    clock.now = T0 + timedelta(seconds=0.4)
    assert await claim(store, cid) == Wait("pacing", T0 + half)
    clock.now = T0 + half
    second = await claimed(store, cid)
    assert second.contact.id != first.contact.id

    for _ in range(10):  # each claim exactly when the pacing allows it
        wait = await claim(store, cid)
        assert isinstance(wait, Wait) and wait.why == "pacing" and wait.until is not None
        clock.now = wait.until
        await claimed(store, cid)
    started = [a.started_at for a in await store.attempts.of_campaign(cid)]
    assert len(started) == 12
    assert started == [T0 + n * half for n in range(12)]
    assert {a.contact_id for a in await store.attempts.of_campaign(cid)} == {
        c.id for c in await store.campaigns.contacts(cid)
    }


async def test_a_late_claim_paces_from_now_not_from_the_missed_slot(
    store: Store, clock: Clock
) -> None:
    cid = await new_campaign(store, 3, cps=2)
    await claimed(store, cid)
    clock.now = T0 + timedelta(seconds=10)  # nobody claimed for a while: no burst follows
    await claimed(store, cid)
    assert await claim(store, cid) == Wait("pacing", clock.now + timedelta(seconds=0.5))


async def test_concurrency_caps_unsettled_attempts(store: Store, clock: Clock) -> None:
    cid = await new_campaign(store, 4, cps=50, concurrency=2)
    first = await claimed(store, cid)
    clock.now += timedelta(seconds=1)
    await claimed(store, cid)
    clock.now += timedelta(seconds=1)
    assert await claim(store, cid) == Wait("concurrency")
    clock.now += timedelta(minutes=5)
    assert await claim(store, cid) == Wait("concurrency")  # time alone frees nothing

    await final(store, first.attempt, "CA-1", "busy")
    settled = await store.attempts.settle(first.attempt.id)
    assert settled is not None and settled.outcome == "busy"
    third = await claimed(store, cid)
    assert third.contact.line == 3  # the busy one waits for its retry
    clock.now += timedelta(seconds=1)
    assert await claim(store, cid) == Wait("concurrency")


async def test_two_workers_on_one_database_never_claim_a_contact_twice(
    store_url: str, clock: Clock
) -> None:
    contacts, cps = 30, 50
    interval = timedelta(seconds=1 / cps)
    async with open_store(store_url, clock=clock) as one, open_store(store_url, clock=clock) as two:
        cid = await new_campaign(one, contacts, cps=cps, concurrency=1000)
        got: list[Claimed] = []
        for _ in range(contacts):
            results = await asyncio.gather(*(
                claim(worker, cid, worker=name)
                for _ in range(4) for worker, name in ((one, "w1"), (two, "w2"))
            ))  # fmt: skip
            won = [r for r in results if isinstance(r, Claimed)]
            assert len(won) == 1, results  # one dial per instant, whichever worker
            assert [r for r in results if isinstance(r, Wait)] == [
                Wait("pacing", clock.now + interval)
            ] * 7
            got.extend(won)
            clock.now += interval
        results = await asyncio.gather(*(claim(w, cid) for w in (one, two, one, two)))
        assert set(results) == {Wait("calls in progress")}

        assert len(got) == contacts
        assert len({c.contact.id for c in got}) == contacts
        assert len({c.attempt.id for c in got}) == contacts
        attempts = await two.attempts.of_campaign(cid)
        assert len(attempts) == contacts
        assert len({a.contact_id for a in attempts}) == contacts
        assert [a.started_at for a in attempts] == [T0 + n * interval for n in range(contacts)]
        assert {a.worker for a in attempts} <= {"w1", "w2"}
        rows = await one.campaigns.contacts(cid)
        assert {(c.state, c.attempts) for c in rows} == {("dialing", 1)}


# -- calling windows -----------------------------------------------------------------------------


async def test_the_window_is_on_the_callees_clock(store: Store, clock: Clock) -> None:
    morning = datetime(2026, 12, 2, 12, 30, tzinfo=UTC)  # 07:30 in New York (EST), 04:30 in LA
    clock.now = morning
    cid = await new_campaign(store, [
        NewContact(line=1, phone=phone(1), timezones=(NY,)),
        NewContact(line=2, phone=phone(2), timezones=(LA,)),
    ])  # fmt: skip
    window = CallingWindow.parse("09:00-20:00")
    ny_opens = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    la_opens = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)
    assert await claim(store, cid, window=window) == Wait("no contact due", ny_opens)
    assert await store.attempts.of_campaign(cid) == []
    by_line = {c.line: c for c in await store.campaigns.contacts(cid)}
    assert (by_line[1].next_at, by_line[2].next_at) == (ny_opens, la_opens)
    assert {c.state for c in by_line.values()} == {"pending"}

    clock.now = ny_opens - timedelta(seconds=1)
    assert await claim(store, cid, window=window) == Wait("no contact due", ny_opens)
    clock.now = ny_opens
    new_york = await claimed(store, cid, window=window)
    assert new_york.contact.line == 1
    clock.now += timedelta(minutes=1)
    assert await claim(store, cid, window=window) == Wait("no contact due", la_opens)
    clock.now = la_opens
    assert (await claimed(store, cid, window=window)).contact.line == 2


async def test_the_hard_limits_narrow_a_wider_window(store: Store, clock: Clock) -> None:
    window = CallingWindow.parse("06:00-23:00")
    assert window.clamped
    assert window.effective() == (time(8, 0), time(21, 0))
    day = datetime(2026, 12, 2, tzinfo=UTC)
    clock.now = day + timedelta(hours=12, minutes=30)  # 07:30 in New York: inside 06-23, not 8-21
    cid = await new_campaign(store, 3)
    eight = day + timedelta(hours=13)  # 08:00 EST
    assert await claim(store, cid, window=window) == Wait("no contact due", eight)
    clock.now = eight
    assert (await claimed(store, cid, window=window)).contact.line == 1

    clock.now = day + timedelta(days=1, hours=1, minutes=59)  # 20:59 in New York
    assert (await claimed(store, cid, window=window)).contact.line == 2
    clock.now = day + timedelta(days=1, hours=2)  # 21:00 in New York: closed (06-23 said open)
    next_morning = day + timedelta(days=1, hours=13)
    assert await claim(store, cid, window=window) == Wait("no contact due", next_morning)
    assert len(await store.attempts.of_campaign(cid)) == 2


async def test_a_contact_whose_zones_never_share_an_open_hour_is_closed_not_stuck(
    store: Store, clock: Clock
) -> None:
    clock.now = datetime(2026, 12, 2, 14, 30, tzinfo=UTC)  # 09:30 in New York
    cid = await new_campaign(store, [
        NewContact(line=1, phone=phone(1), timezones=(NY, LA)),  # 09-10 never overlaps there
        NewContact(line=2, phone=phone(2), timezones=(NY,)),
    ])  # fmt: skip
    got = await claimed(store, cid, window=CallingWindow.parse("09:00-10:00"))
    assert got.contact.line == 2
    by_line = {c.line: c for c in await store.campaigns.contacts(cid)}
    assert (by_line[1].state, by_line[1].outcome, by_line[1].attempts) == ("done", "invalid", 0)
    assert len(await store.attempts.of_campaign(cid)) == 1


# -- do not call ---------------------------------------------------------------------------------


async def test_a_listed_number_is_closed_at_claim_without_an_attempt(
    store: Store, clock: Clock
) -> None:
    cid = await new_campaign(store, 2)
    assert await store.dnc.add([phone(1)], source="api") == 1
    got = await claimed(store, cid)
    assert got.contact.line == 2
    by_line = {c.line: c for c in await store.campaigns.contacts(cid)}
    listed = by_line[1]
    assert (listed.state, listed.outcome, listed.attempts) == ("done", "do_not_call", 0)
    assert [a.contact_id for a in await store.attempts.of_campaign(cid)] == [got.contact.id]


async def test_a_number_added_by_voice_on_the_call_settles_it_as_do_not_call(
    store: Store, clock: Clock
) -> None:
    cid = await new_campaign(store, 2)
    await store.dnc.add([phone(2)], source="api")  # listed, but not on this call
    got = await claimed(store, cid)
    attempt = got.attempt
    await store.attempts.dialed(attempt.id, "CA-dnc")
    await status(store, "CA-dnc", "in-progress")
    assert await store.dnc.add([phone(1)], source="voice", call_sid="CA-dnc") == 1
    await status(store, "CA-dnc", "completed")
    await store.attempts.session_ended(attempt.id, "completed")
    settled = await store.attempts.settle(attempt.id)
    assert settled is not None
    assert settled.outcome == "do_not_call" and settled.retry_at is None
    row = await contact(store, cid, got.contact.id)
    assert (row.state, row.outcome) == ("done", "do_not_call")


async def test_a_listing_from_another_call_does_not_make_this_one_do_not_call(
    store: Store, clock: Clock
) -> None:
    cid = await new_campaign(store, 1)
    got = await claimed(store, cid)
    await store.attempts.dialed(got.attempt.id, "CA-mine")
    await status(store, "CA-mine", "in-progress")
    await store.dnc.add([phone(1)], source="voice", call_sid="CA-other")
    await status(store, "CA-mine", "completed")
    await store.attempts.session_ended(got.attempt.id, "completed")
    settled = await store.attempts.settle(got.attempt.id)
    assert settled is not None and settled.outcome == "declined"


# -- settling ------------------------------------------------------------------------------------


async def test_busy_is_retried_with_backoff_until_max_attempts(store: Store, clock: Clock) -> None:
    cid = await new_campaign(store, 1, max_attempts=3, retry_after_s=60)
    for number, backoff_s in ((1, 60), (2, 120), (3, None)):
        got = await claimed(store, cid)
        assert got.attempt.number == number and got.contact.attempts == number - 1
        await final(store, got.attempt, f"CA-{number}", "busy")
        settled = await store.attempts.settle(got.attempt.id)
        assert settled is not None and settled.outcome == "busy"
        row = await contact(store, cid, got.contact.id)
        assert row.attempts == number
        if backoff_s is None:
            assert settled.retry_at is None
            assert (row.state, row.outcome) == ("done", "busy")
            break
        retry_at = clock.now + timedelta(seconds=backoff_s)
        assert settled.retry_at == retry_at
        assert (row.state, row.outcome, row.next_at) == ("pending", "pending", retry_at)
        clock.now += timedelta(seconds=1)  # past the pacing: the contact itself is not due
        assert await claim(store, cid) == Wait("no contact due", retry_at)
        clock.now = retry_at
    clock.now += timedelta(seconds=1)
    assert await claim(store, cid) == Wait("done")


async def test_an_answered_call_settles_once_the_session_has_ended(
    store: Store, clock: Clock
) -> None:
    cid = await new_campaign(store, 1)
    got = await claimed(store, cid)
    attempt = got.attempt
    assert await store.attempts.settle(attempt.id) is None  # nothing heard yet
    await store.attempts.dialed(attempt.id, "CA-h")
    await status(store, "CA-h", "in-progress")
    await store.attempts.session_ended(attempt.id, "completed")
    assert await store.attempts.settle(attempt.id) is None  # the call may go on (a transfer)
    await status(store, "CA-h", "completed", duration_s=42)
    settled = await store.attempts.settle(attempt.id)
    assert settled is not None and (settled.outcome, settled.reason) == ("declined", "")
    assert settled.attempt.duration_s == 42 and settled.attempt.settled_at == clock.now
    assert await store.attempts.settle(attempt.id) is None  # exactly once
    assert await store.attempts.settle(attempt.id, force=True) is None
    row = await contact(store, cid, got.contact.id)
    assert (row.state, row.outcome) == ("done", "declined")


async def test_completed_before_the_session_waits_for_it(store: Store, clock: Clock) -> None:
    cid = await new_campaign(store, 1)
    attempt = (await claimed(store, cid)).attempt
    await store.attempts.dialed(attempt.id, "CA-s")
    await status(store, "CA-s", "in-progress")
    await status(store, "CA-s", "completed")
    assert await store.attempts.settle(attempt.id) is None
    clock.now += timedelta(seconds=5)
    await store.attempts.session_ended(attempt.id, "completed")
    results = await asyncio.gather(*(store.attempts.settle(attempt.id) for _ in range(6)))
    settled = [r for r in results if r is not None]
    assert len(settled) == 1 and settled[0].outcome == "declined"


async def test_a_completed_call_without_its_session_fails_after_the_grace(
    store: Store, clock: Clock
) -> None:
    cid = await new_campaign(store, 1, retry_after_s=60)
    got = await claimed(store, cid)
    await store.attempts.dialed(got.attempt.id, "CA-g")
    await status(store, "CA-g", "in-progress")
    await status(store, "CA-g", "completed")
    completed_at = clock.now
    clock.now = completed_at + timedelta(seconds=SESSION_GRACE_S - 1)
    assert await store.attempts.settle(got.attempt.id) is None
    clock.now = completed_at + timedelta(seconds=SESSION_GRACE_S)
    settled = await store.attempts.settle(got.attempt.id)
    assert settled is not None and settled.outcome == "failed"
    assert "never finished" in settled.reason
    assert settled.retry_at == clock.now + timedelta(seconds=60)  # failed is tried again
    assert await store.attempts.settle(got.attempt.id) is None


async def test_a_booking_on_the_call_settles_it_as_booked(store: Store, clock: Clock) -> None:
    cid = await new_campaign(store, 1)
    got = await claimed(store, cid)
    await store.attempts.dialed(got.attempt.id, "CA-b")
    await status(store, "CA-b", "in-progress")
    slot = T0 + timedelta(days=1)
    booking = await store.bookings.create(NewBooking(
        "main", "local", slot, slot + timedelta(minutes=30), Attendee("Ana"), "k1",
        call_sid="CA-b",
    ))  # fmt: skip
    await status(store, "CA-b", "completed")
    await store.attempts.session_ended(got.attempt.id, "completed")
    settled = await store.attempts.settle(got.attempt.id)
    assert settled is not None and settled.outcome == "booked"
    assert settled.attempt.booking_id == booking.id and settled.retry_at is None
    row = await contact(store, cid, got.contact.id)
    assert (row.state, row.outcome, row.booking_id) == ("done", "booked", booking.id)


async def test_a_dial_error_settles_as_failed_and_is_retried(store: Store, clock: Clock) -> None:
    cid = await new_campaign(store, 1, retry_after_s=60)
    got = await claimed(store, cid)
    settled = await store.attempts.settle(got.attempt.id, dial_error="Twilio said 500")
    assert isinstance(settled, Settled)
    assert (settled.outcome, settled.reason) == ("failed", "Twilio said 500")
    assert settled.attempt.status == "failed" and settled.attempt.call_sid is None
    assert settled.retry_at == clock.now + timedelta(seconds=60)
    row = await contact(store, cid, got.contact.id)
    assert (row.state, row.outcome, row.attempts) == ("pending", "pending", 1)
    assert "failed" in row.reason
    clock.now = settled.retry_at
    again = await claimed(store, cid)
    assert again.contact.id == got.contact.id and again.attempt.number == 2


async def test_a_machine_with_a_message_left_is_voicemail(store: Store, clock: Clock) -> None:
    cid = await new_campaign(store, 1)
    got = await claimed(store, cid)
    await store.attempts.dialed(got.attempt.id, "CA-m")
    await status(store, "CA-m", "in-progress")
    answered = await store.attempts.record_answered_by("CA-m", "machine_end_beep")
    assert answered is not None and answered.answered_by == "machine_end_beep"
    await store.attempts.record_machine_action(got.attempt.id, "voicemail")
    await store.attempts.session_ended(got.attempt.id, "completed")
    await status(store, "CA-m", "completed")
    settled = await store.attempts.settle(got.attempt.id)
    assert settled is not None
    assert (settled.outcome, settled.reason, settled.retry_at) == (
        "voicemail", "voicemail left", None,
    )  # fmt: skip


async def test_unsettled_lists_attempts_idle_for_a_while(store: Store, clock: Clock) -> None:
    attempt = await store.attempts.single(
        phone=phone(1), flow="demo_booking", variables={"user_name": "Ana"}, worker="w1"
    )
    assert attempt.campaign_id == "" and attempt.status == "dialing"
    assert await store.attempts.unsettled(idle_s=60) == []
    clock.now += timedelta(seconds=60)
    assert [a.id for a in await store.attempts.unsettled(idle_s=60)] == [attempt.id]
    await final(store, attempt, "CA-u", "no-answer")
    assert await store.attempts.unsettled(idle_s=60) == []  # it just changed
    settled = await store.attempts.settle(attempt.id)
    assert settled is not None and settled.outcome == "no_answer" and settled.retry_at is None
    clock.now += timedelta(hours=1)
    assert await store.attempts.unsettled(idle_s=60) == []


# -- the campaign's end --------------------------------------------------------------------------


async def test_the_campaign_is_done_when_nothing_is_pending_or_dialing(
    store: Store, clock: Clock
) -> None:
    cid = await new_campaign(store, [
        NewContact(line=1, phone=phone(1), timezones=(NY,)),
        NewContact(line=2, phone="555", outcome="invalid", reason="not a phone number"),
    ])  # fmt: skip
    got = await claimed(store, cid)
    clock.now += timedelta(seconds=1)
    assert await claim(store, cid) == Wait("calls in progress")
    campaign = await store.campaigns.get(cid)
    assert campaign is not None and campaign.status == "running"
    await final(store, got.attempt, "CA-d", "no-answer")
    await store.attempts.settle(got.attempt.id)
    row = await contact(store, cid, got.contact.id)
    assert row.state == "pending"  # no_answer is tried again
    clock.now = row.next_at
    second = await claimed(store, cid)
    await store.attempts.settle(second.attempt.id, dial_error="boom")
    clock.now += timedelta(days=1)
    third = await claimed(store, cid)
    await final(store, third.attempt, "CA-d3", "busy")
    assert await store.attempts.settle(third.attempt.id) is not None
    clock.now += timedelta(days=1)
    assert await claim(store, cid) == Wait("done")
    campaign = await store.campaigns.get(cid)
    assert campaign is not None and campaign.status == "done"
    assert await claim(store, cid) == Wait("not running")
    assert await store.campaigns.counts(cid) == {"busy": 1, "invalid": 1}


async def test_a_campaign_of_invalid_rows_only_starts_done(store: Store) -> None:
    cid = await new_campaign(
        store, [NewContact(line=1, phone="x", outcome="invalid", reason="not a number")]
    )
    campaign = await store.campaigns.get(cid)
    assert campaign is not None and campaign.status == "done"
    assert await claim(store, cid) == Wait("not running")


# -- status callbacks ----------------------------------------------------------------------------


async def test_record_status_never_moves_back_and_keeps_a_bounded_history(
    store: Store, clock: Clock
) -> None:
    attempt = await store.attempts.single(
        phone=phone(1), flow="demo_booking", variables={}, worker="w1"
    )
    assert (
        await store.attempts.record_status("CA-unknown", "ringing", event={}, duration_s=None)
        is None
    )
    await store.attempts.dialed(attempt.id, "CA-r")
    dialed = await store.attempts.get(attempt.id)
    assert dialed is not None and (dialed.status, dialed.call_sid) == ("queued", "CA-r")
    assert (await status(store, "CA-r", "ringing")).status == "ringing"
    clock.now += timedelta(seconds=3)
    answered = await status(store, "CA-r", "in-progress")
    assert answered.status == "in-progress" and answered.answered_at == clock.now
    clock.now += timedelta(seconds=1)
    late = await status(store, "CA-r", "ringing")  # a late callback
    assert late.status == "in-progress" and late.answered_at == answered.answered_at
    assert late.final_at is None
    assert (await status(store, "CA-r", "queued")).status == "in-progress"
    assert len(late.events) == 3

    for _ in range(MAX_EVENTS + 5):
        row = await status(store, "CA-r", "in-progress")
    assert len(row.events) == MAX_EVENTS
    assert row.events[0] == {"CallStatus": "ringing", "CallSid": "CA-r"}

    done = await status(store, "CA-r", "completed", duration_s=61)
    assert done.status == "completed" and done.final_at == clock.now and done.duration_s == 61
    clock.now += timedelta(seconds=1)
    after = await status(store, "CA-r", "busy")  # nothing moves a final status
    assert after.status == "completed" and after.final_at == done.final_at
    assert len(after.events) == MAX_EVENTS

    await store.attempts.dialed(attempt.id, "CA-other")  # never rebound to another call
    bound = await store.attempts.get(attempt.id)
    assert bound is not None and bound.call_sid == "CA-r"
    assert await store.attempts.by_sid("CA-other") is None
