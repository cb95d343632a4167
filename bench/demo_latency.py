"""turn_latency_ms over repeated demo calls (the offline default stack), p50/p95.

Calls run the booking conversation against one fresh store; concurrent callers ask for the
same time, so all but the first are offered alternatives (and the scripted "yes" takes one).

Each call is the demo conversation through the Twilio protocol in real time, so a run of N calls
takes about N × 15 s. ``--concurrent`` runs that many calls at once per round.

    .venv/bin/python bench/demo_latency.py [--calls 5] [--concurrent 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile

from slotline.agent.config import load_secrets, load_settings
from slotline.agent.server.wiring import build_deps
from slotline.agent.sim.caller import run_caller
from slotline.agent.sim.demo import DEMO_SCRIPT, caller_wav, start_server


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(calls: int, concurrent: int) -> None:
    scratch = tempfile.mkdtemp(prefix="slotline-bench-")
    env = {**os.environ, "SLOTLINE_STORE__URL": f"sqlite:///{scratch}/bench.db"}
    settings = load_settings(None, env)
    deps = await build_deps(settings)
    runner, url = await start_server(settings, load_secrets(os.environ), deps)
    media_url = url.replace("http://", "ws://") + "/twilio/media"
    script = [caller_wav(u.stem) for u in DEMO_SCRIPT]
    caller_side: list[float] = []
    server_side: dict[str, list[float]] = {}
    try:
        for start in range(0, calls, concurrent):
            n = min(concurrent, calls - start)
            reports = await asyncio.gather(*(run_caller(media_url, script) for _ in range(n)))
            for report in reports:
                caller_side += [t.turn_latency_ms for t in report.turns if t.turn_latency_ms]
                record = deps.call_log.get(report.call_sid)
                assert record is not None
                for turn in record.turns:
                    if turn.latency is not None:
                        for key, value in turn.latency.as_dict().items():
                            server_side.setdefault(key, []).append(value)
    finally:
        await runner.cleanup()
    print(f"{calls} calls, {len(caller_side)} caller turns, end_silence_ms="
          f"{settings.turn.end_silence_ms}")
    print(f"{'turn_latency_ms (caller side)':<34} p50 {statistics.median(caller_side):7.0f}"
          f"   p95 {_pct(caller_side, 0.95):7.0f}")
    for key, values in server_side.items():
        print(f"{key + ' (server)':<34} p50 {statistics.median(values):7.0f}"
              f"   p95 {_pct(values, 0.95):7.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.concurrent))
