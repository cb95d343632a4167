"""``slotline serve --workers N``: one server process per core behind one port.

A call lives on the event loop of the process that holds its WebSocket, so N processes carry N
times the calls on N cores. The supervisor (this module, in the parent) starts N workers; each
binds the same host:port with ``SO_REUSEPORT`` and the kernel spreads new connections across
them. A worker that dies is restarted after a back-off (``Backoff``: at once, then doubling per
quick death of that slot, capped) while the other workers go on serving — one slot that cannot
start (a crash at start-up, a database it cannot reach yet) never takes the healthy ones down.
Only an invalid configuration (exit code 2), which no restart can fix, stops the supervisor.
SIGTERM or SIGINT stops them all gracefully (calls in progress get ``GRACE_S`` to finish); a
supervisor killed outright (SIGKILL, the OOM killer) takes its workers with it: each asked the
kernel for SIGTERM when its parent dies (``exit_with_parent``).

Workers share nothing in memory: use a PostgreSQL store (``store.url``) so bookings, holds and
reminder jobs are shared and guarded across them (SQLite works, one writer at a time). Every
call is written to the store as it goes, so ``GET /api/calls`` lists the live calls of every
worker from any of them (``agent.server.call_api``). Metrics are whole the same way: the workers
keep them in files of one directory the supervisor owns (``agent.server.metrics_process``) and
``/metrics`` from any worker reads them all.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from slotline.agent.server.metrics_process import MetricsDir

log = logging.getLogger(__name__)

GRACE_S = 10.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# How often the supervisor looks up when nothing happens (signals are handled in between).
_POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class Backoff:
    """When a slot's worker is restarted after it died.

    The first death restarts at once (a one-off crash costs no capacity); each further death
    of a worker that lived less than ``stable_after_s`` doubles the wait from ``base_s`` up to
    ``cap_s``, so a worker that cannot start costs a spawn every ``cap_s``, not a busy loop.
    A worker that lived ``stable_after_s`` starts its slot's count afresh.
    """

    base_s: float = 0.5
    cap_s: float = 30.0
    stable_after_s: float = 60.0

    def delay_s(self, quick_deaths: int) -> float:
        """The wait before the restart that follows the ``quick_deaths``-th death in a row."""
        if quick_deaths <= 1:
            return 0.0
        return min(self.cap_s, self.base_s * 2.0 ** min(quick_deaths - 2, 32))

    def deaths_after(self, quick_deaths: int, lived_s: float) -> int:
        """The slot's count once a worker that lived ``lived_s`` has died."""
        return 1 if lived_s >= self.stable_after_s else quick_deaths + 1


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A socket bound with SO_REUSEPORT to ``host:port`` (0 = a free port), kept open by the
    supervisor so the port stays ours; it never listens, so it takes no connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock, int(sock.getsockname()[1])


def exit_with_parent(parent_pid: int) -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``),
    so a supervisor killed with SIGKILL — which runs no handler — leaves no worker holding the
    port. A parent that died before the request was made is seen at once."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("cannot ask to exit with the supervisor: errno %d", ctypes.get_errno())
    if os.getppid() != parent_pid:  # already orphaned (adopted by init or a subreaper)
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(config_path: str | None, host: str, port: int, parent_pid: int) -> None:
    """One worker: its own providers, store pool and event loop on the shared port."""
    from slotline.agent.server.serve import (
        serve_worker,  # here: a spawned process imports what it needs
    )

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; SIGTERM stops us
    exit_with_parent(parent_pid)
    raise SystemExit(serve_worker(Path(config_path) if config_path else None, host, port))


class Supervisor:
    def __init__(
        self, workers: int, config_path: Path | None, host: str, port: int,
        backoff: Backoff | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._count = workers
        self._config = str(config_path) if config_path else None
        self._host = host
        self._port = port
        self._context = multiprocessing.get_context("spawn")
        self._backoff = backoff or Backoff()
        self._procs: dict[int, BaseProcess] = {}  # slot -> its worker (alive or not yet reaped)
        self._started_at: dict[int, float] = {}  # slot -> monotonic start of its worker
        self._deaths: dict[int, int] = {i: 0 for i in range(workers)}  # quick deaths in a row
        self._due: dict[int, float] = {}  # slot -> monotonic time its restart is due
        self._stopping = False
        self._announced = False
        self._metrics: MetricsDir | None = None

    def _start(self, index: int) -> None:
        proc = self._context.Process(
            target=_worker, args=(self._config, self._host, self._port, os.getpid()),
            name=f"slotline-worker-{index}", daemon=False,
        )
        proc.start()
        self._procs[index] = proc
        self._started_at[index] = time.monotonic()
        log.info("worker %d started pid=%s", index, proc.pid)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        try:
            reserved, self._port = reserve_port(self._host, self._port)
        except OSError as exc:
            print(f"slotline: cannot listen on {self._host}:{self._port}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 1
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        self._metrics = MetricsDir.open()  # before the first spawn: the workers inherit it
        try:
            for index in range(self._count):
                self._start(index)
            return self._watch()
        finally:
            self._shutdown()
            self._metrics.close()
            reserved.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _watch(self) -> int:
        while not self._stopping:
            self._announce_once_listening()
            sentinels = {proc.sentinel: index for index, proc in self._procs.items()
                         if index not in self._due}
            now = time.monotonic()
            timeout_s = min([_POLL_S, *(max(0.0, due - now) for due in self._due.values())])
            if sentinels:
                ready = multiprocessing.connection.wait(list(sentinels), timeout=timeout_s)
            else:  # every slot is waiting out its back-off
                time.sleep(timeout_s)
                ready = []
            for sentinel in ready:
                if self._stopping or not isinstance(sentinel, int):
                    break
                if self._reap(sentinels[sentinel]) == 2:
                    return 2
            now = time.monotonic()
            for index, due in list(self._due.items()):
                if not self._stopping and due <= now:
                    del self._due[index]
                    self._start(index)
        return 0

    def _announce_once_listening(self) -> None:
        """"serving on" once a worker accepts on the port (flow, store and providers checked),
        not when the supervisor merely reserved it: a script may wait for the line."""
        if self._announced:
            return
        target = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self._host,
                                                                          self._host)
        try:
            socket.create_connection((target, self._port), timeout=_POLL_S).close()
        except OSError:
            return
        self._announced = True
        print(f"slotline: serving on http://{self._host}:{self._port} with {self._count} "
              "workers", flush=True)

    def _reap(self, index: int) -> int | None:
        """A slot's worker has exited: schedule its restart; its exit code."""
        proc = self._procs[index]
        proc.join()
        if self._metrics is not None:  # its live gauges go; its counters stay in the totals
            self._metrics.mark_dead(proc.pid)
        if proc.exitcode == 2:  # invalid configuration: restarting cannot help
            log.error("worker %d: invalid configuration; stopping", index)
            return 2
        now = time.monotonic()
        deaths = self._backoff.deaths_after(self._deaths[index], now - self._started_at[index])
        self._deaths[index] = deaths
        delay_s = self._backoff.delay_s(deaths)
        self._due[index] = now + delay_s
        log.warning("worker %d exited with %s (%d quick deaths in a row); restarting in %.1f s",
                    index, proc.exitcode, deaths, delay_s)
        return proc.exitcode

    def _shutdown(self) -> None:
        for proc in self._procs.values():
            if proc.is_alive():
                proc.terminate()  # SIGTERM: aiohttp shuts down gracefully
        deadline = time.monotonic() + GRACE_S
        for proc in self._procs.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
