"""A worker slot that keeps dying is restarted with a capped exponential back-off while the
other workers go on serving; the supervisor never gives up on it (issue 17, defect 10 d).

The policy is checked as a pure function; then the real ``slotline serve --workers 2`` runs in a
subprocess and one slot's worker is SIGKILLed six times in a row (the old supervisor stopped
everything at the sixth death within a minute)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import tempfile

import aiohttp

from slotline.agent.server.workers import Backoff


def test_the_first_death_restarts_at_once_then_the_wait_doubles_up_to_the_cap() -> None:
    policy = Backoff(base_s=0.5, cap_s=30.0, stable_after_s=60.0)
    assert [policy.delay_s(n) for n in range(1, 10)] == [
        0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert policy.delay_s(10_000) == 30.0  # no overflow, still capped


def test_a_worker_that_lived_long_enough_starts_its_slot_afresh() -> None:
    policy = Backoff(stable_after_s=60.0)
    assert policy.deaths_after(0, lived_s=1.0) == 1
    assert policy.deaths_after(5, lived_s=1.0) == 6
    assert policy.deaths_after(5, lived_s=60.0) == 1
    assert policy.delay_s(policy.deaths_after(7, lived_s=3600.0)) == 0.0


async def _pids(url: str, tries: int = 20) -> set[int]:
    seen: set[int] = set()
    for _ in range(tries):  # a new connection each time: the kernel picks a worker per connect
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            try:
                async with http.get(f"{url}/healthz") as response:
                    seen.add(int((await response.json())["pid"]))
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    return seen


async def _new_worker(supervisor: asyncio.subprocess.Process, url: str, known: set[int],
                      timeout_s: float = 60.0) -> int:
    """The pid of a worker not seen before (the replacement of the one killed)."""
    async with asyncio.timeout(timeout_s):
        while True:
            assert supervisor.returncode is None, "the supervisor has stopped"
            fresh = await _pids(url) - known
            if fresh:
                return min(fresh)
            await asyncio.sleep(0.2)


async def test_a_slot_killed_six_times_is_restarted_and_the_other_worker_serves_on() -> None:
    folder = tempfile.mkdtemp(prefix="slotline-backoff-")
    env = {**os.environ, "SLOTLINE_STORE__URL": f"sqlite:///{folder}/workers.db"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "slotline.agent.cli", "serve", "--workers", "2", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        match = re.search(r"http://127\.0\.0\.1:(\d+) with 2 workers", line)
        assert match, line
        url = f"http://127.0.0.1:{match.group(1)}"
        first = await _new_worker(proc, url, set())
        steady = await _new_worker(proc, url, {first})  # the other slot: never killed
        known, victim = {first, steady}, first
        for kill in range(1, 7):
            os.kill(victim, signal.SIGKILL)
            assert proc.returncode is None, f"the supervisor stopped after kill {kill}"
            assert steady in await _pids(url), f"the healthy worker stopped serving ({kill})"
            victim = await _new_worker(proc, url, known)  # the killed slot came back
            known.add(victim)
        await asyncio.sleep(0.5)
        assert proc.returncode is None
        assert await _pids(url, 40) == {steady, victim}
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
