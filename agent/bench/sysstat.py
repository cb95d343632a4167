"""CPU time and resident memory of local processes, read from /proc while the bench runs.

Each watched process is read with its descendants (a server's decoder workers count as the
server): ``utime + stime`` from ``/proc/PID/stat`` and resident pages from ``/proc/PID/statm``.
A sample every ``interval_s`` gives CPU % over the interval; with the number of calls up at
that moment the report derives CPU ms per call-second and RSS per call. Linux only; elsewhere
(no /proc) nothing is sampled and the report says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PROC = Path("/proc")
_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ProcReading:
    at_s: float  # monotonic
    cpu_s: float  # user + system, whole tree
    rss_bytes: int
    processes: int


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in (_PROC / str(pid) / "task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _tree(pid: int, exclude: frozenset[int]) -> list[int]:
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        queue += [child for child in _children(current) if child not in exclude]
    return pids


def _read_one(pid: int) -> tuple[float, int] | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        statm = (_PROC / str(pid) / "statm").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    cpu_ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return cpu_ticks / _TICKS_PER_S, int(statm.split()[1]) * _PAGE_BYTES


def read_tree(pid: int, exclude: frozenset[int] = frozenset()) -> ProcReading | None:
    """``pid`` and its descendants (but not ``exclude`` and theirs) now; None if ``pid`` is
    gone (or there is no /proc)."""
    cpu_s, rss, count = 0.0, 0, 0
    for member in _tree(pid, exclude):
        one = _read_one(member)
        if one is None:
            if member == pid:
                return None
            continue
        cpu_s += one[0]
        rss += one[1]
        count += 1
    return ProcReading(time.monotonic(), cpu_s, rss, count)


@dataclass(slots=True)
class Sample:
    t_s: float  # from the run's start
    active_calls: int
    cpu_percent: dict[str, float] = field(default_factory=dict)  # process name → % of one core
    rss_mb: dict[str, float] = field(default_factory=dict)


class SystemSampler:
    """Samples ``pids`` (name → pid) every ``interval_s`` while ``run()`` is awaited."""

    def __init__(
        self,
        pids: dict[str, int],
        active_calls: Callable[[], int],
        *,
        interval_s: float = 1.0,
        clock_origin_s: float | None = None,
    ) -> None:
        self.pids = dict(pids)
        self._active_calls = active_calls
        self._interval_s = interval_s
        self._origin_s = time.monotonic() if clock_origin_s is None else clock_origin_s
        self.first: dict[str, ProcReading] = {}
        self._last: dict[str, ProcReading] = {}
        self.samples: list[Sample] = []

    def _others(self, pid: int) -> frozenset[int]:
        """The other watched processes: the bench's children are read on their own."""
        return frozenset(p for p in self.pids.values() if p != pid)

    @property
    def available(self) -> bool:
        return _PROC.is_dir() and bool(self.first)

    def start(self, origin_s: float | None = None) -> None:
        """Take the baseline readings (idle processes), before any call."""
        if origin_s is not None:
            self._origin_s = origin_s
        for name, pid in self.pids.items():
            reading = read_tree(pid, self._others(pid))
            if reading is not None:
                self.first[name] = self._last[name] = reading

    def sample(self) -> Sample:
        now = time.monotonic()
        point = Sample(now - self._origin_s, self._active_calls())
        for name, pid in self.pids.items():
            reading = read_tree(pid, self._others(pid))
            previous = self._last.get(name)
            if reading is None or previous is None:
                continue
            interval = reading.at_s - previous.at_s
            if interval > 0:
                point.cpu_percent[name] = 100 * (reading.cpu_s - previous.cpu_s) / interval
            point.rss_mb[name] = reading.rss_bytes / _MB
            self._last[name] = reading
        self.samples.append(point)
        return point

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            await asyncio.sleep(self._interval_s)
            self.sample()

    def latest_cpu(self, name: str) -> float | None:
        for point in reversed(self.samples):
            if name in point.cpu_percent:
                return point.cpu_percent[name]
        return None

    def summary(self, call_seconds: float, peak_calls: int) -> dict[str, Any]:
        """Per process: CPU seconds used since the baseline, mean/max CPU %, baseline and peak
        RSS; for ``server``, CPU ms per call-second and RSS per call as well."""
        out: dict[str, Any] = {}
        for name, first in self.first.items():
            last = self._last[name]
            wall_s = max(last.at_s - first.at_s, 1e-9)
            cpu_s = last.cpu_s - first.cpu_s
            cpus = [p.cpu_percent[name] for p in self.samples if name in p.cpu_percent]
            rss = [p.rss_mb[name] for p in self.samples if name in p.rss_mb]
            at_peak = [p.cpu_percent[name] for p in self.samples
                       if name in p.cpu_percent and p.active_calls == peak_calls and peak_calls]
            base_mb = first.rss_bytes / _MB
            peak_mb = max(rss, default=base_mb)
            entry: dict[str, Any] = {
                "pid": self.pids[name],
                "processes": last.processes,
                "cpu_s": round(cpu_s, 3),
                "cpu_percent_mean": round(100 * cpu_s / wall_s, 2),
                "cpu_percent_max": round(max(cpus, default=0.0), 2),
                "cpu_percent_at_peak_calls": round(sum(at_peak) / len(at_peak), 2)
                if at_peak else None,
                "rss_mb_baseline": round(base_mb, 2),
                "rss_mb_peak": round(peak_mb, 2),
            }
            if call_seconds > 0:
                entry["cpu_ms_per_call_second"] = round(1000 * cpu_s / call_seconds, 3)
            if peak_calls > 0:
                entry["rss_mb_per_call"] = round((peak_mb - base_mb) / peak_calls, 3)
            out[name] = entry
        return out
