"""A call's row in the store, written while the call goes on, and the rows of dead processes.

Writing (``CallPersister``): the session marks the record changed — at the start, after every
reply, and it costs a flag — and one background task per call writes the latest snapshot. Marks
made while a write is in flight coalesce into the next write, so there are never two writes in
flight for a call and the frame path never waits for the database. With no change the task still
rewrites every ``HEARTBEAT_S``: ``written_at`` is the call's heartbeat. ``finish`` stops the task
(after the write in flight) and writes the final record, so the final write is the last and wins.
A failed write is reported once (``database`` in the call's errors and the metric) until a write
succeeds again; the call itself goes on.

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
                 *, heartbeat_s: float = HEARTBEAT_S) -> None:
        self._store = store
        self._record = record
        self._on_error = on_error
        self._heartbeat_s = heartbeat_s
        self._writer = str(this_writer())
        self._changed = asyncio.Event()
        self._stopping = False
        self._failing = False  # the last write failed (reported once per outage)
        self._task: asyncio.Task[None] | None = None

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
        """Begin, with the call's first write."""
        self._changed.set()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"persist-{self._record.call_sid}")

    def changed(self) -> None:
        """The record changed: it will be written soon (never blocks)."""
        self._changed.set()

    async def finish(self) -> None:
        """The call is over: let a write in flight end, then write the final record."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._changed.set()
            await asyncio.wait([task])
        await self._write()

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._heartbeat_s):
                    await self._changed.wait()
            except TimeoutError:
                pass  # nothing changed: rewrite as the heartbeat
            if self._stopping:
                return
            self._changed.clear()
            await self._write()

    async def _write(self) -> None:
        snapshot = StoredCall.from_record(self._record, writer=self._writer)
        try:
            await self._store.calls.save(snapshot)
        except Exception as exc:  # the database being down must not end the call
            log.warning("could not store call call_sid=%s: %s", self._record.call_sid,
                        type(exc).__name__)
            if not self._failing:
                self._failing = True
                self._on_error(ProviderError("database",
                                             f"call record not stored: {type(exc).__name__}"))
        else:
            self._failing = False
