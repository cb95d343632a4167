"""Prometheus text exposition for the handful of metrics DESIGN.md names.

Small enough to own: counters, a few gauges and fixed-bucket histograms, rendered in the text
format version 0.0.4. Two gauges are read at render time rather than kept: the asyncio tasks
alive in this process (a leak of per-call tasks shows as a line that only goes up while
``slotline_active_calls`` comes back down) and the process's resident memory.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections import defaultdict

# Seconds. Turn latency lives between ~0.3 s and a few seconds; barge-in well under 1 s.
_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...] = _BUCKETS_S):
        self.name = name
        self.help = help_text
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        cumulative = 0
        for bound, n in zip(self.buckets, self.counts, strict=False):
            cumulative += n
            lines.append(f'{self.name}_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{self.name}_sum {self.total}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


class Counter:
    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def render(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter",
                f"{self.name} {self.value}"]


class LabelledCounter:
    def __init__(self, name: str, help_text: str, label: str) -> None:
        self.name = name
        self.help = help_text
        self.label = label
        self.values: defaultdict[str, int] = defaultdict(int)

    def inc(self, label_value: str, by: int = 1) -> None:
        self.values[label_value] += by

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        for value, n in sorted(self.values.items()):
            lines.append(f'{self.name}{{{self.label}="{value}"}} {n}')
        return lines


def resident_memory_bytes() -> int | None:
    """This process's resident set size (Linux ``/proc/self/statm``); None where unreadable."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            resident_pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def live_tasks() -> int | None:
    """asyncio tasks not yet done on this thread's running loop; None outside a loop."""
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:
        return None


def _gauge(name: str, help_text: str, value: int | None) -> list[str]:
    if value is None:
        return []
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]


class Metrics:
    def __init__(self) -> None:
        self.active_calls = 0
        self.turn_latency = Histogram(
            "slotline_turn_latency_seconds", "Caller's last voiced frame to first agent audio."
        )
        self.bargein = Histogram(
            "slotline_bargein_seconds", "First voiced frame of an interruption to clear sent."
        )
        self.provider_errors = LabelledCounter(
            "slotline_provider_errors_total", "Provider calls that failed.", "provider"
        )
        self.protocol_errors = LabelledCounter(
            "slotline_protocol_errors_total", "Malformed or out-of-order wire messages.", "code"
        )
        self.bookings = LabelledCounter(
            "slotline_bookings_total", "Booking attempts by result.", "result"
        )
        self.turn_ends = LabelledCounter(
            "slotline_turn_ends_total",
            "Caller turns by what ended them: silence, stt_final or max_turn.", "reason",
        )
        self.cached_audio_turns = Counter(
            "slotline_cached_audio_turns_total",
            "Agent turns that played prompt audio from the cache.",
        )
        self.fillers = Counter(
            "slotline_fillers_total", "Fillers said while a reply was slow to start."
        )
        self.false_interruptions = Counter(
            "slotline_false_interruptions_total",
            "Barge-ins with no words (noise) after which the agent resumed.",
        )
        self.flow_turns = LabelledCounter(
            "slotline_flow_turns_total",
            "Caller turns a flow handled: llm=skipped (the rules answered) or llm=used.", "llm",
        )

    def render(self) -> str:
        lines = [
            "# HELP slotline_active_calls Calls with an open media stream.",
            "# TYPE slotline_active_calls gauge",
            f"slotline_active_calls {self.active_calls}",
            *_gauge("slotline_tasks", "asyncio tasks alive in this process.", live_tasks()),
            *_gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                    resident_memory_bytes()),
        ]
        for part in (
            self.turn_latency,
            self.bargein,
            self.provider_errors,
            self.protocol_errors,
            self.bookings,
            self.turn_ends,
            self.cached_audio_turns,
            self.fillers,
            self.false_interruptions,
            self.flow_turns,
        ):
            lines.extend(part.render())
        return "\n".join(lines) + "\n"
