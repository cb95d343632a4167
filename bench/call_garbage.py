"""What an ended call leaves for the garbage collector: objects only a collection could free.

The demo's call (server and simulated caller in this process, offline stack) runs once to warm
up, then ``--calls`` more with the collector off and ``gc.DEBUG_SAVEALL`` on; a collection
afterwards puts everything that was in a reference cycle into ``gc.garbage``. Printed: objects
per call, by type, most first (the caller's side is in this process too).

    cd /work/main && .venv/bin/python -m bench.call_garbage --calls 2

``tests/unit/test_call_freed.py`` holds Slotline's own objects to none.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import tempfile
from collections import Counter

import aiohttp

from slotline.agent.config import Secrets, Settings, StoreSettings
from slotline.agent.server.wiring import build_deps
from slotline.agent.sim.caller import run_caller
from slotline.agent.sim.demo import DEMO_SCRIPT, caller_wav, fetch_stream, start_server


async def garbage_of_calls(calls: int) -> tuple[int, Counter[str]]:
    """(objects only the collector freed, by type) over ``calls`` demo calls after a warm-up."""
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="slotline-garbage-") as scratch:
        settings = Settings()
        settings = settings.model_copy(update={
            "store": StoreSettings(url=f"sqlite:///{scratch}/calls.db"),
            "server": settings.server.model_copy(update={"public_url": ""}),
        })
        secrets = Secrets().model_copy(update={"twilio_auth_token": None})
        deps = await build_deps(settings, secrets)
        runner, base_url = await start_server(settings, secrets, deps)
        script = [caller_wav(u.stem) for u in DEMO_SCRIPT]
        kinds: Counter[str] = Counter()
        try:
            async with aiohttp.ClientSession() as http:

                async def one_call() -> None:
                    url, parameters = await fetch_stream(http, base_url)
                    await run_caller(url, script, custom_parameters=parameters, session=http)

                await one_call()  # warm-up: first-use imports and pools are not a call's
                gc.collect()
                gc.disable()
                gc.set_debug(gc.DEBUG_SAVEALL)
                for _ in range(calls):
                    await one_call()
                await asyncio.sleep(1.0)  # the server's side of the last call ends
                found = gc.collect()
                kinds.update(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
            await runner.cleanup()
    return found, kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--top", type=int, default=25, help="types to list")
    args = parser.parse_args()
    found, kinds = asyncio.run(garbage_of_calls(args.calls))
    print(f"{args.calls} calls: {found} objects only the collector freed, "
          f"{found / args.calls:.0f} per call")
    for name, count in kinds.most_common(args.top):
        print(f"{count / args.calls:8.1f}  {name}")


if __name__ == "__main__":
    main()
