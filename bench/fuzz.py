"""Fuzz a Slotline server process with bent Twilio traffic while a genuine call books.

    python -m bench.fuzz --messages 1000000 --seed 1 [--webhooks 50000] [--rate 1000]

The server runs as a subprocess (``slotline serve`` on a free 127.0.0.1 port, a fresh SQLite
store, its log captured to a file), so a crash is seen as a crash and not swallowed by a test's
event loop. First one genuine booking call on the idle server (the latency baseline), then the
fuzz: ``--sockets`` connections replay seeded mutations of valid media streams
(``bench/fuzz_cases.py``) at ``--rate`` messages a second, webhook and API requests with bad
bodies go alongside, and genuine booking calls run back to back until the fuzz is done. A second
server with a Twilio auth token gets the forged-signature webhooks. Goals (exit 1 if one is
missed): the processes live, no traceback or ERROR in the logs, no 5xx, no forged request
accepted, a bounded number of log lines per fuzz message, every genuine call books, and its
turn latency p95 stays within 1.5x the idle baseline (or 450 ms over it). ``bench/soak.py``
reuses the server-process and genuine-call helpers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import io
import math
import os
import random
import re
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from yarl import URL

from bench.fuzz_cases import RawText, fuzz_session, webhook_case
from slotline.agent.server.workers import exit_with_parent
from slotline.agent.sim.caller import run_caller
from slotline.agent.sim.demo import DEMO_SCRIPT, Utterance, caller_wav, fetch_stream
from slotline.agent.store import Store, open_store

LATENCY_RATIO_MAX = 1.5  # issue 17: fuzz alongside may cost a genuine call at most 50 % latency
# ... or this much, whichever is more: 50 % of the ~900 ms idle turn the goal was set against.
# Idle turns now end in ~400 ms (semantic end of turn), where 50 % is 200 ms: less than one
# scheduling stall of a 2-core box that runs the fuzz load beside the call.
LATENCY_SLACK_MS = 450.0
# A server that logs every dropped message lets one bad client fill the disk. Warnings are
# limited per call and code and per code across calls (agent.logs.RateLimitFilter), so their
# rate is bounded whatever the fuzzer sends: at most this many WARNING+ lines per second of fuzz,
# and per fuzz message. (INFO lines — a request's access line, a call's start and end — are
# one per legitimate event and are not counted as a flood.)
WARNING_LINES_PER_S_MAX = 20.0
WARNING_LINES_PER_MESSAGE_MAX = 0.1
SIGNED_TOKEN = "fuzz-token"  # the signed server's TWILIO_AUTH_TOKEN (loopback only)


# ---- the server under test, its log, and a genuine call ------------------------------------

# Lines that mean an exception escaped somewhere: each is a crashed call or worse.
CRASH_MARKERS = ("Traceback (most recent call last)", "ExceptionGroup",
                 "Task exception was never retrieved", "Error handling request",
                 "Unhandled exception")
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (\w+) ([\w.]+): ")
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


@dataclass(slots=True)
class LogFindings:
    lines: int = 0
    bytes: int = 0
    error_lines: int = 0
    first_error: str = ""
    crash_markers: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CRASH_MARKERS, 0))
    warnings: Counter[str] = field(default_factory=Counter)  # WARNING lines by logger

    def __add__(self, other: LogFindings) -> LogFindings:
        markers = {k: self.crash_markers[k] + other.crash_markers[k] for k in CRASH_MARKERS}
        return LogFindings(self.lines + other.lines, self.bytes + other.bytes,
                           self.error_lines + other.error_lines,
                           self.first_error or other.first_error, markers,
                           self.warnings + other.warnings)


def scan_log(text: str) -> LogFindings:
    """Count what a healthy server never writes: tracebacks, ERROR lines (and the volume)."""
    found = LogFindings(lines=text.count("\n"), bytes=len(text.encode()))
    for line in text.splitlines():
        for marker in CRASH_MARKERS:
            if marker in line:
                found.crash_markers[marker] += 1
        match = _LOG_LINE.match(line)
        if match is None:
            continue
        if match[1] in ("ERROR", "CRITICAL"):
            found.error_lines += 1
            found.first_error = found.first_error or line[:300]
        elif match[1] == "WARNING":
            found.warnings[match[2]] += 1
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(slots=True)
class ServerProcess:
    process: asyncio.subprocess.Process
    url: str  # http://127.0.0.1:PORT
    store_url: str
    log_path: Path

    @property
    def media_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/twilio/media"

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_text(self, start: int = 0) -> str:
        with self.log_path.open("rb") as file:
            file.seek(start)
            return file.read().decode(errors="replace")

    async def alive(self) -> bool:
        """Still running and answering ``/healthz``."""
        if self.process.returncode is not None:
            return False
        try:
            async with aiohttp.ClientSession() as http, http.get(
                    f"{self.url}/healthz", timeout=aiohttp.ClientTimeout(total=10)) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


@contextlib.asynccontextmanager
async def serve_subprocess(
    folder: Path, name: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[ServerProcess]:
    """``slotline serve`` on a free loopback port with its own SQLite file; stopped on exit."""
    port = free_port()
    store_url = f"sqlite:///{folder}/{name}.db"
    child_env = {
        **os.environ, "SLOTLINE_SERVER__HOST": "127.0.0.1", "SLOTLINE_SERVER__PORT": str(port),
        "SLOTLINE_STORE__URL": store_url, "SLOTLINE_LOG__LEVEL": "INFO",
        # Nothing may leave the machine: REST calls a fuzzed /api/calls might place go nowhere.
        "SLOTLINE_TWILIO__BASE_URL": "http://127.0.0.1:9", **(env or {}),
    }
    log_path = folder / f"{name}.log"
    slotline = Path(sys.executable).with_name("slotline")
    with log_path.open("wb") as log_file:
        # exits with this process even when it is killed (SIGKILL runs no finally below)
        process = await asyncio.create_subprocess_exec(
            str(slotline), "serve", stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file, stderr=log_file, env=child_env,
            preexec_fn=functools.partial(exit_with_parent, os.getpid()))
    server = ServerProcess(process, f"http://127.0.0.1:{port}", store_url, log_path)
    try:
        deadline_s = time.monotonic() + STARTUP_TIMEOUT_S
        while not await server.alive():
            if process.returncode is not None or time.monotonic() > deadline_s:
                raise RuntimeError(f"{name} server did not start:\n{server.log_text()[-3000:]}")
            await asyncio.sleep(0.2)
        yield server
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()


def p95_ms(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile (a call has a handful of turns: no interpolation)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


# The booking call the fuzz and the soak make: ``slotline demo``'s, with "yes that works" at the
# read-back. On the cloud stack the emulated Deepgram (pocketsphinx with no hints) hears the lone
# recorded "yes" as "net" at some cuts — where the server's Finalize falls in the recording's
# quiet tail decides (the whole recording: "net"; 20-120 ms shorter: "yes") — so a cloud soak
# failed 5 of its first 1,238 calls on 2026-12-07: the agent asked again and the script had
# nothing more to say. A fault of the harness's recogniser, not of the server. "yes that works"
# decoded right at all 42 cuts tried (/tmp probes of that day; trailing silence 0-500 ms).
assert DEMO_SCRIPT[-1].stem == "yes"
GENUINE_SCRIPT = (*DEMO_SCRIPT[:-1], Utterance("yes_works", "yes that works"))


@dataclass(slots=True)
class GenuineCall:
    call_sid: str
    booked: bool
    latencies_ms: list[float]
    problems: list[str]


async def genuine_call(http: aiohttp.ClientSession, base_url: str, store: Store) -> GenuineCall:
    """``slotline demo``'s booking call (``GENUINE_SCRIPT``); its booking is cancelled after, so
    the next books too."""
    try:
        url, parameters = await fetch_stream(http, base_url)
        report = await run_caller(url, [caller_wav(u.stem) for u in GENUINE_SCRIPT],
                                  custom_parameters=parameters, session=http)
    except (aiohttp.ClientError, RuntimeError) as exc:
        return GenuineCall("-", False, [], [f"could not call: {exc!r}"])
    latencies = [t.turn_latency_ms for t in report.turns]
    problems = list(report.errors)
    if any(x is None for x in latencies):
        problems.append("a caller turn got no answer")
    booked = [b for b in await store.bookings.for_call(report.call_sid)
              if b.status == "confirmed"]
    for booking in booked:
        await store.bookings.cancel(booking.id)
    return GenuineCall(report.call_sid, len(booked) == 1,
                       [x for x in latencies if x is not None], problems)


# ---- the fuzz run ---------------------------------------------------------------------------


@dataclass(slots=True)
class FuzzCounts:
    messages: int = 0
    sessions: int = 0
    closed_by_server: int = 0  # sessions the server ended before all frames were sent
    mutations: Counter[str] = field(default_factory=Counter)  # drawn (a closed socket skips some)
    webhooks: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    forged: int = 0
    forged_accepted: int = 0
    request_errors: int = 0  # the server dropped the connection (e.g. a huge body)


@dataclass(slots=True)
class FuzzReport:
    seed: int
    counts: FuzzCounts
    alive: bool
    signed_alive: bool
    log: LogFindings
    baseline: GenuineCall
    alongside: list[GenuineCall]
    duration_s: float

    @property
    def latency_ratio(self) -> float:
        base = p95_ms(self.baseline.latencies_ms)
        turns = [x for call in self.alongside for x in call.latencies_ms]
        return p95_ms(turns) / base if base > 0 and turns else math.inf

    @property
    def latency_ok(self) -> bool:
        """The genuine calls' p95 within ``LATENCY_RATIO_MAX`` of the idle baseline's, or
        within ``LATENCY_SLACK_MS`` of it."""
        base = p95_ms(self.baseline.latencies_ms)
        turns = [x for call in self.alongside for x in call.latencies_ms]
        if base <= 0 or not turns:
            return False
        return p95_ms(turns) <= max(base * LATENCY_RATIO_MAX, base + LATENCY_SLACK_MS)

    @property
    def log_lines_per_message(self) -> float:
        return self.log.lines / max(self.counts.messages + self.counts.webhooks, 1)

    @property
    def warning_lines(self) -> int:
        return sum(self.log.warnings.values()) + self.log.error_lines

    @property
    def warning_lines_per_s(self) -> float:
        return self.warning_lines / max(self.duration_s, 1.0)

    def failures(self) -> list[str]:
        """Every missed goal, with its counts (an empty list: all goals met)."""
        c, log = self.counts, self.log
        out: list[str] = []
        if not self.alive or not self.signed_alive:
            out.append(f"process crash: server alive={self.alive}, signed={self.signed_alive}")
        out.extend(f"call crash / traceback: {n} x {name!r} in the log"
                   for name, n in log.crash_markers.items() if n)
        if log.error_lines:
            out.append(f"{log.error_lines} ERROR lines in the log, e.g. {log.first_error!r}")
        server_errors = sum(n for status, n in c.statuses.items() if status >= 500)
        if server_errors:
            out.append(f"{server_errors} webhook/API requests answered 5xx")
        if c.forged_accepted:
            out.append(f"{c.forged_accepted} of {c.forged} forged webhooks accepted")
        per_message = self.warning_lines / max(c.messages + c.webhooks, 1)
        if (self.warning_lines_per_s > WARNING_LINES_PER_S_MAX
                or per_message > WARNING_LINES_PER_MESSAGE_MAX):
            out.append(f"log flood: {self.warning_lines} WARNING+ lines in "
                       f"{self.duration_s:.0f} s for {c.messages + c.webhooks} fuzz messages = "
                       f"{self.warning_lines_per_s:.1f}/s (max {WARNING_LINES_PER_S_MAX}) and "
                       f"{per_message:.3f} per message (max {WARNING_LINES_PER_MESSAGE_MAX})")
        if not self.baseline.booked or self.baseline.problems:
            out.append(f"the idle baseline call failed: booked={self.baseline.booked} "
                       f"{self.baseline.problems}")
        out.extend(f"genuine call {call.call_sid} alongside the fuzz failed: "
                   f"booked={call.booked} {call.problems}"
                   for call in self.alongside if not call.booked or call.problems)
        if not self.alongside:
            out.append("no genuine call ran alongside the fuzz")
        elif not self.latency_ok:
            out.append(f"turn latency p95 {self.latency_ratio:.2f}x the idle baseline "
                       f"> {LATENCY_RATIO_MAX}x and more than {LATENCY_SLACK_MS:.0f} ms over it")
        return out

    def summary(self) -> str:
        c, log = self.counts, self.log
        total = max(c.messages + c.webhooks, 1)
        turns = [round(x) for call in self.alongside for x in call.latencies_ms]
        lines = [
            f"seed {self.seed}: {c.messages} media messages in {c.sessions} sessions "
            f"({c.closed_by_server} closed by the server), {c.webhooks} webhooks "
            f"({c.forged} forged, {c.request_errors} connections dropped) in "
            f"{self.duration_s:.1f} s",
            f"mutations: {dict(sorted(c.mutations.items()))}",
            f"webhook statuses: {dict(sorted(c.statuses.items()))}",
            f"process alive: {self.alive} (signed server: {self.signed_alive})",
            f"log: {log.lines} lines, {log.bytes} bytes = {self.log_lines_per_message:.4f} "
            f"lines and {log.bytes / total:.1f} bytes per message; crash markers "
            f"{log.crash_markers}; ERROR lines {log.error_lines}; WARNING lines by logger "
            f"{dict(log.warnings.most_common(6))}",
            f"genuine calls: baseline booked={self.baseline.booked} turns "
            f"{[round(x) for x in self.baseline.latencies_ms]} ms; alongside "
            f"{sum(x.booked for x in self.alongside)}/{len(self.alongside)} booked, turns "
            f"{turns} ms; p95 ratio {self.latency_ratio:.2f}x",
        ]
        failures = self.failures()
        lines.append("FAIL:\n  " + "\n  ".join(failures) if failures else "PASS: every goal met")
        return "\n".join(lines)


class Pace:
    """Spread sends at ``rate`` a second on the monotonic clock (no drift, few sleeps)."""

    def __init__(self, rate_per_s: float) -> None:
        self._interval_s = 1.0 / max(rate_per_s, 1e-3)
        self._next_s = time.monotonic()

    async def wait(self) -> None:
        self._next_s += self._interval_s
        ahead_s = self._next_s - time.monotonic()
        if ahead_s > 0.005:  # sleep 5 ms or more at a time: the loop has calls to serve
            await asyncio.sleep(ahead_s)
        elif ahead_s < -1.0:  # fell behind (a slow server): do not burst to catch up
            self._next_s = time.monotonic()
        else:
            await asyncio.sleep(0)  # let the genuine caller's 20 ms clock run


async def _drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Read and drop the server's audio so its sends never block on us."""
    async for _ in ws:
        pass


