"""``slotline bench --server-cpus``: the started server alone on its CPUs, the callers and the
emulators on the others (the issue's "server pinned to one core, the load on the other")."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from slotline.agent.bench import args as bench_args
from slotline.agent.bench.cli import _options
from slotline.agent.bench.profiles import load_profile
from slotline.agent.bench.target import SubprocessSlotline
from slotline.providers.errors import ConfigError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_args.add_parser(parser.add_subparsers())
    return parser.parse_args(["bench", *argv])


def test_the_cpus_must_leave_the_harness_some_and_apply_only_to_a_started_server() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    assert _options(parse()).server_cpus == frozenset()
    everything = ",".join(map(str, allowed))
    for spec, why in ((everything, "not all"), ("x", "comma-separated"),
                      (str(max(allowed) + 1), "not all")):
        with pytest.raises(ConfigError, match=why):
            _options(parse("--server-cpus", spec))
    with pytest.raises(ConfigError, match="--target"):
        _options(parse("--server-cpus", "0", "--target", "ws://127.0.0.1:9/ws"))
    with pytest.raises(ConfigError, match="inprocess"):
        _options(parse("--server-cpus", "0", "--server", "inprocess"))
    if len(allowed) > 1:  # CI and this box have two cores
        assert _options(parse("--server-cpus", str(allowed[0]))).server_cpus == {allowed[0]}


async def test_the_started_server_runs_on_its_cpu_and_the_bench_on_the_rest(
    tmp_path: Path,
) -> None:
    allowed = os.sched_getaffinity(0)
    assert len(allowed) > 1, "the bench needs two CPUs to pin the server apart"
    server_cpu = frozenset({min(allowed)})
    try:
        async with SubprocessSlotline(load_profile("instant"), log_dir=tmp_path,
                                      server_cpus=server_cpu) as info:
            assert info.server_pid is not None and info.vendors_pid is not None
            assert os.sched_getaffinity(info.server_pid) == server_cpu
            assert os.sched_getaffinity(info.vendors_pid) == allowed - server_cpu
            assert os.sched_getaffinity(0) == allowed - server_cpu
            assert info.as_dict()["server_cpus"] == [min(allowed)]
            assert info.event_loop == "uvloop"  # the default, as the server's /healthz says
        assert os.sched_getaffinity(0) == allowed  # given back when the server stops
    finally:
        os.sched_setaffinity(0, allowed)  # this test process goes back to every CPU
