"""Races through real calls: many callers want the same few slots on servers sharing one database.

    python -m bench.races --calls 100 [--servers 2] [--workers 2] [--slots 3] [--max-live 20]

Issue 17: ``--servers`` × ``--workers`` processes (each server a real ``slotline serve --workers
N`` subprocess) on one scratch PostgreSQL database; the booking action ``demo`` is open on one
day only (next Tuesday, ``--slots`` half-hour slots from 15:00 New York time), so every caller,
asking for "next tuesday, three p m", fights for the same few times. Callers that lose are offered
the remaining times and take the first one, until none is left. Calls are spread round-robin over
the servers, at most ``--max-live`` at once (local speech recognition costs CPU: a machine with
two cores cannot run 100 real-time calls at once). Once the first booking is in the store, the
worker holding the most live calls is killed with SIGKILL (its calls die; the supervisor starts a
new one).

Goals (exit 1 if one is missed): exactly ``--slots`` confirmed bookings and no two overlapping;
every caller told the truth — the agent said "You're all set" ⇔ a booking row carries that call's
sid (a call cut by the kill may end booked but untold; it must never be told of a booking that is
not there); a call record in the store for every call the agent answered; the killed worker was
replaced. The numbers go to stdout (and ``--out`` as JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from slotline.agent.sim.caller import CallerReport, Speak, run_caller
from slotline.agent.sim.demo import caller_wav, fetch_stream
from slotline.agent.store import BookingRecord, Store, StoredCall, open_store
from slotline.agent.store.scratch import scratch_postgres

NEW_YORK = ZoneInfo("America/New_York")  # the main calendar's and the demo flow's zone
FIRST_SLOT = "15:00"  # "three p m": what every caller asks for
SLOT_MIN = 30  # the demo action's duration_min (config/slotline.yaml)
TOLD_BOOKED = "You're all set"  # the demo_booking flow's `booked` node (config/flows/)
# name, "no thanks" to the e-mail question, day, time, "yes" to the time; each loss is answered
# with the first alternative and a "yes" (three rounds: enough for three slots). A caller whose
# turns fall out of step (a choice answered with "yes") costs a re-prompt, not the truth.
SCRIPT_STEMS = ("name_john", "no", "day_tuesday", "time_3pm", "yes", "first_one", "yes",
                "first_one", "yes", "first_one", "yes")
STARTUP_TIMEOUT_S = 120.0  # four workers loading speech models on two busy cores
STOP_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 300.0  # a whole call; a normal one is 30-90 s
REPLY_TIMEOUT_S = 30.0  # an overloaded worker answers late; the caller waits this long
RECORD_WAIT_S = 20.0  # records are written when a call ends: give the last ones time
KILL_POLL_S = 0.25  # how often the killer looks for the first booking: mid-race, not after it
# A call that fails to connect this soon after the kill was held or queued by the killed
# worker: its listening socket's queue dies with it (SO_REUSEPORT; Linux migrates it only
# with net.ipv4.tcp_migrate_req=1). A loaded client may see the reset a little late.
KILL_RESET_S = 1.0
START_GAP_S = 0.2  # between call starts, so one wave does not arrive in a single instant
_SERVING = re.compile(r"http://127\.0\.0\.1:(\d+) with (\d+) workers")


@dataclass(frozen=True, slots=True)
class RaceConfig:
    calls: int = 100
    servers: int = 2
    workers: int = 2
    slots: int = 3
    max_live: int = 20
    kill_after_bookings: int = 1  # SIGKILL a worker once this many bookings exist (0: never)
    postgres_admin_url: str = "postgresql://postgres@127.0.0.1/test"


@dataclass(frozen=True, slots=True)
class CallOutcome:
    index: int
    call_sid: str
    server: int
    report: CallerReport | None  # None: the call never connected
    error: str = ""
    failed_at_s: float | None = None  # when it failed to connect, from the race's start

    @property
    def answered(self) -> bool:
        """The agent spoke: the server took the call's ``start``."""
        return self.report is not None and self.report.first_agent_audio_at_s is not None

    @property
    def cut(self) -> bool:
        """The line went dead: the server side vanished without a normal WebSocket close."""
        report = self.report
        return report is not None and report.closed_by == "server" and report.close_code != 1000


