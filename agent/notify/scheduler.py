"""The background worker that sends reminders (and confirmations left for a retry) when due.

Every ``poll_s`` it claims a batch of due jobs from the store and hands each to
``Notifier.deliver``. Any number of schedulers may run against one database, in one process or
many: a job is claimed by one of them (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock
on SQLite) and marked sent by that one only. Jobs live in the database, so a restart loses none;
a scheduler killed mid-batch leaves its claims to run out (``lease_s``), then another sends them.

The lease must outlast a whole batch, or a slow batch could see its last jobs claimed again by
another scheduler; the constructor checks that against the batch size, the concurrency and the
notifier's send timeout.

    scheduler = ReminderScheduler(notifier, policies.get)
    await scheduler.start()
    ...
    await scheduler.aclose()
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid

from slotline.agent.notify.notifier import Delivery, Notifier, PolicyLookup, describe_error
from slotline.agent.store import ReminderJob
from slotline.providers.base import ResourceContext

logger = logging.getLogger(__name__)

# A reminder is due hours ahead; a few seconds late is nobody's concern, and an idle poll is
# one indexed query.
DEFAULT_POLL_S = 15.0
DEFAULT_BATCH_SIZE = 50
DEFAULT_CONCURRENCY = 10  # sends in flight per scheduler; vendors take many more
# On shutdown, how long sends already started may take before they are cut off (their jobs
# then wait for the lease).
DEFAULT_CLOSE_GRACE_S = 5.0


class ReminderScheduler(ResourceContext):
    """Claims and sends due notification jobs until closed. ``policy_for(action)`` gives a
    booking action's policy (None: the action sends nothing; its jobs are given up)."""

    def __init__(
        self,
        notifier: Notifier,
        policy_for: PolicyLookup,
        *,
        worker_id: str = "",
        poll_s: float = DEFAULT_POLL_S,
        lease_s: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        close_grace_s: float = DEFAULT_CLOSE_GRACE_S,
    ) -> None:
        lease_s = notifier.lease_s if lease_s is None else lease_s
        rounds = math.ceil(batch_size / concurrency) if concurrency > 0 else 0
        if poll_s <= 0 or batch_size < 1 or concurrency < 1:
            raise ValueError("poll_s, batch_size and concurrency must be positive")
        if lease_s <= rounds * notifier.send_timeout_s:
            raise ValueError(
                f"lease_s ({lease_s}) must outlast a batch: {rounds} rounds of sends of up to "
                f"{notifier.send_timeout_s} s each"
            )
        self._notifier = notifier
        self._policy_for = policy_for
        self.worker_id = worker_id or f"scheduler-{uuid.uuid4().hex[:12]}"
        self._poll_s = poll_s
        self._lease_s = lease_s
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._close_grace_s = close_grace_s
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the reminder scheduler is already running")
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"reminders-{self.worker_id}")

    async def aclose(self) -> None:
        """Stop claiming; let sends in flight finish for ``close_grace_s``, then cut them off."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        done, _ = await asyncio.wait({task}, timeout=self._close_grace_s)
        if not done:
            task.cancel()
            await asyncio.wait({task})
        error = None if task.cancelled() else task.exception()
        if error is not None:
            logger.error("reminder scheduler stopped on %s", describe_error(error))

    async def run_once(self) -> list[Delivery]:
        """Claim one batch of due jobs and send them; what became of each (tests, the CLI)."""
        _, deliveries = await self._batch()
        return deliveries

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                claimed, _ = await self._batch()
            except Exception as error:  # the store is unreachable: try again at the next poll
                logger.warning("reminder scheduler: %s", describe_error(error))
                claimed = 0
            if claimed < self._batch_size:  # a full batch: more may be waiting, go on at once
                try:
                    await asyncio.wait_for(self._stopping.wait(), self._poll_s)
                except TimeoutError:
                    pass

    async def _batch(self) -> tuple[int, list[Delivery]]:
        reminders = self._notifier.store.reminders
        jobs = await reminders.claim_due(
            self.worker_id, limit=self._batch_size, lease_s=self._lease_s
        )
        deliveries: list[Delivery] = []
        gate = asyncio.Semaphore(self._concurrency)

        async def send(job: ReminderJob) -> None:
            async with gate:
                if self._stopping.is_set():  # shutting down: hand it back untouched
                    await reminders.release(job.id, self.worker_id)
                    return
                try:
                    delivery = await self._notifier.deliver(
                        job, worker=self.worker_id, policy_for=self._policy_for
                    )
                except Exception as error:  # the store failed: the job waits out its lease
                    logger.warning(
                        "booking %s: %s left for later: %s",
                        job.booking_id, job.kind, describe_error(error),
                    )  # fmt: skip
                    return
                deliveries.append(delivery)

        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(send(job), name=f"reminder-{job.booking_id}-{job.kind}")
        return len(jobs), deliveries
