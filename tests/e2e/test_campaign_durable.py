"""Campaigns against a real ``slotline serve`` subprocess on PostgreSQL, dialling through the
Twilio emulator in this process: two workers share the database and still dial as one (pacing,
concurrency, attempt limits); a server killed with SIGKILL mid-campaign is restarted and the
campaign finishes by itself, the calls it left in flight settled from Twilio's answer."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from slotline.agent.sim.callees import Callees, office_hours_zone, parties
from slotline.agent.store.schema import call_attempts
from slotline.agent.store.scratch import scratch_postgres
from slotline.agent.store.url import async_url
from slotline.providers.emulators.twilio import TwilioEmulator
from slotline.providers.emulators.twilio_call_state import ENDED
from slotline.providers.emulators.twilio_outbound import Party

ADMIN_URL = os.environ.get("SLOTLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test")
FROM = "+12025550100"
WINDOW = {"start": "08:00", "end": "21:00"}
# The emulator's own CPS queue is far above the campaign's, so it never hides a dialer that
# dials too fast: the gaps measured are the dialer's.
EMULATOR_CPS = 50.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def number(i: int) -> str:
    return f"+1212556{i:04d}"


@dataclass
class ServerProcess:
    """``python -m slotline.agent.cli serve`` in a subprocess; its stderr goes to ``log``."""

    env: dict[str, str]
    port: int
    workers: int
    log: Path
    proc: asyncio.subprocess.Process | None = None
    answered: set[int] = field(default_factory=set)  # pids that answered /healthz at start

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log.open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "slotline.agent.cli", "serve", "--workers", str(self.workers),
                stdout=asyncio.subprocess.DEVNULL, stderr=err, env=self.env,
            )
        self.answered = await self.wait_healthy()

    async def wait_healthy(self, timeout_s: float = 60.0) -> set[int]:
        """Until every worker answers ``/healthz``: the pids that did."""
        seen: set[int] = set()
        async with asyncio.timeout(timeout_s):
            while True:
                assert self.proc is not None and self.proc.returncode is None, "server exited"
                seen |= await self.pids(10)
                if len(seen) >= self.workers:
                    return seen
                await asyncio.sleep(0.2)

    async def pids(self, tries: int) -> set[int]:
        """Who answered ``/healthz``, on a new connection each time (the kernel picks)."""
        seen: set[int] = set()
        for _ in range(tries):
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(connector=connector) as http:
                try:
                    async with http.get(f"{self.url}/healthz") as response:
                        seen.add(int((await response.json())["pid"]))
                except aiohttp.ClientError:
                    pass
        return seen

    async def kill(self) -> None:
        """SIGKILL: nothing is flushed, nothing is said goodbye to."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


@asynccontextmanager
async def served(emulator: TwilioEmulator, *, workers: int) -> AsyncIterator[ServerProcess]:
    """A server subprocess on a scratch PostgreSQL database, dialling through ``emulator``;
    stopped (and its log tail printed, on failure) afterwards."""
    async with scratch_postgres(ADMIN_URL) as store_url:
        port = free_port()
        env = {
            **os.environ,
            "SLOTLINE_STORE__URL": store_url,
            "SLOTLINE_TWILIO__BASE_URL": emulator.base_url,
            "SLOTLINE_TWILIO__FROM_NUMBER": FROM,
            "TWILIO_ACCOUNT_SID": emulator.account_sid,
            "TWILIO_AUTH_TOKEN": emulator.auth_token,
            "SLOTLINE_SERVER__PORT": str(port),
            "SLOTLINE_SERVER__HOST": "127.0.0.1",
            "SLOTLINE_TURN__END_SILENCE_MS": "500",
        }
        log = Path(tempfile.mkdtemp(prefix="slotline-durable-")) / "server.log"
        server = ServerProcess(env, port, workers, log)
        try:
            await server.start()
            yield server
        except BaseException:
            print(f"---- server log tail ({log}) ----\n{server.tail()}", file=sys.stderr)
            raise
        finally:
            await server.stop()


async def until(condition: Callable[[], Awaitable[bool]], *, timeout_s: float,
                interval_s: float) -> None:
    """Poll ``condition`` every ``interval_s`` (each poll is an API request)."""
    async with asyncio.timeout(timeout_s):
        for _ in range(int(timeout_s / interval_s) + 1):
            if await condition():
                return
            await asyncio.sleep(interval_s)


async def create_campaign(http: aiohttp.ClientSession, server: ServerProcess,
                          body: dict[str, Any]) -> str:
    async with http.post(f"{server.url}/api/campaigns", json=body) as response:
        assert response.status == 201, await response.text()
        created = await response.json()
    assert created["contacts"] == len(body["contacts"]), created
    return str(created["id"])


