"""``--load-procs N``: the simulated callers split over N processes, merged into one run.

One asyncio process carries a few hundred callers before its own loop becomes the limit; on a
machine with cores to spare the load can use more. ``SplitLoad`` starts N children (``python
-m slotline.agent.bench.load_procs SPEC``), each a ``LoadRunner`` over every N-th slot (slot
``i`` goes to child ``i % N``, so the ramp interleaves them), all counting from one origin on
the shared monotonic clock, so their timelines merge without shifting.

The protocol is lines of JSON: a child prints ``{"ready": PID}`` once imported, runs when it
reads ``{"go": ORIGIN_MONO_S, "wall": ORIGIN_WALL_S}``, prints progress
(``{"active", "ended", "latencies"}``) twice a second, stops early on ``stop`` (or when its
stdin closes), and at the end pickles its ``RunResult`` and its loop lag into the spec's
``result_path`` and prints ``{"done": true}``. Children get their own session, so a Ctrl-C at
the terminal reaches only the bench, which tells them to stop.

``SplitLoad`` looks like a ``LoadRunner`` to the progress line (``result``, ``active``,
``live_latencies_ms``, ``elapsed_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from slotline.agent.bench.conversation import Conversation
from slotline.agent.bench.harness import LoopLagMonitor, lag_summary
from slotline.agent.bench.runner import CallResult, LoadPlan, LoadRunner, RunResult
from slotline.agent.bench.target import TargetInfo
from slotline.agent.server import event_loop
from slotline.agent.server.heap import frozen_heap

_READY_TIMEOUT_S = 60.0  # imports on a cold, loaded machine
_PROGRESS_EVERY_S = 0.5
_FINISH_MARGIN_S = 180.0  # a child outliving the run by this much is stuck


@dataclass(frozen=True, slots=True)
class ShareSpec:
    """What one load process runs (pickled into a file named on its command line)."""

    index: int
    target: TargetInfo
    conversation: Conversation
    plan: LoadPlan
    slots: tuple[int, ...]
    reply_timeout_s: float
    greeting_wait_s: float | None
    result_path: str


def shares(calls: int, procs: int) -> list[tuple[int, ...]]:
    """Slot ``i`` to process ``i % procs``; no process without slots."""
    count = max(1, min(procs, calls))
    return [tuple(range(k, calls, count)) for k in range(count)]


def merge_concurrency(timelines: list[list[tuple[float, int]]]) -> list[tuple[float, int]]:
    """One (t, active) change list from several on the same clock: the sum of the levels."""
    deltas: list[tuple[float, int]] = []
    for timeline in timelines:
        level = 0
        for t, active in timeline:
            if active != level:
                deltas.append((t, active - level))
                level = active
    merged = [(0.0, 0)]
    level = 0
    for t, delta in sorted(deltas, key=lambda item: item[0]):
        level += delta
        merged.append((t, level))
    return merged


def merge_runs(plan: LoadPlan, conversation: str, origin: tuple[float, float],
               runs: list[RunResult]) -> RunResult:
    merged = RunResult(plan, conversation, origin[0], origin[1],
                       greeting_wait_s=runs[0].greeting_wait_s if runs else None)
    merged.ended_mono_s = max((r.ended_mono_s for r in runs), default=time.monotonic())
    merged.calls = sorted((c for r in runs for c in r.calls), key=lambda c: c.started_at_s)
    merged.concurrency = merge_concurrency([r.concurrency for r in runs])
    merged.stopped_early = any(r.stopped_early for r in runs)
    return merged


class _Child:
    def __init__(self, index: int, process: asyncio.subprocess.Process) -> None:
        self.index = index
        self.process = process
        self.active = 0
        self.done = False
        self.lag_ms: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return f"load-{self.index + 1}"

    def tell(self, message: object) -> None:
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.write((json.dumps(message) + "\n").encode())

    async def line(self) -> dict[str, Any] | None:
        assert self.process.stdout is not None
        raw = await self.process.stdout.readline()
        if not raw:
            return None
        with contextlib.suppress(ValueError):
            parsed = json.loads(raw)
            if isinstance(parsed, dict):
                return parsed
        return {}


class SplitLoad:
    """The parent's side: ``async with SplitLoad(...) as load: load.pids; await load.run()``."""

    def __init__(
        self, target: TargetInfo, conversation: Conversation, plan: LoadPlan, procs: int, *,
        stop: asyncio.Event, log: IO[bytes] | None = None,
        reply_timeout_s: float = 15.0, greeting_wait_s: float | None = None,
    ) -> None:
        self._target, self._conversation, self._plan = target, conversation, plan
        self._procs = procs
        self._stop = stop
        self._log = log
        self._reply_timeout_s = reply_timeout_s
        self._greeting_wait_s = greeting_wait_s
        self._children: list[_Child] = []
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self.live_latencies_ms: list[float] = []
        self.result = RunResult(plan, conversation.name, time.monotonic(), time.time(),
                                greeting_wait_s=greeting_wait_s)

    @property
    def active(self) -> int:
        return sum(child.active for child in self._children)

    @property
    def pids(self) -> dict[str, int]:
        return {child.name: child.process.pid for child in self._children}

    def loop_lag_ms(self) -> dict[str, dict[str, Any]]:
        return {c.name: c.lag_ms for c in self._children if c.lag_ms is not None}

    def elapsed_s(self) -> float:
        return time.monotonic() - self.result.started_mono_s

    async def __aenter__(self) -> SplitLoad:
        self._folder = tempfile.TemporaryDirectory(prefix="slotline-load-")
        try:
            for index, slots in enumerate(shares(self._plan.calls, self._procs)):
                self._children.append(await self._spawn(index, slots))
            async with asyncio.timeout(_READY_TIMEOUT_S):
                for child in self._children:
                    first = await child.line()
                    if first is None or "ready" not in first:
                        raise RuntimeError(f"bench: load process {child.name} exited during "
                                           f"start-up (status {await child.process.wait()})")
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for child in self._children:
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
                await child.process.wait()
        if self._folder is not None:
            self._folder.cleanup()

    async def _spawn(self, index: int, slots: tuple[int, ...]) -> _Child:
        assert self._folder is not None
        folder = Path(self._folder.name)
        spec = ShareSpec(index, self._target, self._conversation, self._plan, slots,
                         self._reply_timeout_s, self._greeting_wait_s,
                         str(folder / f"result-{index}.pickle"))
        spec_path = folder / f"spec-{index}.pickle"
        _save(spec_path, spec)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "slotline.agent.bench.load_procs", str(spec_path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=self._log, start_new_session=True,
        )
        return _Child(index, process)

    async def run(self) -> RunResult:
        origin = (time.monotonic(), time.time())
        self.result.started_mono_s, self.result.started_wall_s = origin
        for child in self._children:
            child.tell({"go": origin[0], "wall": origin[1]})
        limit_s = self._plan.duration_s + _FINISH_MARGIN_S
        async with asyncio.timeout(limit_s), asyncio.TaskGroup() as tasks:
            tasks.create_task(self._forward_stop(), name="load-procs-stop")
            for child in self._children:
                tasks.create_task(self._follow(child), name=f"load-procs-{child.name}")
        runs = []
        for child in self._children:
            path = Path(self._folder.name if self._folder else "") / f"result-{child.index}.pickle"
            run, lag_samples = _load(path)
            child.lag_ms = lag_summary(lag_samples)
            runs.append(run)
        self.result = merge_runs(self._plan, self._conversation.name, origin, runs)
        return self.result

    async def _forward_stop(self) -> None:
        while not all(child.done for child in self._children):
            if self._stop.is_set():
                for child in self._children:
                    child.tell("stop")
                return
            await asyncio.sleep(0.1)

    async def _follow(self, child: _Child) -> None:
        while (message := await child.line()) is not None:
            if message.get("done"):
                child.done = True
                break
            child.active = int(message.get("active", child.active))
            self.live_latencies_ms += message.get("latencies", [])
            self.result.calls += [CallResult(-1, 0.0, 0.0, outcome, [])
                                  for outcome in message.get("ended", [])]
        status = await child.process.wait()
        if not child.done:
            raise RuntimeError(f"bench: load process {child.name} ended without its result "
                               f"(status {status})")


