"""What the bench's simulated callers cost on their own: CPU per call-second against a sink.

The callers (``agent.sim.caller``, as ``slotline bench`` runs them: a shared ``FrameClock``, the
synchronous sender, no audio kept) phone a WebSocket server in a child process that only reads
and never answers, so every caller sends its 20 ms frames for the whole run (silence, then its
first step after ``greeting_wait_s``, then silence while it waits for a reply that never comes).
This process's CPU over ``--seconds`` (after a 3 s settle) divided by the call-seconds is the
callers' sending cost: the bench's per-frame floor, without the server's replies to play out.
The sink runs on CPU 0 and the callers on CPU 1 (where the machine has them).

This box's speed drifts by tens of per cent from minute to minute, so compare two versions of
the callers side by side, both at once on the same cores (the earlier one from a worktree):

    PYTHONPATH=/tmp/before .venv/bin/python -m bench.caller_cost --port 47601 &
    .venv/bin/python -m bench.caller_cost --port 47701
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import time
from multiprocessing.synchronize import Event

import aiohttp
from aiohttp import web

from slotline.agent.server import event_loop


def _pin(cpu: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        if cpu in os.sched_getaffinity(0):
            os.sched_setaffinity(0, {cpu})


def _sink(port: int, ready: Event) -> None:
    """A WebSocket server that reads every message and answers nothing."""

    async def read_all(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/ws", read_all)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    _pin(0)
    event_loop.run(main())


async def _load(port: int, calls: int, seconds: float) -> float:
    """The callers' CPU ms per call-second over ``seconds``."""
    from slotline.agent.bench.conversation import load_conversation
    from slotline.agent.sim.caller import run_caller
    from slotline.agent.sim.frame_clock import FrameClock

    steps = load_conversation("booking").steps
    clock, hangup = FrameClock(), asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        callers = [
            asyncio.create_task(run_caller(
                f"ws://127.0.0.1:{port}/ws", steps, session=http, hangup=hangup,
                greeting_wait_s=0.5, reply_timeout_s=3600, timeout_s=3600, clock=clock,
                keep_audio=False))
            for _ in range(calls)
        ]
        await asyncio.sleep(3)
        cpu_0, wall_0 = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu_1, wall_1 = time.process_time(), time.monotonic()
        hangup.set()
        await asyncio.gather(*callers, return_exceptions=True)
    return 1000 * (cpu_1 - cpu_0) / (calls * (wall_1 - wall_0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=150)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--port", type=int, default=47601)
    args = parser.parse_args()
    ready = multiprocessing.Event()
    sink = multiprocessing.Process(target=_sink, args=(args.port, ready), daemon=True)
    sink.start()
    try:
        if not ready.wait(30):
            raise SystemExit("the sink did not start")
        _pin(1)
        cost = event_loop.run(_load(args.port, args.calls, args.seconds))
        print(f"{args.calls} callers: {cost:.3f} ms CPU per call-second")
    finally:
        sink.terminate()


if __name__ == "__main__":
    main()
