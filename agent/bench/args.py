"""The ``slotline bench`` arguments. Kept apart from the harness so that building the
``slotline`` parser imports nothing heavy (the harness pulls in the server and the emulators)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

_DESCRIPTION = """\
    slotline bench --calls 10 --duration 60 --profile cloud     # fixed load
    slotline bench --capacity --profile cloud                   # raise N until a budget breaks
    slotline bench --conversation llm --profile cloud           # every agent line model-written
    slotline bench --target ws://host:port/path --calls 5       # any Twilio Media Streams server
    slotline bench compare A.json B.json                        # two results side by side

Writes result.json and report.html to --out and prints a summary. Ctrl-C stops the run and
still writes what was measured."""


def add_parser(sub: Any) -> None:
    bench = sub.add_parser(
        "bench", help="latency benchmark: N simulated callers, JSON + HTML report",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("compare", nargs="*", metavar="compare A.json B.json",
                       help="compare two result.json files instead of running")
    load = bench.add_argument_group("load")
    load.add_argument("--calls", type=int, default=10, help="concurrent callers (default 10)")
    load.add_argument("--duration", type=float, default=60.0,
                      help="seconds of load, ramp included (default 60)")
    load.add_argument("--ramp", type=float, default=None,
                      help="seconds over which callers start (default: a quarter of the "
                           "duration, at most 10)")
    load.add_argument("--profile", default="cloud",
                      help="vendor latency: instant | cloud | real | a YAML file (default cloud)")
    load.add_argument("--conversation", default="booking",
                      help="what callers say: booking | short | llm (booking's caller, and "
                           "every agent line written by the model) | a YAML file (default "
                           "booking)")
    load.add_argument("--reply-timeout", type=float, default=15.0,
                      help="seconds a caller waits for a reply before it counts as failed")
    load.add_argument("--greeting-wait", type=float, default=None,
                      help="seconds a caller waits for a greeting before it speaks first "
                           "(default: 2 with --target, for servers that wait to be spoken "
                           "to; a started Slotline greets, so it waits up to --reply-timeout)")
    load.add_argument("--load-procs", type=int, default=1,
                      help="processes the simulated callers run in (default 1: the bench's "
                           "own); more when one process's loop cannot carry the calls")
    where = bench.add_argument_group("target")
    where.add_argument("--target", help="ws://HOST:PORT/PATH of any Twilio Media Streams server "
                                        "(default: start Slotline with vendors on emulators)")
    where.add_argument("--target-pid", type=int, help="sample this local process's CPU/RSS")
    where.add_argument("--server", choices=("subprocess", "inprocess"), default="subprocess",
                       help="where the started Slotline runs (default: its own process)")
    where.add_argument("--config", type=Path, help="a Slotline config file for the server")
    where.add_argument("--server-cpus", metavar="LIST",
                       help="pin the started server to these CPUs (e.g. 0) and the callers "
                            "and emulators to the others, to measure calls per core")
    out = bench.add_argument_group("output")
    out.add_argument("--out", type=Path, help="output folder (default bench-results/<time>)")
    out.add_argument("--sample-interval", type=float, default=1.0, help="seconds between "
                     "CPU/RSS samples (default 1)")
    cap = bench.add_argument_group("capacity search")
    cap.add_argument("--capacity", action="store_true",
                     help="raise the number of calls until a budget breaks")
    cap.add_argument("--start-calls", type=int, default=10)
    cap.add_argument("--max-calls", type=int, default=400)
    cap.add_argument("--budget-p95-ms", type=float, default=None,
                     help="p95 turn_latency_ms budget (default: the first step's p95 + 50)")
    cap.add_argument("--max-send-lateness-ms", type=float, default=20.0,
                     help="callers' own p99 frame lateness beyond which the bench, not the "
                          "server, is the limit (default 20)")
    cap.add_argument("--max-gaps-per-call-minute", type=float, default=0.0,
                     help="audio underruns a caller may hear per call-minute (default 0)")