# ---- the child -------------------------------------------------------------------------------


async def _child(spec: ShareSpec) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stop = asyncio.Event()
    runner = LoadRunner(spec.target, spec.conversation, spec.plan, stop=stop,
                        reply_timeout_s=spec.reply_timeout_s,
                        greeting_wait_s=spec.greeting_wait_s, slots=spec.slots)
    _say({"ready": os.getpid()})
    go = json.loads(await reader.readline() or b"{}")
    if "go" not in go:
        return
    lag = LoopLagMonitor()
    progress = _Progress(runner)
    async with asyncio.TaskGroup() as tasks:
        watching = tasks.create_task(lag.run(), name="load-lag")
        listening = tasks.create_task(_listen(reader, stop), name="load-listen")
        reporting = tasks.create_task(progress.run(), name="load-progress")
        with frozen_heap():  # full scans of this process skip its imports and recordings
            run = await runner.run(origin=(float(go["go"]), float(go["wall"])))
        for task in (watching, listening, reporting):
            task.cancel()
    progress.send()
    _save(spec.result_path, (run, lag.samples_ms.tolist()))
    _say({"done": True})


async def _listen(reader: asyncio.StreamReader, stop: asyncio.Event) -> None:
    while True:
        line = await reader.readline()
        if not line or line.strip() == b'"stop"':
            stop.set()
            return


class _Progress:
    """What changed since the last line: calls up, outcomes of calls ended, new latencies."""

    def __init__(self, runner: LoadRunner) -> None:
        self._runner = runner
        self._latencies = 0
        self._calls = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(_PROGRESS_EVERY_S)
            self.send()

    def send(self) -> None:
        runner = self._runner
        latencies = runner.live_latencies_ms[self._latencies:]
        ended = [c.outcome for c in runner.result.calls[self._calls:]]
        self._latencies += len(latencies)
        self._calls += len(ended)
        _say({"active": runner.active, "ended": ended,
              "latencies": [round(v, 2) for v in latencies]})


def _save(path: str | Path, thing: object) -> None:
    """A small file written once at start or end, never on the per-frame path."""
    Path(path).write_bytes(pickle.dumps(thing))


def _load(path: str | Path) -> Any:
    return pickle.loads(Path(path).read_bytes())


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    event_loop.run(_child(_load(sys.argv[1])))
