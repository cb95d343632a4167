"""A call's row in the store, written while the call goes on, and the rows of dead processes.

Writing (``CallPersister``): the session marks the record changed — at the start, after every
reply, and it costs a flag. One task per process and store (``CallRows``) writes the latest
snapshot of every marked call, all of them in one transaction, at most every ``BATCH_S``: marks
made in between (by any call, or by one call several times) coalesce into that write, so a
store write costs one transaction per ``BATCH_S`` however many calls are live (a transaction is
most of a row's cost: ~1 ms of CPU on SQLite, most of it hops to the driver's thread), a call's
row is at most ``BATCH_S`` behind it, and the frame path never waits for the database. A call
with no change is still rewritten every ``HEARTBEAT_S``: ``written_at`` is its heartbeat.
``finish`` takes the call out of the batches, waits for a batch in flight that holds it, and
writes the final record itself, so the final write is the last and wins. A failed batch is
written again row by row (one bad row costs no other call its write); a failed write is reported
once per call (``database`` in the call's errors and the metric) until a write succeeds again;
the call itself goes on.

Every row names its writer, ``host:pid:boot`` (the boot id tells a pid reused after a reboot).

Start-up sweep (``fail_abandoned_calls``), the rule: an ``in-progress`` row is abandoned and is
marked ``failed`` with the error "the server stopped during the call" when
- its writer is on this host and this boot, and that pid is not running — or is this process,
  which has no call yet at start-up (a dead worker's pid reused);
- its writer is on this host but from another boot (the machine restarted);
- whatever its host, it has not been written for ``LEASE_S`` (its process is gone or wedged;
  a live call rewrites every ``HEARTBEAT_S``, far inside the lease), or it has no writer and
  started more than ``LEASE_S`` ago (written by a version that recorded none).
Rows of other hosts are judged by the lease alone: their pids mean nothing here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from slotline.agent.call.calllog import CallRecord, now_iso
from slotline.agent.call.errors import ErrorSink
from slotline.agent.store import Store, StoredCall
from slotline.agent.store.calls import LiveRow
from slotline.providers.errors import ProviderError

log = logging.getLogger(__name__)

# A live call rewrites its row at least this often; well under the lease, so a slow database
# or a busy loop never makes a live call look abandoned.
HEARTBEAT_S = 120.0
# Live rows are written together at most this often (the console polls every second).
BATCH_S = 0.5
# No write for this long while in progress: the writer is gone (10 min = five heartbeats).
LEASE_S = 600.0
STOPPED = "the server stopped during the call"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True, slots=True)
class Writer:
    host: str
    pid: int
    boot: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.boot}"

    @classmethod
    def parse(cls, text: str) -> Writer | None:
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])


@cache
def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:  # not Linux: the lease alone judges this host's old rows
        return ""


def this_writer() -> Writer:
    """This process (the pid is read each time: workers are spawned processes)."""
    return Writer(socket.gethostname(), os.getpid(), _boot_id())


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def abandoned(row: LiveRow, me: Writer, now: datetime, lease_s: float = LEASE_S) -> bool:
    """The module's rule, for one in-progress row, seen from process ``me`` at start-up."""
    lease = timedelta(seconds=lease_s)
    writer = Writer.parse(row.writer)
    if writer is None:
        return now - (row.written_at or row.started_at) > lease
    if row.written_at is not None and now - row.written_at > lease:
        return True
    if writer.host != me.host:
        return False
    if writer.boot != me.boot:
        return bool(me.boot and writer.boot)  # no boot id: the lease decides
    return writer.pid == me.pid or not pid_running(writer.pid)


async def fail_abandoned_calls(store: Store, me: Writer | None = None,
                               lease_s: float = LEASE_S) -> list[str]:
    """Mark the abandoned in-progress calls failed (module rule); their call sids."""
    me = me or this_writer()
    now = datetime.now(UTC)
    closed = []
    for row in await store.calls.in_progress():
        if not abandoned(row, me, now, lease_s):
            continue
        error = {"at": now_iso(), "provider": "server", "message": STOPPED}
        if await store.calls.fail_abandoned(row, error, now):
            closed.append(row.call_sid)
    if closed:
        log.warning("marked %d call(s) failed: their server stopped during the call (%s)",
                    len(closed), ", ".join(closed[:10]))
    return closed


