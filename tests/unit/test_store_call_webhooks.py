"""End-of-call webhook jobs in the store, on both databases: one per call, claimed by one
worker, leased, retried, given up, delivered once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from slotline.agent.store import Store, StoredCall, open_store

T0 = datetime(2026, 6, 2, 14, 0, tzinfo=UTC)
SID = "CA" + "a" * 32


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def store(store_url: str, clock: Clock) -> AsyncIterator[Store]:
    async with open_store(store_url, clock=clock) as opened:
        await opened.calls.save(StoredCall(call_sid=SID, flow="demo_booking",
                                           status="completed", started_at=T0))
        yield opened


async def test_the_outcome_lands_on_the_call_with_one_job_per_call(store: Store) -> None:
    repo = store.call_webhooks
    assert await repo.record_outcome(SID, outcome="booked", summary="Jane booked.",
                                     payload='{"call_sid": "x"}')
    # a second end of the same call (a replayed stream) adds no second job
    assert not await repo.record_outcome(SID, outcome="booked", summary="Jane booked.",
                                         payload='{"other": 1}')
    stored = await store.calls.get(SID)
    assert stored is not None and (stored.outcome, stored.summary) == ("booked", "Jane booked.")
    assert stored.as_json()["outcome"] == "booked"
    job = await repo.get(SID)
    assert job is not None and job.payload == '{"call_sid": "x"}' and job.attempts == 0
    # without a webhook: the outcome only
    other = "CA" + "b" * 32
    assert not await repo.record_outcome(other, outcome="failed", summary="", payload=None)
    assert await repo.get(other) is None


async def test_claims_leases_retries_and_delivery(store: Store, clock: Clock) -> None:
    repo = store.call_webhooks
    await repo.record_outcome(SID, outcome="completed", summary="", payload="{}")
    (job,) = await repo.claim_due("w1", limit=5, lease_s=60)
    assert job.attempts == 1 and job.claimed_by == "w1"
    assert await repo.claim_due("w2", limit=5, lease_s=60) == []  # leased to w1
    assert await repo.next_due_at() is None  # w1 settles it: nothing for others to wait on
    assert await repo.retry_later(SID, "w1", at=T0 + timedelta(seconds=30), error="HTTP 500")
    assert await repo.next_due_at() == T0 + timedelta(seconds=30)
    assert await repo.claim_due("w2", limit=5, lease_s=60) == []  # not due yet
    clock.now = T0 + timedelta(seconds=30)
    (again,) = await repo.claim_due("w2", limit=5, lease_s=60)
    assert (again.attempts, again.last_error) == (2, "HTTP 500")
    # w2 dies mid-POST: after the lease, w3 takes the job over and w2's late answer is refused
    clock.now += timedelta(seconds=61)
    (taken,) = await repo.claim_due("w3", limit=5, lease_s=60)
    assert taken.attempts == 3
    assert not await repo.mark_delivered(SID, "w2")
    assert await repo.mark_delivered(SID, "w3")
    clock.now += timedelta(days=1)
    assert await repo.claim_due("w4", limit=5, lease_s=60) == []  # delivered: never again
    assert await repo.next_due_at() is None
    done = await repo.get(SID)
    assert done is not None and done.delivered_at is not None and done.last_error == ""


async def test_given_up_jobs_stay_with_their_error_and_released_ones_cost_no_attempt(
    store: Store,
) -> None:
    repo = store.call_webhooks
    await repo.record_outcome(SID, outcome="completed", summary="", payload="{}")
    await repo.claim_due("w1", limit=5, lease_s=60)
    assert await repo.release(SID, "w1")  # shutting down mid-send
    (job,) = await repo.claim_due("w2", limit=5, lease_s=60)
    assert job.attempts == 1
    assert await repo.give_up(SID, "w2", "HTTP 404")
    assert await repo.claim_due("w3", limit=5, lease_s=60) == []
    kept = await repo.get(SID)
    assert kept is not None and kept.failed_at is not None and kept.last_error == "HTTP 404"


async def test_concurrent_workers_split_the_jobs(store: Store) -> None:
    repo = store.call_webhooks
    sids = [f"CA{i:032d}" for i in range(12)]
    for sid in sids:
        await repo.record_outcome(sid, outcome="completed", summary="", payload="{}")
    batches = await asyncio.gather(
        *(repo.claim_due(f"w{i}", limit=4, lease_s=60) for i in range(4))
    )
    claimed = [job.id for batch in batches for job in batch]
    assert sorted(claimed) == sorted(sids)  # each claimed once, none left out
