"""``slotline serve --workers 2``: two processes answer on one port, a dead worker is replaced,
and SIGTERM stops everything cleanly. Runs the real command in a subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import tempfile

import aiohttp

from tests.until import until


async def _pids(url: str, tries: int) -> set[int]:
    seen: set[int] = set()
    for _ in range(tries):  # a new connection each time: the kernel picks a worker per connect
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            try:
                async with http.get(f"{url}/healthz") as response:
                    seen.add(int((await response.json())["pid"]))
            except aiohttp.ClientError:
                await asyncio.sleep(0.2)
    return seen


async def _wait_for(url: str, count: int, *, exclude: set[int] = frozenset(),  # type: ignore[assignment]
                    timeout_s: float = 60.0) -> set[int]:
    async with asyncio.timeout(timeout_s):
        while True:
            seen = await _pids(url, 30) - exclude
            if len(seen) >= count:
                return seen
            await asyncio.sleep(0.5)


async def test_two_workers_share_the_port_and_are_supervised() -> None:
    folder = tempfile.mkdtemp(prefix="slotline-workers-")
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
        first = await _wait_for(url, 2)
        assert len(first) == 2 and proc.pid not in first  # the supervisor serves nothing
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        replaced = await _wait_for(url, 1, exclude=first)  # a new worker took its place
        assert victim not in replaced
        assert len(await _wait_for(url, 2, exclude={victim})) == 2
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_workers_exit_when_the_supervisor_is_killed() -> None:
    """SIGKILL runs no handler in the supervisor: its workers must still go, not keep the port."""
    folder = tempfile.mkdtemp(prefix="slotline-workers-")
    env = {**os.environ, "SLOTLINE_STORE__URL": f"sqlite:///{folder}/workers.db"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "slotline.agent.cli", "serve", "--workers", "2", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env,
    )
    workers: set[int] = set()
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        match = re.search(r"http://127\.0\.0\.1:(\d+) with 2 workers", line)
        assert match, line
        workers = await _wait_for(f"http://127.0.0.1:{match.group(1)}", 2)
        proc.kill()
        await proc.wait()
        await until(lambda: not any(_alive(pid) for pid in workers), timeout_s=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for init to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