async def campaign(http: aiohttp.ClientSession, server: ServerProcess, campaign_id: str
                   ) -> dict[str, Any]:
    async with http.get(f"{server.url}/api/campaigns/{campaign_id}") as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


def gaps(times: list[float]) -> list[float]:
    ordered = sorted(times)
    return [b - a for a, b in zip(ordered, ordered[1:], strict=False)]


def dials_per_number(emulator: TwilioEmulator) -> Counter[str]:
    return Counter(call.to for call in emulator.calls)


# ---- two workers, one pace ------------------------------------------------------------------

CPS = 5.0
CONCURRENCY = 4
SPAN = 10
# claim-to-create latency varies by this much between two dials at most (0.05 s measured alone;
# CI runs three test workers on two cores, and one gap read 0.146 s at 5 calls a second)
JITTER_S = 0.1


async def attempts_by_worker(store_url: str) -> dict[str, int]:
    """The attempt rows of the store, counted by the process that claimed them."""
    _, driver_url = async_url(store_url)
    engine = create_async_engine(driver_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(call_attempts.c.worker, func.count())
                                      .group_by(call_attempts.c.worker))
            return {str(worker): int(count) for worker, count in rows}
    finally:
        await engine.dispose()


async def test_two_workers_on_postgres_dial_as_one() -> None:
    zone = office_hours_zone()
    book: dict[str, Party] = {}
    for i in range(13):
        book[number(100 + i)] = Party(kind="busy", ring_ms=100)
    for i in range(14):
        book[number(200 + i)] = Party(kind="no-answer", ring_ms=100)
    for i in range(2):  # answers, says nothing (until the emulator's 60 s cap)
        book[number(300 + i)] = Party(ring_ms=100)
    book[number(400)] = Party(kind="failed")
    emulator = TwilioEmulator(cps=EMULATOR_CPS, parties=parties(book))
    async with emulator, served(emulator, workers=2) as server, aiohttp.ClientSession() as http:
        started = time.monotonic()
        campaign_id = await create_campaign(http, server, {
            "flow": "lead_qualify", "cps": CPS, "concurrency": CONCURRENCY, "max_attempts": 2,
            "retry_after_s": 1, "window": WINDOW,
            "contacts": [{"phone": phone, "name": f"Person {i}", "timezone": zone}
                         for i, phone in enumerate(book)],
        })
        workers = server.answered

        async def done() -> bool:
            return bool((await campaign(http, server, campaign_id))["status"] == "done")

        await until(done, timeout_s=100, interval_s=0.5)
        elapsed_s = time.monotonic() - started
        body = await campaign(http, server, campaign_id)
        claims = await attempts_by_worker(server.env["SLOTLINE_STORE__URL"])

    calls = emulator.calls
    created = sorted(c.created_at_s for c in calls)
    created_gap = min(gaps(created))
    # the slowest stretch of SPAN consecutive creates Twilio saw, as an average gap
    span_gap = min((b - a) / (SPAN - 1) for a, b in zip(created, created[SPAN - 1:],
                                                       strict=False))
    dispatched_gap = min(gaps([c.dispatched_at_s for c in calls if c.dispatched_at_s]))
    attempts = [a for c in body["contacts"] for a in c["attempts"]]
    claimed_gap = min(gaps([datetime.fromisoformat(a["started_at"]).timestamp()
                            for a in attempts]))
    print(f"two workers {sorted(workers)}: {len(calls)} dials in {elapsed_s:.1f} s; min gap "
          f"claimed {claimed_gap:.3f} s, created {created_gap:.3f} s ({span_gap:.3f} s over "
          f"{SPAN}), dispatched {dispatched_gap:.3f} s; max concurrent "
          f"{emulator.max_concurrent}; attempts by worker {claims}")
    assert len(workers) == 2, workers  # both workers answered
    # one emulator call per attempt
    assert len(calls) == len(attempts)
    assert len(claims) == 2, claims  # both workers dialled from the one database
    # pacing held across the two processes: claims (one clock, the store's rows) at least
    # 1/cps apart. Twilio sees each create a few ms after its claim, the delay varying with
    # the load of the process that sends it (up to ~30 ms here): one gap may look that much
    # shorter, but the lateness does not add up: SPAN creates span (SPAN - 1)/cps less one
    # jitter at most (two workers each dialling at the full pace would read 1/(2 cps))
    assert claimed_gap >= 1 / CPS - 0.001
    assert created_gap >= 1 / CPS - JITTER_S
    assert dispatched_gap >= 1 / CPS - JITTER_S
    assert span_gap >= 1 / CPS - JITTER_S / (SPAN - 1)
    assert emulator.max_concurrent <= CONCURRENCY
    per_number = dials_per_number(emulator)
    assert max(per_number.values()) <= 2, per_number.most_common(3)
    assert set(per_number) == set(book)
    outcomes = {c["phone"]: c["outcome"] for c in body["contacts"]}
    assert "pending" not in outcomes.values(), outcomes
    for phone, party in book.items():
        expected = {"busy": "busy", "no-answer": "no_answer", "failed": "failed"}.get(party.kind)
        if expected is not None:
            assert outcomes[phone] == expected, (phone, outcomes[phone])
            assert per_number[phone] == 2  # retried once, then given up
    for contact in body["contacts"]:
        for attempt in contact["attempts"]:
            assert attempt["settled_at"] is not None and attempt["call_sid"], attempt