class CallPersister:
    """Writes one call's record as it goes (module doc); owned by the call's session."""

    def __init__(self, store: Store, record: CallRecord, on_error: ErrorSink,
                 *, rows: CallRows | None = None) -> None:
        self._store = store
        self.record = record
        self._on_error = on_error
        self.writer = str(this_writer())
        self.written_at = 0.0  # the loop time of the last write (0: none yet)
        self._failing = False  # the last write failed (reported once per outage)
        self._batches = rows  # None: the store's (``CallRows.of``)
        self._rows: CallRows | None = None

    @classmethod
    def started(cls, store: Store | None, record: CallRecord,
                on_error: ErrorSink) -> CallPersister | None:
        """A running persister for ``record`` (None without a store)."""
        if store is None:
            return None
        persister = cls(store, record, on_error)
        persister.start()
        return persister

    def start(self) -> None:
        """Begin, with the call's first write (in the next batch)."""
        self._rows = self._batches or CallRows.of(self._store)
        self._rows.add(self)

    def changed(self) -> None:
        """The record changed: it will be written in the next batch (never blocks)."""
        if self._rows is not None:
            self._rows.mark(self)

    def snapshot(self) -> StoredCall:
        return StoredCall.from_record(self.record, writer=self.writer)

    async def finish(self) -> None:
        """The call is over: let a batch in flight that holds it end, then write the final
        record."""
        rows, self._rows = self._rows, None
        if rows is not None:
            await rows.remove(self)
        try:
            await self._store.calls.save(self.snapshot())
        except Exception as exc:  # the database being down must not end the call
            self.failed(exc)
        else:
            self.wrote(asyncio.get_running_loop().time())

    def wrote(self, at: float) -> None:
        self.written_at = at
        self._failing = False

    def failed(self, exc: BaseException) -> None:
        log.warning("could not store call call_sid=%s: %s", self.record.call_sid,
                    type(exc).__name__)
        if not self._failing:
            self._failing = True
            self._on_error(ProviderError("database",
                                         f"call record not stored: {type(exc).__name__}"))


class CallRows:
    """The live calls' rows of one store in this process, written in batches (module doc). Its
    task runs while any call is live."""

    _of: weakref.WeakKeyDictionary[Store, CallRows] = weakref.WeakKeyDictionary()

    def __init__(self, store: Store, *, batch_s: float = BATCH_S,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        self._store = store
        self._batch_s = batch_s
        self._heartbeat_s = heartbeat_s
        self._live: set[CallPersister] = set()
        self._marked: dict[CallPersister, None] = {}  # insertion-ordered set
        self._wake = asyncio.Event()
        self._in_flight: tuple[frozenset[CallPersister], asyncio.Future[None]] | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, store: Store) -> CallRows:
        """The store's batcher in this process."""
        rows = cls._of.get(store)
        if rows is None:
            rows = cls._of[store] = cls(store)
        return rows

    def add(self, persister: CallPersister) -> None:
        self._live.add(persister)
        self.mark(persister)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="call-rows")

    def mark(self, persister: CallPersister) -> None:
        if persister in self._live:
            self._marked[persister] = None
            self._wake.set()

    async def remove(self, persister: CallPersister) -> None:
        """No more batched writes of ``persister``; returns once none is in flight."""
        self._live.discard(persister)
        self._marked.pop(persister, None)
        if not self._live:
            self._wake.set()  # the task ends
        flight = self._in_flight
        if flight is not None and persister in flight[0]:
            await asyncio.shield(flight[1])

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._live:
            try:
                async with asyncio.timeout(self._heartbeat_s / 4):
                    await self._wake.wait()
            except TimeoutError:  # nothing marked: rewrite the rows due a heartbeat
                due = loop.time() - self._heartbeat_s
                self._marked.update((p, None) for p in self._live if p.written_at <= due)
            self._wake.clear()
            if not self._marked:
                continue
            await asyncio.sleep(self._batch_s)  # let more marks gather
            batch, self._marked = tuple(self._marked), {}
            batch = tuple(p for p in batch if p in self._live)
            if not batch:
                continue
            done: asyncio.Future[None] = loop.create_future()
            self._in_flight = (frozenset(batch), done)
            try:
                await self._write(batch)
            finally:
                self._in_flight = None
                done.set_result(None)

    async def _write(self, batch: tuple[CallPersister, ...]) -> None:
        try:
            await self._store.calls.save_many([p.snapshot() for p in batch])
        except Exception as exc:  # the database being down must not end a call
            if len(batch) == 1:
                batch[0].failed(exc)
                return
            for persister in batch:  # one bad row must not cost the others their write
                await self._write((persister,))
            return
        now = asyncio.get_running_loop().time()
        for persister in batch:
            persister.wrote(now)
