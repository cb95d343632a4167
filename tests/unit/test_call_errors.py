"""Issue 17, defects 8 and 9, below the call: what the flow says about a failed booking, the
runner naming and reporting failures, and the start-up sweep of calls whose process died.
(The same through whole calls: tests/e2e/test_call_errors_by_voice.py, test_call_persisted.py.)
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import pytest

from slotline.agent.booking.runner import ServiceBookingRunner
from slotline.agent.call.persist import (
    STOPPED,
    Writer,
    abandoned,
    fail_abandoned_calls,
    this_writer,
)
from slotline.agent.call.responder import CallerSaid, CallStarted
from slotline.agent.flow import AvailabilityReady, BookingFinished, RunBooking
from slotline.agent.flow.booking_steps import COULD_NOT_BOOK, TAKEN, UNAVAILABLE
from slotline.agent.flow.messages import Attendee as FlowAttendee
from slotline.agent.flow.messages import Preferences
from slotline.agent.store import Store, StoredCall, open_store, utc_now
from slotline.agent.store.calls import LiveRow
from slotline.providers.errors import ProviderError
from tests.e2e.providers import ZONE
from tests.unit.test_booking_collective_faults import (
    ANA,
    CANCEL,
    CREATE,
    ONE_TRY,
    THREE_PM,
    collective,
    offer,
)
from tests.unit.test_flow_engine import AT_14, AT_16, booking_engine, says

# ---- what the caller hears (agent.flow.booking_steps) ----------------------------------------


def _booking_the_candidate(reason: str) -> list[str]:
    """Offered 2 pm, the caller says yes, the write fails with ``reason`` (4 pm still free)."""
    e = booking_engine(confirm=True)
    e.handle(CallStarted("CA1"))
    e.handle(AvailabilityReady("book", AT_14, (AT_16,)))
    assert isinstance(e.handle(CallerSaid("yes"))[-1], RunBooking)
    return says(e.handle(BookingFinished("book", False, alternatives=(AT_16,), reason=reason)))


@pytest.mark.parametrize("reason", ["calendar_error", "database_error"])
def test_a_failed_write_is_not_called_taken_and_takes_the_failure_edge(reason: str) -> None:
    said = _booking_the_candidate(reason)
    assert said == [COULD_NOT_BOOK, "Sorry. "], said  # the flow's failure node follows


def test_just_taken_is_said_only_when_the_write_found_it_taken() -> None:
    assert _booking_the_candidate("taken")[0].startswith(TAKEN)
    unavailable = _booking_the_candidate("unavailable")[0]
    assert unavailable.startswith(UNAVAILABLE) and TAKEN not in unavailable


# ---- the runner names and reports failures (agent.booking.runner) ----------------------------


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as opened:
        yield opened


@pytest.fixture
async def store(stack: AsyncExitStack, store_url: str) -> Store:
    return await stack.enter_async_context(open_store(store_url))


async def test_a_booking_left_half_done_is_reported_and_on_the_call(
    stack: AsyncExitStack, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await collective(stack, store, ("first", "second"), retry=ONE_TRY, undo_attempts=2,
                            undo_backoff_s=0.01)
    await offer(pool)
    pool.vendors["second"].fail_next_on(CREATE, 500)
    pool.vendors["first"].fail_next_on(CANCEL, 503, count=2)  # the undo never takes
    reported: list[ProviderError] = []
    runner = ServiceBookingRunner(pool.service, call_sid="CA-half", caller_tz=ZONE,
                                  clock=utc_now, on_error=reported.append)
    request = RunBooking("book", "demo", Preferences(THREE_PM.date().isoformat(), "15:00"),
                         FlowAttendee(ANA.name, ANA.email, ANA.phone, ZONE),
                         slot_start=THREE_PM.isoformat())
    with caplog.at_level(logging.ERROR):
        finished = await runner.run(request)
    [kept] = await store.bookings.for_call("CA-half")
    assert kept.status == "confirmed"
    assert (finished.success, finished.reason) == (False, "calendar_error")
    assert runner.booking_ids == (kept.id,)  # the call record shows what needs a hand
    assert [type(e).__name__ for e in reported] == ["BookingIncomplete"]


# ---- calls whose process died (agent.call.persist) -------------------------------------------

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
ME = Writer("host-a", 4242, "boot-1")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _row(writer: str, written_ago_s: float | None = 5.0) -> LiveRow:
    written = None if written_ago_s is None else NOW - timedelta(seconds=written_ago_s)
    return LiveRow("CA1", writer, written, NOW - timedelta(hours=1))


def test_the_rule_for_in_progress_rows() -> None:
    alive, dead = os.getppid(), _dead_pid()
    assert not abandoned(_row(f"host-a:{alive}:boot-1"), ME, NOW)  # a live worker's call
    assert abandoned(_row(f"host-a:{dead}:boot-1"), ME, NOW)  # its worker died
    assert abandoned(_row("host-a:4242:boot-1"), ME, NOW)  # our pid, reused: not ours yet
    assert abandoned(_row(f"host-a:{alive}:boot-0"), ME, NOW)  # before a reboot
    assert not abandoned(_row(f"host-b:{dead}:boot-9"), ME, NOW)  # another host's: the lease
    assert abandoned(_row(f"host-b:{alive}:boot-9", written_ago_s=601), ME, NOW)
    assert not abandoned(_row(f"host-b:{alive}:boot-9", written_ago_s=599), ME, NOW)
    assert abandoned(_row("", written_ago_s=None), ME, NOW)  # no writer, started an hour ago


async def test_the_sweep_fails_dead_writers_calls_and_spares_live_ones(store: Store) -> None:
    me = this_writer()
    started = utc_now()
    dead = f"{me.host}:{_dead_pid()}:{me.boot}"
    live = f"{me.host}:{os.getppid()}:{me.boot}"
    for sid, writer in (("CA-dead", dead), ("CA-live", live)):
        await store.calls.save(StoredCall(sid, "demo_booking", "in-progress", started,
                                          writer=writer))
    await store.calls.save(StoredCall("CA-done", "demo_booking", "completed", started,
                                      writer=dead))
    assert await fail_abandoned_calls(store, me) == ["CA-dead"]
    failed = await store.calls.get("CA-dead")
    assert failed is not None and failed.status == "failed" and failed.ended_at is not None
    assert [e["message"] for e in failed.errors] == [STOPPED]
    for sid, status in (("CA-live", "in-progress"), ("CA-done", "completed")):
        kept = await store.calls.get(sid)
        assert kept is not None and kept.status == status


async def test_a_row_written_after_it_was_read_is_not_failed(store: Store) -> None:
    await store.calls.save(StoredCall("CA1", "demo_booking", "in-progress", utc_now(),
                                      writer="host-x:1:b"))
    [seen] = await store.calls.in_progress()
    await store.calls.save(StoredCall("CA1", "demo_booking", "in-progress", utc_now(),
                                      writer="host-x:1:b"))  # its writer is alive after all
    error = {"at": "", "provider": "server", "message": STOPPED}
    assert not await store.calls.fail_abandoned(seen, error, utc_now())
    again = await store.calls.get("CA1")
    assert again is not None and again.status == "in-progress"