@dataclass
class RaceResult:
    config: RaceConfig
    wall_s: float = 0.0
    bookings: int = 0
    overlaps: list[str] = field(default_factory=list)
    stray_bookings: list[str] = field(default_factory=list)  # not made by one of our calls
    answered: int = 0
    connect_failures: int = 0
    # of those, calls whose connection the killed worker held or had queued: they failed within
    # KILL_RESET_S of the kill (with SO_REUSEPORT the kernel resets a dead listener's queue)
    connect_failures_at_kill: int = 0
    connect_errors: list[str] = field(default_factory=list)  # "at 35.4 s: ClientOSError: ..."
    cut_calls: int = 0
    caller_errors: int = 0  # calls whose caller saw an error (timeouts, resets)
    truth_violations: list[str] = field(default_factory=list)
    booked_untold: list[str] = field(default_factory=list)  # cut after booking, before telling
    unverifiable: int = 0  # cut calls with no record: what they heard is unknown
    missing_records: list[str] = field(default_factory=list)
    end_nodes: dict[str, int] = field(default_factory=dict)
    killed_pid: int | None = None
    killed_at_s: float | None = None
    killed_live_sockets: int = 0
    replaced: bool | None = None
    peak_live: int = 0

    def failures(self) -> list[str]:
        out: list[str] = []
        if self.bookings != self.config.slots:
            out.append(f"{self.bookings} confirmed bookings, expected {self.config.slots}")
        out += [f"overlap: {o}" for o in self.overlaps]
        out += [f"stray booking: {b}" for b in self.stray_bookings]
        out += [f"untruthful: {v}" for v in self.truth_violations]
        if self.missing_records:
            out.append(f"{len(self.missing_records)} of {self.answered} answered calls have no "
                       f"call record: {', '.join(self.missing_records)}")
        if self.replaced is False:
            out.append(f"killed worker {self.killed_pid} was not replaced")
        return out


def race_day(today: date | None = None) -> date:
    """What "next tuesday" means to the flow: the first Tuesday after today, New York time."""
    day = today or datetime.now(NEW_YORK).date()
    return day + timedelta(days=(1 - day.weekday()) % 7 or 7)


def race_config_yaml(day: date, slots: int) -> str:
    """Settings that open the demo action on ``day`` only, for ``slots`` back-to-back slots."""
    start = datetime.combine(day, datetime.strptime(FIRST_SLOT, "%H:%M").time())
    end = start + timedelta(minutes=SLOT_MIN * slots)
    closed = ", ".join(f"{d}: []" for d in ("mon", "tue", "wed", "thu", "fri"))
    return (
        "booking_actions:\n"
        "  demo:\n"
        f"    duration_min: {SLOT_MIN}\n"
        f"    business_hours: {{{closed}}}\n"
        f"    date_overrides: {{\"{day.isoformat()}\": [\"{FIRST_SLOT}-{end:%H:%M}\"]}}\n"
    )


@dataclass
class ServerProcess:
    index: int
    proc: asyncio.subprocess.Process
    url: str
    workers: int
    log_path: Path

    async def worker_pids(self, *, exclude: frozenset[int] = frozenset(),
                          timeout_s: float = STARTUP_TIMEOUT_S) -> set[int]:
        """The pids that answer ``/healthz`` (each a fresh connection, so the kernel picks a
        worker per try), once ``workers`` of them not in ``exclude`` have answered."""
        seen: set[int] = set()
        connector = aiohttp.TCPConnector(force_close=True)
        async with asyncio.timeout(timeout_s), aiohttp.ClientSession(connector=connector) as http:
            while len(seen - exclude) < self.workers:
                try:
                    async with http.get(f"{self.url}/healthz") as response:
                        seen.add(int((await response.json())["pid"]))
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
        return seen - exclude


