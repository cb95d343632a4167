"""What a call costs the garbage collector: objects only a collection could free once it has
ended, and objects a full collection walks while it is live.

The demo's call (server and simulated caller in this process, offline stack) runs once to warm
up. Then, by default, ``--calls`` more run one after the other with the collector off and
``gc.DEBUG_SAVEALL`` on; a collection afterwards puts everything that was in a reference cycle
into ``gc.garbage``. Printed: objects per call, by type, most first (the caller's side is in this
process too).

With ``--live``, ``--calls`` calls run at once instead; every 0.5 s two collections run and
the objects they still track are counted against those after the warm-up. Printed: the peak,
per call, by type (both sides of the call again; the server's share is the larger). A full
collection's pause grows with these objects, across every live call.

    cd /work/main && .venv/bin/python -m bench.call_garbage --calls 2
    cd /work/main && .venv/bin/python -m bench.call_garbage --calls 4 --live

``tests/unit/test_call_freed.py`` holds Slotline's own objects to none in cycles.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp

from slotline.agent.config import Secrets, Settings
from slotline.agent.server.wiring import build_deps
from slotline.agent.sim.caller import run_caller
from slotline.agent.sim.demo import (
    DEMO_SCRIPT,
    caller_wav,
    fetch_stream,
    on_loopback,
    start_server,
)


@contextlib.asynccontextmanager
async def demo_calls() -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """A demo server on a scratch store; yields a function that runs one whole demo call."""
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="slotline-garbage-") as scratch:
        settings, secrets = on_loopback(Settings(), Secrets(), scratch)
        deps = await build_deps(settings, secrets)
        runner, base_url = await start_server(settings, secrets, deps)
        script = [caller_wav(u.stem) for u in DEMO_SCRIPT]
        try:
            async with aiohttp.ClientSession() as http:

                async def one_call() -> None:
                    url, parameters = await fetch_stream(http, base_url)
                    await run_caller(url, script, custom_parameters=parameters, session=http)

                await one_call()  # warm-up: first-use imports and pools are not a call's
                yield one_call
        finally:
            await runner.cleanup()


async def garbage_of_calls(calls: int) -> tuple[int, Counter[str]]:
    """(objects only the collector freed, by type) over ``calls`` demo calls after a warm-up."""
    kinds: Counter[str] = Counter()
    async with demo_calls() as one_call:
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(calls):
                await one_call()
            await asyncio.sleep(1.0)  # the server's side of the last call ends
            found = gc.collect()
            kinds.update(_type_name(o) for o in gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    return found, kinds


async def live_objects(calls: int) -> tuple[int, Counter[str]]:
    """(the peak of tracked objects over the warm-up's, by type) while ``calls`` demo calls run
    at once, sampled every 0.5 s."""
    async with demo_calls() as one_call:
        gc.collect()
        before = Counter(_type_name(o) for o in gc.get_objects())
        tasks = [asyncio.ensure_future(one_call()) for _ in range(calls)]
        peak, kinds = 0, Counter[str]()
        while not all(task.done() for task in tasks):
            await asyncio.sleep(0.5)
            gc.collect()
            gc.collect()  # tuples of atoms made since the last pass are untracked by then
            now = Counter(_type_name(o) for o in gc.get_objects())
            extra = now.total() - before.total()
            if extra > peak:
                peak, kinds = extra, now - before
        await asyncio.gather(*tasks)
    return peak, kinds


def _type_name(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--live", action="store_true",
                        help="objects tracked while the calls run at once, not garbage after")
    parser.add_argument("--top", type=int, default=25, help="types to list")
    args = parser.parse_args()
    if args.live:
        found, kinds = asyncio.run(live_objects(args.calls))
        print(f"{args.calls} calls at once: at most {found} more tracked objects than idle, "
              f"{found / args.calls:.0f} per call")
    else:
        found, kinds = asyncio.run(garbage_of_calls(args.calls))
        print(f"{args.calls} calls: {found} objects only the collector freed, "
              f"{found / args.calls:.0f} per call")
    for name, count in kinds.most_common(args.top):
        print(f"{count / args.calls:8.1f}  {name}")


if __name__ == "__main__":
    main()
