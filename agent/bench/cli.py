"""``slotline bench``: runs what the command line asked (arguments: ``agent.bench.args``).

    slotline bench --calls 10 --duration 60 --profile cloud     # fixed load
    slotline bench --capacity --profile cloud                   # raise N until a budget breaks
    slotline bench --target ws://host:port/path --calls 5       # any Twilio Media Streams server
    slotline bench compare A.json B.json                        # two results side by side

Writes ``result.json`` and ``report.html`` to ``--out`` and prints the summary table. A progress
line runs on stderr. Ctrl-C stops the run: calls hang up, and what was measured is written
(exit status 130); a second Ctrl-C aborts at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from slotline.agent.bench import capacity, html, report
from slotline.agent.bench.compare import compare_text
from slotline.agent.bench.conversation import Conversation, load_conversation
from slotline.agent.bench.harness import LoopLagMonitor
from slotline.agent.bench.load_procs import SplitLoad
from slotline.agent.bench.profiles import Profile, load_profile
from slotline.agent.bench.runner import LoadPlan, LoadRunner, fetch_records, server_metrics
from slotline.agent.bench.sysstat import SystemSampler
from slotline.agent.bench.target import ForeignTarget, InProcessSlotline, SubprocessSlotline, Target
from slotline.agent.server import event_loop
from slotline.agent.server.heap import frozen_heap
from slotline.providers.errors import ConfigError

EXIT_INTERRUPTED = 130
# A foreign server may wait to be spoken to (Pipecat's Twilio example does): after this long on
# an open line with no greeting the caller says its first line, as a person would.
FOREIGN_GREETING_WAIT_S = 2.0


@dataclass(frozen=True, slots=True)
class Options:
    plan: LoadPlan
    profile: Profile
    conversation: Conversation
    target_url: str | None
    target_pid: int | None
    server: str
    config: Path | None
    out: Path
    sample_interval_s: float
    reply_timeout_s: float
    greeting_wait_s: float | None = None  # None: wait for a greeting (until the reply timeout)
    load_procs: int = 1  # processes the callers run in (1: the bench's own)
    server_cpus: frozenset[int] = frozenset()  # pin the started server here, the harness apart


def _options(args: argparse.Namespace) -> Options:
    ramp = args.ramp if args.ramp is not None else min(10.0, args.duration / 4)
    try:
        plan = LoadPlan(args.calls, args.duration, ramp)
    except ValueError as exc:
        raise ConfigError("slotline bench", "--calls/--duration/--ramp", str(exc)) from None
    out = args.out or Path("bench-results") / time.strftime("%Y%m%d-%H%M%S")
    profile = load_profile(args.profile)
    if args.target and not profile.emulated:
        raise ConfigError("slotline bench", "--profile", "`real` applies to a started Slotline")
    conversation = load_conversation(args.conversation)
    if args.target and conversation.flow is not None:
        raise ConfigError("slotline bench", "--conversation",
                          f"{conversation.name!r} runs its own flow on a started Slotline; "
                          "it cannot be used with --target")
    greeting_wait = args.greeting_wait
    if greeting_wait is None and args.target:
        greeting_wait = FOREIGN_GREETING_WAIT_S
    if greeting_wait is not None and not 0 <= greeting_wait < args.reply_timeout:
        raise ConfigError("slotline bench", "--greeting-wait",
                          "must be >= 0 and shorter than --reply-timeout")
    if args.load_procs < 1:
        raise ConfigError("slotline bench", "--load-procs", "must be >= 1")
    server_cpus = _server_cpus(args.server_cpus, started=not args.target
                               and args.server == "subprocess")
    return Options(plan, profile, conversation, args.target,
                   args.target_pid, args.server, args.config, out, args.sample_interval,
                   args.reply_timeout, greeting_wait, args.load_procs, server_cpus)


def _server_cpus(spec: str | None, *, started: bool) -> frozenset[int]:
    """``--server-cpus 0`` or ``0,1``: CPUs of this process's allowed set, leaving at least
    one to the harness."""
    if not spec:
        return frozenset()
    if not started:
        raise ConfigError("slotline bench", "--server-cpus",
                          "pins a Slotline the bench starts in its own process; not with "
                          "--target or --server inprocess")
    try:
        cpus = frozenset(int(part) for part in spec.split(","))
    except ValueError:
        raise ConfigError("slotline bench", "--server-cpus",
                          f"{spec!r}: a comma-separated list of CPU numbers") from None
    allowed = os.sched_getaffinity(0)
    if not cpus <= allowed or cpus == allowed:
        raise ConfigError("slotline bench", "--server-cpus",
                          f"{spec!r}: must be some, not all, of this process's CPUs "
                          f"{sorted(allowed)} (the rest carry the callers and emulators)")
    return cpus


def make_target(options: Options, log_dir: Path) -> Target:
    if options.target_url is not None:
        return ForeignTarget(options.target_url, options.target_pid)
    flow_env = options.conversation.server_env()  # `llm`: the flow whose lines the model writes
    if options.server == "inprocess":
        return InProcessSlotline(options.profile, config_path=options.config, env=flow_env)
    return SubprocessSlotline(options.profile, log_dir=log_dir, config_path=options.config,
                              env={**os.environ, **flow_env}, server_cpus=options.server_cpus)


class Progress:
    """One status line on stderr: redrawn in place on a terminal, every 5 s otherwise."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last_print = 0.0

    def show(self, runner: LoadRunner | SplitLoad, sampler: SystemSampler | None,
             label: str = "") -> None:
        now = time.monotonic()
        if not self._tty and now - self._last_print < 5:
            return
        self._last_print = now
        plan, done = runner.result.plan, runner.result.calls
        elapsed = min(runner.elapsed_s(), plan.duration_s)
        width = 20
        filled = int(width * elapsed / plan.duration_s)
        bad = sum(c.outcome in ("failed", "dropped") for c in done)
        latencies = sorted(runner.live_latencies_ms)
        p95 = f"{latencies[int(0.95 * (len(latencies) - 1))]:.0f} ms" if latencies else "-"
        cpu = sampler.latest_cpu("server") if sampler is not None else None
        line = (f"{label}{elapsed:5.1f}/{plan.duration_s:g} s [{'#' * filled:<{width}}] "
                f"up {runner.active:>3}  ended {len(done)} ({bad} failed/dropped)  "
                f"turns {len(latencies)} p95 {p95}"
                + (f"  server cpu {cpu:.0f}%" if cpu is not None else ""))
        self._stream.write(("\r" + line + "\x1b[K") if self._tty else line + "\n")
        self._stream.flush()

    def done(self) -> None:
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()