async def _send(ws: aiohttp.ClientWebSocketResponse, frame: str | bytes | RawText) -> None:
    if isinstance(frame, str):
        await ws.send_str(frame)
    elif isinstance(frame, bytes):
        await ws.send_bytes(frame)
    else:
        await ws.send_frame(frame.data, aiohttp.WSMsgType.TEXT)


async def fuzz_socket(
    http: aiohttp.ClientSession, media_url: str, rng: random.Random, quota: int, pace: Pace,
    counts: FuzzCounts,
) -> None:
    """Replay fuzz sessions, one connection each, until ``quota`` messages have gone."""
    sent = 0
    while sent < quota:
        frames, used = fuzz_session(rng, "demo_booking")
        counts.sessions += 1
        counts.mutations.update(used)
        try:
            async with http.ws_connect(media_url, max_msg_size=0) as ws:
                drain = asyncio.create_task(_drain(ws), name="fuzz-drain")
                try:
                    for frame in frames[: quota - sent]:
                        if ws.closed:
                            counts.closed_by_server += 1
                            break
                        await pace.wait()
                        await _send(ws, frame)
                        sent += 1
                        counts.messages += 1
                finally:
                    drain.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await drain
        except (aiohttp.ClientError, ConnectionError):
            counts.closed_by_server += 1