@asynccontextmanager
async def serve_process(index: int, workers: int, config: Path, store_url: str,
                        folder: Path) -> AsyncIterator[ServerProcess]:
    """``slotline serve --workers N --port 0`` in a subprocess (stderr to a log file), stopped
    with SIGTERM (killed if it does not stop) on the way out."""
    env = {**os.environ, "SLOTLINE_STORE__URL": store_url,
           "SLOTLINE_TURN__END_SILENCE_MS": "500"}  # snappy turns, as in the e2e tests
    env.pop("TWILIO_AUTH_TOKEN", None)  # the simulated Twilio does not sign its webhooks
    log_path = folder / f"server-{index}.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "slotline.agent.cli", "serve", "--workers", str(workers),
            "--port", "0", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=log, env=env,
        )
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), STARTUP_TIMEOUT_S)).decode()
            match = _SERVING.search(line)
            if match is None:
                raise RuntimeError(f"server {index} did not start: {line!r} (log: {log_path})")
            server = ServerProcess(index, proc, f"http://127.0.0.1:{match.group(1)}", workers,
                                   log_path)
            yield server
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


def live_sockets(pids: Sequence[int], port: int) -> dict[int, int]:
    """Established TCP connections each pid holds on local ``port`` (Linux ``/proc``): which
    worker carries the most calls right now."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(FileNotFoundError), open(table) as rows:
            for row in list(rows)[1:]:
                cols = row.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "01":
                    inodes.add(f"socket:[{cols[9]}]")
    counts: dict[int, int] = {}
    for pid in pids:
        held = 0
        with suppress(FileNotFoundError, ProcessLookupError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with suppress(OSError):
                    held += os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
        counts[pid] = held
    return counts


async def place_call(index: int, server: ServerProcess, http: aiohttp.ClientSession,
                     script: Sequence[Speak], gate: asyncio.Semaphore,
                     live: Counter[str], began_s: float) -> CallOutcome:
    """One caller: the voice webhook like Twilio, then the media stream with ``script``."""
    sid = "CA" + secrets.token_hex(16)
    async with gate:
        live["now"] += 1
        live["peak"] = max(live["peak"], live["now"])
        try:
            url, params = await fetch_stream(http, server.url, call_sid=sid)
            report = await run_caller(url, script, custom_parameters=params, session=http,
                                      call_sid=sid, timeout_s=CALL_TIMEOUT_S,
                                      reply_timeout_s=REPLY_TIMEOUT_S)
        except (aiohttp.ClientError, OSError) as exc:
            return CallOutcome(index, sid, server.index, None, f"{type(exc).__name__}: {exc}",
                               time.monotonic() - began_s)
        finally:
            live["now"] -= 1
    return CallOutcome(index, sid, server.index, report)


async def confirmed(store: Store) -> list[BookingRecord]:
    return [b for b in await store.bookings.recent(limit=10_000) if b.status == "confirmed"]


async def kill_a_worker(cfg: RaceConfig, servers: Sequence[ServerProcess],
                        pids: Mapping[int, set[int]], store: Store,
                        result: RaceResult, began_s: float) -> None:
    """Once ``kill_after_bookings`` bookings exist, SIGKILL the worker with the most calls
    (never, if they do not appear within ``CALL_TIMEOUT_S``: the judge then counts too few)."""
    for _ in range(int(CALL_TIMEOUT_S / KILL_POLL_S)):
        if len(await confirmed(store)) >= cfg.kill_after_bookings:
            break
        await asyncio.sleep(KILL_POLL_S)
    else:
        return
    holding: dict[int, int] = {}
    for server in servers:
        port = int(server.url.rsplit(":", 1)[1])
        holding |= live_sockets(sorted(pids[server.index]), port)
    victim = max(holding, key=lambda pid: holding[pid])
    os.kill(victim, signal.SIGKILL)
    result.killed_pid, result.killed_live_sockets = victim, holding[victim]
    result.killed_at_s = time.monotonic() - began_s


async def run_races(cfg: RaceConfig, folder: Path) -> RaceResult:
    result = RaceResult(cfg)
    config = folder / "races.yaml"
    config.write_text(race_config_yaml(race_day(), cfg.slots))
    script = [caller_wav(stem) for stem in SCRIPT_STEMS]
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(scratch_postgres(cfg.postgres_admin_url))
        # migrate once here, so the workers start on a ready schema
        store = await stack.enter_async_context(open_store(url, pool_size=2))
        servers = [await stack.enter_async_context(
            serve_process(i, cfg.workers, config, url, folder)) for i in range(cfg.servers)]
        pids = {s.index: await s.worker_pids() for s in servers}
        began_s = time.monotonic()
        live: Counter[str] = Counter()
        gate = asyncio.Semaphore(cfg.max_live)
        connector = aiohttp.TCPConnector(force_close=True, limit=0)  # no reuse across a kill
        async with aiohttp.ClientSession(connector=connector) as http, asyncio.TaskGroup() as tg:
            killer = None
            if cfg.kill_after_bookings > 0:
                killer = tg.create_task(kill_a_worker(cfg, servers, pids, store, result, began_s),
                                        name="races-killer")
            calls = []
            for i in range(cfg.calls):
                calls.append(tg.create_task(
                    place_call(i, servers[i % len(servers)], http, script, gate, live, began_s),
                    name=f"races-call-{i}"))
                await asyncio.sleep(START_GAP_S)
            outcomes = [await c for c in calls]
            if killer is not None and not killer.done():
                killer.cancel()  # too few bookings ever: nothing to kill, judged below
        result.wall_s = time.monotonic() - began_s
        result.peak_live = live["peak"]
        if result.killed_pid is not None:
            owner = next(s for s in servers if result.killed_pid in pids[s.index])
            try:
                await owner.worker_pids(exclude=frozenset({result.killed_pid}), timeout_s=60)
                result.replaced = True
            except TimeoutError:
                result.replaced = False
        await judge(store, outcomes, result)
    return result


async def judge(store: Store, outcomes: Sequence[CallOutcome], result: RaceResult) -> None:
    answered = [o for o in outcomes if o.answered]
    sids = {o.call_sid for o in answered}
    records: dict[str, StoredCall | None] = {}
    deadline_s = time.monotonic() + RECORD_WAIT_S
    while True:  # bounded: records of the last calls may land a moment after they hang up
        for sid in sids - {s for s, r in records.items() if r is not None}:
            records[sid] = await store.calls.get(sid)
        if all(records.values()) or time.monotonic() > deadline_s:
            break
        await asyncio.sleep(0.5)
    booked = await confirmed(store)
    result.bookings = len(booked)
    by_call = Counter(b.call_sid for b in booked)
    ordered = sorted(booked, key=lambda b: (b.calendar, b.start))
    for before, after in zip(ordered, ordered[1:], strict=False):
        if before.calendar == after.calendar and after.start < before.end:
            result.overlaps.append(f"{before.id} {before.start}-{before.end} and {after.id} "
                                   f"{after.start}-{after.end}")
    result.stray_bookings = [b.id for b in booked if b.call_sid not in sids]
    result.answered = len(answered)
    result.connect_failures = sum(o.report is None for o in outcomes)
    killed_at = result.killed_at_s
    result.connect_failures_at_kill = 0 if killed_at is None else sum(
        o.report is None and o.failed_at_s is not None
        and killed_at <= o.failed_at_s <= killed_at + KILL_RESET_S for o in outcomes)
    result.connect_errors = [f"at {o.failed_at_s or 0:.1f} s: {o.error}" for o in outcomes
                             if o.report is None]
    result.cut_calls = sum(o.cut for o in answered)
    result.caller_errors = sum(bool(o.report and o.report.errors) for o in outcomes)
    nodes: Counter[str] = Counter()
    for outcome in answered:
        sid = outcome.call_sid
        record, rows = records.get(sid), by_call[sid]
        if record is None:
            result.missing_records.append(sid)
            if outcome.cut:
                result.unverifiable += 1
                if rows:
                    result.booked_untold.append(sid)
            continue
        nodes[record.node or "?"] += 1
        told = any(t.get("role") == "agent" and TOLD_BOOKED in str(t.get("text", ""))
                   for t in record.turns)
        if rows > 1:
            result.truth_violations.append(f"{sid}: {rows} bookings for one caller")
        if told and not rows:
            result.truth_violations.append(f"{sid}: told booked, no booking row")
        elif rows and not told:
            if outcome.cut:
                result.booked_untold.append(sid)
            else:
                result.truth_violations.append(f"{sid}: booked but never told (node "
                                               f"{record.node!r})")
    result.end_nodes = dict(nodes)


def summary(result: RaceResult) -> dict[str, Any]:
    out = asdict(result)
    out["config"] = asdict(result.config)
    out["failures"] = result.failures()
    return out


def print_summary(result: RaceResult) -> None:
    cfg = result.config
    print(f"{cfg.calls} calls, {cfg.servers} servers x {cfg.workers} workers, {cfg.slots} slots, "
          f"at most {cfg.max_live} live (peak {result.peak_live}); wall {result.wall_s:.0f} s")
    print(f"answered {result.answered}, connect failures {result.connect_failures} "
          f"({result.connect_failures_at_kill} at the kill), "
          f"cut by the kill {result.cut_calls}, caller errors {result.caller_errors}")
    for error in result.connect_errors:
        print(f"  connect failure {error}")
    print(f"killed pid {result.killed_pid} at {result.killed_at_s or 0:.1f} s holding "
          f"{result.killed_live_sockets} connections; replaced: {result.replaced}")
    print(f"confirmed bookings {result.bookings}, overlaps {len(result.overlaps)}, "
          f"stray {len(result.stray_bookings)}")
    print(f"truth violations {len(result.truth_violations)}, booked but cut before told "
          f"{len(result.booked_untold)}, cut calls unverifiable {result.unverifiable}")
    print(f"missing call records {len(result.missing_records)}; calls ended at {result.end_nodes}")
    failures = result.failures()
    print("FAIL:\n  " + "\n  ".join(failures) if failures else "PASS")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    defaults = RaceConfig()
    parser.add_argument("--calls", type=int, default=defaults.calls)
    parser.add_argument("--servers", type=int, default=defaults.servers)
    parser.add_argument("--workers", type=int, default=defaults.workers, help="per server")
    parser.add_argument("--slots", type=int, default=defaults.slots)
    parser.add_argument("--max-live", type=int, default=defaults.max_live,
                        help="calls in progress at once")
    parser.add_argument("--kill-after-bookings", type=int, default=defaults.kill_after_bookings,
                        help="SIGKILL a worker once this many bookings exist (0: no kill)")
    parser.add_argument("--postgres", default=defaults.postgres_admin_url,
                        help="admin URL for the scratch database")
    parser.add_argument("--out", type=Path, default=None, help="JSON output")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = RaceConfig(args.calls, args.servers, args.workers, args.slots, args.max_live,
                     args.kill_after_bookings, args.postgres)
    folder = Path(tempfile.mkdtemp(prefix="slotline-races-"))
    result = asyncio.run(run_races(cfg, folder))
    print_summary(result)
    print(f"server logs: {folder}")
    if args.out is not None:
        args.out.write_text(json.dumps(summary(result), indent=2, default=str))
    return 1 if result.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