async def run_load(
    options: Options, plan: LoadPlan, stop: asyncio.Event, *, log_dir: Path,
    progress: Progress | None = None, label: str = "",
) -> dict[str, Any]:
    """One fixed-load run against a fresh target: the result dict (schema slotline-bench/1)."""
    target = make_target(options, log_dir)
    async with target as info, AsyncExitStack() as stack:
        pids = {"bench": os.getpid()}
        if info.server_pid is not None and not info.shared_process:
            pids["server"] = info.server_pid
        if info.vendors_pid is not None:
            pids["vendors"] = info.vendors_pid
        token = os.environ.get("SLOTLINE_API_TOKEN")
        runner: LoadRunner | SplitLoad
        if options.load_procs > 1:  # the callers in child processes (load-1 ... load-N)
            log = stack.enter_context((log_dir / "load-procs.log").open("wb"))
            runner = await stack.enter_async_context(SplitLoad(
                info, options.conversation, plan, options.load_procs, stop=stop, log=log,
                reply_timeout_s=options.reply_timeout_s,
                greeting_wait_s=options.greeting_wait_s))
            pids |= runner.pids
        else:
            runner = LoadRunner(info, options.conversation, plan, stop=stop,
                                reply_timeout_s=options.reply_timeout_s,
                                greeting_wait_s=options.greeting_wait_s)
        # before the CPU window and the clock: the run's counters start here
        metrics_before = await server_metrics(info, token)
        sampler = SystemSampler(pids, lambda: runner.active, interval_s=options.sample_interval_s)
        sampler.start(time.monotonic())
        lag = LoopLagMonitor()  # the harness's own loop: late timers mean late frames
        async with asyncio.TaskGroup() as tasks:
            sampling = tasks.create_task(sampler.run(), name="bench-sampler")
            shown = tasks.create_task(_show(progress, runner, sampler, label), name="bench-show")
            lagging = tasks.create_task(lag.run(), name="bench-loop-lag")
            with frozen_heap():  # full scans of the callers' process skip imports, recordings
                run = await runner.run()
            sampler.sample()
            for task in (sampling, shown, lagging):
                task.cancel()
        run.server_metrics_before = metrics_before
        await fetch_records(info, run, token)  # after the CPU window: not the calls' work
        if progress is not None:
            progress.done()
    profile = options.profile.as_dict()
    lags = {"bench": lag.summary(), **target.vendor_loop_lag()}
    if isinstance(runner, SplitLoad):
        lags |= runner.loop_lag_ms()
    return report.build_result(run, target=info, profile=profile, sampler=sampler,
                               vendor_stats=target.vendor_stats(),
                               command=report.command_line(), loop_lag_ms=lags)