async def fuzz_webhooks(
    http: aiohttp.ClientSession, base_url: str, rng: random.Random, quota: int, pace: Pace,
    counts: FuzzCounts, *, forge: bool,
) -> None:
    for _ in range(quota):
        case = webhook_case(rng, forge=forge)
        await pace.wait()
        counts.webhooks += 1
        counts.forged += case.forged
        try:
            async with http.request(case.method, URL(base_url + case.path, encoded=True),
                                    data=io.BytesIO(case.body), headers=case.headers,
                                    allow_redirects=False) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, ConnectionError):
            counts.request_errors += 1
            continue
        counts.statuses[status] += 1
        if case.forged and status < 400:
            counts.forged_accepted += 1


async def _genuine_calls(
    server: ServerProcess, store: Store, done: asyncio.Event, calls: list[GenuineCall]
) -> None:
    """Booking calls back to back until the fuzz is done (at least one)."""
    async with aiohttp.ClientSession() as http:
        while True:
            calls.append(await genuine_call(http, server.url, store))
            if done.is_set():
                return


async def run_fuzz(
    messages: int, seed: int, webhooks: int, *, rate_per_s: float = 1000.0, sockets: int = 2,
    scratch: Path | None = None, server_env: Mapping[str, str] | None = None,
) -> FuzzReport:
    """One whole fuzz run (see the module docstring); the report says which goals were met.

    ``server_env``: settings for both servers (the CI test shortens end-of-turn silence)."""
    with tempfile.TemporaryDirectory(prefix="slotline-fuzz-") as folder:
        where = scratch or Path(folder)
        async with (
            serve_subprocess(where, "fuzz", server_env) as server,
            serve_subprocess(where, "signed",
                             {**(server_env or {}), "TWILIO_AUTH_TOKEN": SIGNED_TOKEN}) as signed,
            open_store(server.store_url, pool_size=1) as store,
        ):
            async with aiohttp.ClientSession() as http:
                baseline = await genuine_call(http, server.url, store)
            started_s = time.monotonic()
            log_start, signed_start = server.log_size(), signed.log_size()
            counts = FuzzCounts()
            duration_s = max(messages / rate_per_s, 1.0)
            forged = webhooks // 4
            done, alongside = asyncio.Event(), list[GenuineCall]()
            async with aiohttp.ClientSession() as http, asyncio.TaskGroup() as tasks:
                genuine = tasks.create_task(_genuine_calls(server, store, done, alongside))
                async with asyncio.TaskGroup() as fuzz:
                    pace = Pace(rate_per_s)
                    for i in range(sockets):
                        quota = messages // sockets + (i < messages % sockets)
                        fuzz.create_task(fuzz_socket(
                            http, server.media_url, random.Random(f"{seed}/media/{i}"), quota,
                            pace, counts))
                    fuzz.create_task(fuzz_webhooks(
                        http, server.url, random.Random(f"{seed}/webhooks"), webhooks - forged,
                        Pace((webhooks - forged) / duration_s), counts, forge=False))
                    fuzz.create_task(fuzz_webhooks(
                        http, signed.url, random.Random(f"{seed}/forged"), forged,
                        Pace(forged / duration_s), counts, forge=True))
                done.set()
                await genuine
            elapsed_s = time.monotonic() - started_s
            alive, signed_alive = await server.alive(), await signed.alive()
            log = scan_log(server.log_text(log_start)) + scan_log(signed.log_text(signed_start))
    return FuzzReport(seed, counts, alive, signed_alive, log, baseline, alongside, elapsed_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000, help="media messages to send")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--webhooks", type=int, default=None,
                        help="webhook/API requests (default: messages / 10)")
    parser.add_argument("--rate", type=float, default=1000.0, help="media messages a second")
    parser.add_argument("--sockets", type=int, default=2, help="concurrent fuzz connections")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the servers' logs and databases in this folder")
    args = parser.parse_args(argv)
    webhooks = args.webhooks if args.webhooks is not None else args.messages // 10
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    report = asyncio.run(run_fuzz(args.messages, args.seed, webhooks, rate_per_s=args.rate,
                                  sockets=args.sockets, scratch=args.keep))
    print(report.summary())
    return 1 if report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
