"""CPU and memory from /proc: a process tree read whole, or without another watched tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from slotline.agent.bench.sysstat import SystemSampler, read_tree


def _burn_cpu(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_tree_includes_children_unless_they_are_watched_on_their_own() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        whole = read_tree(os.getpid())
        alone = read_tree(os.getpid(), frozenset({child.pid}))
        assert whole is not None and alone is not None
        assert whole.processes == alone.processes + 1
        assert whole.rss_bytes > alone.rss_bytes > 0
        assert read_tree(child.pid) is not None
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    assert read_tree(child.pid) is None  # gone


def test_sampler_reports_cpu_and_memory_per_call() -> None:
    sampler = SystemSampler({"me": os.getpid()}, lambda: 4)
    sampler.start()
    _burn_cpu(0.05)
    point = sampler.sample()
    assert point.active_calls == 4 and point.cpu_percent["me"] > 0 and point.rss_mb["me"] > 0
    assert sampler.latest_cpu("me") == point.cpu_percent["me"]
    summary = sampler.summary(call_seconds=2.0, peak_calls=4)["me"]
    assert summary["cpu_s"] >= 0.04
    assert summary["cpu_ms_per_call_second"] == round(1000 * summary["cpu_s"] / 2.0, 3)
    assert summary["cpu_percent_at_peak_calls"] == round(point.cpu_percent["me"], 2)
    assert summary["rss_mb_peak"] >= summary["rss_mb_baseline"] > 0
    assert sampler.available
