"""``slotline serve --workers N``: one server process per core behind one port.

A call lives on the event loop of the process that holds its WebSocket, so N processes carry N
times the calls on N cores. The supervisor (this module, in the parent) starts N workers; each
binds the same host:port with ``SO_REUSEPORT`` and the kernel spreads new connections across
them. A worker that dies is restarted (at most ``MAX_RESTARTS`` times a minute); SIGTERM or
SIGINT stops them all gracefully (calls in progress get ``GRACE_S`` to finish).

Workers share nothing in memory: use a PostgreSQL store (``store.url``) so bookings, holds and
reminder jobs are shared and guarded across them (SQLite works, one writer at a time). The call
log of a call in progress is only in the worker running it; ``GET /api/calls/{sid}`` answers
from any worker once the call is over (it is read from the store).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import signal
import socket
import time
from collections import deque
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

GRACE_S = 10.0
MAX_RESTARTS = 5  # per worker slot per minute; beyond that the supervisor gives up


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A socket bound with SO_REUSEPORT to ``host:port`` (0 = a free port), kept open by the
    supervisor so the port stays ours; it never listens, so it takes no connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock, int(sock.getsockname()[1])


def _worker(config_path: str | None, host: str, port: int) -> None:
    """One worker: its own providers, store pool and event loop on the shared port."""
    from agent.serve import serve_worker  # here: a spawned process imports what it needs

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; SIGTERM stops us
    raise SystemExit(serve_worker(Path(config_path) if config_path else None, host, port))


class Supervisor:
    def __init__(self, workers: int, config_path: Path | None, host: str, port: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._count = workers
        self._config = str(config_path) if config_path else None
        self._host = host
        self._port = port
        self._context = multiprocessing.get_context("spawn")
        self._procs: dict[int, BaseProcess] = {}
        self._restarts: dict[int, deque[float]] = {i: deque() for i in range(workers)}
        self._stopping = False

    def _start(self, index: int) -> None:
        proc = self._context.Process(
            target=_worker, args=(self._config, self._host, self._port),
            name=f"slotline-worker-{index}", daemon=False,
        )
        proc.start()
        self._procs[index] = proc
        log.info("worker %d started pid=%s", index, proc.pid)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        reserved, self._port = reserve_port(self._host, self._port)
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        print(f"slotline: serving on http://{self._host}:{self._port} with {self._count} "
              "workers", flush=True)
        try:
            for index in range(self._count):
                self._start(index)
            return self._watch()
        finally:
            self._shutdown()
            reserved.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _watch(self) -> int:
        while not self._stopping:
            sentinels = {proc.sentinel: index for index, proc in self._procs.items()}
            ready = multiprocessing.connection.wait(list(sentinels), timeout=0.5)
            for sentinel in ready:
                if self._stopping or not isinstance(sentinel, int):
                    break
                index = sentinels[sentinel]
                proc = self._procs[index]
                proc.join()
                if proc.exitcode == 2:  # invalid configuration: restarting cannot help
                    log.error("worker %d: invalid configuration; stopping", index)
                    return 2
                recent = self._restarts[index]
                now = time.monotonic()
                while recent and now - recent[0] > 60:
                    recent.popleft()
                if len(recent) >= MAX_RESTARTS:
                    log.error("worker %d died %d times in a minute; stopping", index,
                              MAX_RESTARTS)
                    return 1
                recent.append(now)
                log.warning("worker %d exited with %s; restarting", index, proc.exitcode)
                self._start(index)
        return 0

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