async def _show(progress: Progress | None, runner: LoadRunner | SplitLoad,
                sampler: SystemSampler, label: str) -> None:
    if progress is None:
        return
    while True:
        progress.show(runner, sampler, label)
        await asyncio.sleep(0.5)


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def first_interrupt() -> None:
        print("\nslotline bench: stopping, writing what was measured "
              "(Ctrl-C again to abort)", file=sys.stderr)
        stop.set()
        loop.remove_signal_handler(signal.SIGINT)  # the next one raises KeyboardInterrupt

    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform/thread
        loop.add_signal_handler(signal.SIGINT, first_interrupt)


async def _main(options: Options) -> int:
    stop = asyncio.Event()
    _install_stop(stop)
    options.out.mkdir(parents=True, exist_ok=True)
    result = await run_load(options, options.plan, stop, log_dir=options.out,
                            progress=Progress())
    return _write(result, options.out, stop.is_set())


async def _capacity(options: Options, search: capacity.Search) -> int:
    stop = asyncio.Event()
    _install_stop(stop)
    options.out.mkdir(parents=True, exist_ok=True)
    progress = Progress()

    async def step(calls: int) -> dict[str, Any]:
        plan = LoadPlan(calls, options.plan.duration_s, options.plan.ramp_s)
        folder = options.out / f"step-{calls}"
        result = await run_load(options, plan, stop, log_dir=folder, progress=progress,
                                label=f"[{calls} calls] ")
        report.write_result(result, folder)  # each step's detail, for a look afterwards
        return result

    result = await capacity.search(step, search, stop)
    return _write(result, options.out, stop.is_set())


def _write(result: dict[str, Any], out: Path, interrupted: bool) -> int:
    problems = report.validate(result)
    path = report.write_result(result, out)
    page = html.write_report(result, out)
    print(report.summary_table(result))
    if result.get("capacity"):
        print(capacity.summary(result))
    print(f"\nwrote {path} and {page}")
    if problems:  # a bug in the bench, not in the target: say so, keep the file
        print("slotline bench: result does not match its schema:\n  " + "\n  ".join(problems),
              file=sys.stderr)
        return 1
    if interrupted:
        return EXIT_INTERRUPTED
    return 1 if result["calls"]["started"] and result["calls"]["dropped"] == \
        result["calls"]["started"] else 0


def main(args: argparse.Namespace) -> int:
    if args.compare:
        if len(args.compare) != 3 or args.compare[0] != "compare":
            print("usage: slotline bench compare A.json B.json", file=sys.stderr)
            return 2
        try:
            a, b = (report.load_result(Path(p)) for p in args.compare[1:])
        except (OSError, ValueError) as exc:
            print(f"slotline bench compare: {exc}", file=sys.stderr)
            return 2
        print(compare_text(a, b, args.compare[1], args.compare[2]))
        return 0
    try:
        options = _options(args)
    except ConfigError as exc:
        print(f"slotline bench: {exc}", file=sys.stderr)
        return 2
    try:
        if args.capacity:
            search = capacity.Search(
                start_calls=args.start_calls, max_calls=args.max_calls,
                budget_p95_ms=args.budget_p95_ms,
                max_send_lateness_ms=args.max_send_lateness_ms,
                max_gaps_per_call_minute=args.max_gaps_per_call_minute)
            return event_loop.run(_capacity(options, search))
        return event_loop.run(_main(options))
    except ConfigError as exc:
        print(f"slotline bench: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nslotline bench: aborted", file=sys.stderr)
        return EXIT_INTERRUPTED
