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


async def test_the_server_exits_when_the_benchmark_is_killed(tmp_path: Path) -> None:
    bench = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(tmp_path), cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE)
    assert bench.stdout is not None
    line = await asyncio.wait_for(bench.stdout.readline(), 120)
    server_pid = int(line)
    assert alive(server_pid)
    os.kill(bench.pid, signal.SIGKILL)
    await bench.wait()
    await until(lambda: not alive(server_pid), 20)  # TimeoutError: it outlived the benchmark


async def test_slotline_bench_servers_exit_when_the_bench_is_killed(tmp_path: Path) -> None:
    bench = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BENCH_CHILD, str(tmp_path), cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE)
    assert bench.stdout is not None
    line = await asyncio.wait_for(bench.stdout.readline(), 120)
    pids = [int(pid) for pid in line.split()]
    assert len(pids) == 2 and all(alive(pid) for pid in pids)  # the server and the vendors
    os.kill(bench.pid, signal.SIGKILL)
    await bench.wait()
    await until(lambda: not any(alive(pid) for pid in pids), 20)
