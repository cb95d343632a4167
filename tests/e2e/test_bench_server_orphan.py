"""A benchmark's server (``bench.fuzz.serve_subprocess``, used by the fuzz and the soak; and
``slotline bench``'s, ``agent.bench.target.SubprocessSlotline``, used by the turn-end set too,
with its vendor emulators) exits with the benchmark even when the benchmark is killed with
SIGKILL, which runs no clean-up: a killed 60-minute soak used to leave its server running."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

from tests.until import until

CHILD = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from bench.fuzz import serve_subprocess

    async def main() -> None:
        async with serve_subprocess(Path(sys.argv[1]), "orphan") as server:
            print(server.process.pid, flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())
""")
BENCH_CHILD = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from slotline.agent.bench.profiles import load_profile
    from slotline.agent.bench.target import SubprocessSlotline

    async def main() -> None:
        async with SubprocessSlotline(load_profile("instant"), log_dir=Path(sys.argv[1])) as info:
            print(info.server_pid, info.vendors_pid, flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())
""")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0


ROOT = Path(__file__).resolve().parents[2]


async def kill_after_start(child: str, tmp_path: Path) -> list[int]:
    """Run ``child`` (a benchmark that prints its children's pids once they run), SIGKILL it
    then, and return those pids, each checked alive before the kill."""
    bench = await asyncio.create_subprocess_exec(
        sys.executable, "-c", child, str(tmp_path), cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE)
    assert bench.stdout is not None
    line = await asyncio.wait_for(bench.stdout.readline(), 120)
    pids = [int(pid) for pid in line.split()]
    assert pids and all(alive(pid) for pid in pids)
    os.kill(bench.pid, signal.SIGKILL)
    await bench.wait()
    return pids


async def test_the_server_exits_when_the_benchmark_is_killed(tmp_path: Path) -> None:
    [server_pid] = await kill_after_start(CHILD, tmp_path)
    await until(lambda: not alive(server_pid), 20)  # TimeoutError: it outlived the benchmark


async def test_slotline_bench_servers_exit_when_the_bench_is_killed(tmp_path: Path) -> None:
    pids = await kill_after_start(BENCH_CHILD, tmp_path)
    assert len(pids) == 2  # the server and the vendors
    await until(lambda: not any(alive(pid) for pid in pids), 20)