# ---- kill -9 and restart --------------------------------------------------------------------


async def test_a_killed_server_resumes_its_campaign_and_settles_what_it_left() -> None:
    zone = office_hours_zone()
    callees = Callees()
    book: dict[str, Party] = {}
    for i in range(4):
        book[number(500 + i)] = callees.party("declines", variant=i)
    for i in range(4):
        book[number(600 + i)] = Party(kind="busy", ring_ms=100)
    for i in range(4):
        book[number(700 + i)] = Party(kind="no-answer", ring_ms=300)
    emulator = TwilioEmulator(cps=EMULATOR_CPS, parties=parties(book))
    async with emulator, served(emulator, workers=1) as server, aiohttp.ClientSession() as http:
        campaign_id = await create_campaign(http, server, {
            "flow": "lead_qualify", "cps": 2, "concurrency": 3, "max_attempts": 2,
            "retry_after_s": 1, "window": WINDOW,
            "contacts": [{"phone": phone, "name": f"Person {i}", "timezone": zone}
                         for i, phone in enumerate(book)],
        })
        in_flight: list[dict[str, Any]] = []

        async def calls_in_progress() -> bool:
            body = await campaign(http, server, campaign_id)
            live = [a for c in body["contacts"] for a in c["attempts"]
                    if a["settled_at"] is None]
            if body["progress"]["dialed"] >= 4 and any(
                    a["status"] == "in-progress" for a in live):
                in_flight[:] = live
                return True
            return False

        await until(calls_in_progress, timeout_s=40, interval_s=0.25)
        old_pid = server.proc.pid if server.proc else 0
        await server.kill()
        killed_at = time.monotonic()
        await asyncio.sleep(1.0)
        restarted_at = time.monotonic()  # no callback before this reached a server
        await server.start()
        assert server.proc is not None and server.proc.pid != old_pid

        async def done() -> bool:
            return bool((await campaign(http, server, campaign_id))["status"] == "done")

        await until(done, timeout_s=100, interval_s=1.0)
        resumed_s = time.monotonic() - killed_at
        body = await campaign(http, server, campaign_id)

    attempts = {a["started_at"] + (a["call_sid"] or ""): a
                for c in body["contacts"] for a in c["attempts"]}
    print(f"killed with {len(in_flight)} attempts in flight "
          f"({[a['status'] for a in in_flight]}); done {resumed_s:.1f} s after the kill; "
          f"{len(emulator.calls)} dials, max concurrent {emulator.max_concurrent}")
    per_number = dials_per_number(emulator)
    assert max(per_number.values()) <= 2, per_number.most_common(3)
    assert set(per_number) == set(book)
    contacts = {c["phone"]: c for c in body["contacts"]}
    for phone, contact in contacts.items():
        assert contact["outcome"] != "pending", contact
        # every dial Twilio saw is an attempt of the contact's (none uncounted)
        assert per_number[phone] <= len(contact["attempts"]) <= 2, (per_number[phone], contact)
    for attempt in attempts.values():
        assert attempt["settled_at"] is not None, attempt
        assert attempt["call_sid"] or attempt["outcome"] == "failed", attempt
    # the calls in flight at the kill were settled as Twilio ended them; those that ended
    # while no server listened (their final callback lost) from Twilio's answer to GET. An
    # attempt already ended but not yet settled when the server was last asked (its final
    # callback had been stored; the server died before settling it) needs no GET.
    by_sid = {a["call_sid"]: a for a in attempts.values() if a["call_sid"]}
    lost = 0
    for left in in_flight:
        if left["call_sid"] is None:
            continue
        settled, call = by_sid[left["call_sid"]], emulator.call(left["call_sid"])
        assert settled["status"] == call.status, (settled, call.status)
        if left["status"] in ENDED:
            continue
        if call.ended_at_s is not None and call.ended_at_s < restarted_at:
            lost += 1
            assert any(e.get("source") == "fetched" for e in settled["events"]), settled
    assert lost, "no call in flight ended while the server was down"
    assert emulator.max_concurrent <= 3
