"""Metrics across worker processes: prometheus-client's multiprocess mode, set up and read whole.

The supervisor (``agent.server.workers``) owns the directory: ``MetricsDir.open`` makes a fresh one
(or empties the one an operator named in ``PROMETHEUS_MULTIPROC_DIR``) and puts it in the
environment the workers are spawned with — prometheus-client reads that variable once, when it is
first imported, to keep values in files instead of memory. ``mark_dead`` removes a dead worker's
live gauges; its counters stay, so totals never drop. Each worker samples its own process gauges
(``ProcessSampler``) and reads every worker's files when scraped (``whole_registry``), in a
fixed order, so every worker renders the same text.

prometheus-client's own variable is the one place this module reads the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

log = logging.getLogger(__name__)

# prometheus-client leaves these two untyped
_mark_process_dead = cast(Callable[[int, str], None], multiprocess.mark_process_dead)
_merged_files = cast(Callable[[None, str], Collector], multiprocess.MultiProcessCollector)

ENV = "PROMETHEUS_MULTIPROC_DIR"
# How often a worker refreshes its process gauges and task count; a scrape sees values at most
# this old (scrapes are usually every 15 s or more).
SAMPLE_S = 5.0


def multiprocess_dir() -> str | None:
    """The workers' shared metrics directory; None when this process serves alone."""
    return os.environ.get(ENV) or None


class MetricsDir:
    """The supervisor's metrics directory for its workers (module doc)."""

    def __init__(self, path: Path, owned: bool, previous: str | None) -> None:
        self.path = path
        self._owned = owned
        self._previous = previous

    @classmethod
    def open(cls) -> MetricsDir:
        previous = os.environ.get(ENV)
        if previous:  # the operator's (a tmpfs, say): emptied of an earlier run's files
            path, owned = Path(previous), False
            path.mkdir(parents=True, exist_ok=True)
            for old in path.glob("*.db"):
                old.unlink()
        else:
            path, owned = Path(tempfile.mkdtemp(prefix="slotline-metrics-")), True
        os.environ[ENV] = str(path)  # inherited by the workers spawned from now on
        return cls(path, owned, previous)

    def mark_dead(self, pid: int | None) -> None:
        if pid is not None:
            _mark_process_dead(pid, str(self.path))

    def close(self) -> None:
        if self._previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = self._previous
        if self._owned:
            shutil.rmtree(self.path, ignore_errors=True)


class _Sorted(Collector):
    """The workers' files merged, families by name and samples by labels: the text does not
    depend on which worker wrote first or in which order the directory lists the files."""

    def __init__(self, path: str) -> None:
        self._merged = _merged_files(None, path)

    def collect(self) -> Iterator[Metric]:
        for family in sorted(self._merged.collect(), key=lambda f: f.name):
            family.samples = sorted(family.samples, key=_sample_order)
            yield family


def _sample_order(sample: Sample) -> tuple[str, tuple[tuple[str, str], ...], float]:
    labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
    return sample.name, labels, float(sample.labels.get("le", "0"))


def whole_registry(path: str) -> CollectorRegistry:
    """A registry whose exposition is every worker's metrics together."""
    registry = CollectorRegistry()
    registry.register(_Sorted(path))
    return registry


class ProcessSampler:
    """A worker's process gauges and task count, written every ``SAMPLE_S`` into its files
    (prometheus-client's process collector cannot run across processes)."""

    def __init__(self, registry: CollectorRegistry, tasks: Gauge,
                 count_tasks: Callable[[], float],
                 also: Callable[[], object] | None = None) -> None:
        def live(name: str, text: str, mode: Literal["livesum", "livemin", "livemax"]) -> Gauge:
            return Gauge(name, text, registry=registry, multiprocess_mode=mode)

        self._gauges = {
            "process_resident_memory_bytes": live(
                "process_resident_memory_bytes", "Resident memory size in bytes (summed over "
                "live workers).", "livesum"),
            "process_virtual_memory_bytes": live(
                "process_virtual_memory_bytes", "Virtual memory size in bytes (summed over live "
                "workers).", "livesum"),
            "process_open_fds": live(
                "process_open_fds", "Open file descriptors (summed over live workers).",
                "livesum"),
            "process_max_fds": live(
                "process_max_fds", "Maximum open file descriptors (the lowest of the live "
                "workers).", "livemin"),
            "process_start_time_seconds": live(
                "process_start_time_seconds", "Start time of the newest live worker, seconds "
                "since the epoch.", "livemax"),
        }
        self._cpu = Counter("process_cpu_seconds", "CPU time in seconds, user and system, of "
                            "every worker.", registry=registry)
        self._cpu_seen = 0.0
        self._tasks = tasks
        self._count_tasks = count_tasks
        self._also = also  # more of this worker's values to write at each sample
        self._source = ProcessCollector(registry=None)
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        for family in self._source.collect():
            for sample in family.samples:
                gauge = self._gauges.get(sample.name)
                if gauge is not None:
                    gauge.set(sample.value)
                elif sample.name == "process_cpu_seconds_total":
                    self._cpu.inc(max(0.0, sample.value - self._cpu_seen))
                    self._cpu_seen = max(self._cpu_seen, sample.value)
        self._tasks.set(self._count_tasks())
        if self._also is not None:
            self._also()

    def start(self) -> None:
        self.sample()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="metrics-sampler")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_S)
            try:
                self.sample()
            except OSError as exc:  # /proc unreadable for a moment: keep the last values
                log.warning("could not sample process metrics: %s", exc)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
