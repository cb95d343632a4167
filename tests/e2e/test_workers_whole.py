"""Issue 13 §3: with ``serve --workers 2`` every worker answers ``/api/calls`` and ``/metrics``
the same, and whole: every call of both workers, live ones included, and counters equal to the
calls placed, also once a worker was killed and replaced. After a restart the list still shows
the stored calls.

The two-worker server is the real command in a subprocess (``bench.races.serve_process``). Each
request pair (``/healthz``, then the page) goes over one kept-alive connection, so the pid
``/healthz`` names is the worker that answered the page; a new connection per pair lets the
kernel pick either worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path

import aiohttp

from bench.races import serve_process
from slotline.agent.sim.caller import run_caller
from slotline.agent.sim.demo import DEMO_SCRIPT, caller_wav
from tests.e2e.conftest import call_tasks, running_server
from tests.until import until

CONFIG = Path(__file__).resolve().parents[2] / "config" / "slotline.yaml"
CALLS = 4  # short calls (the greeting, then the caller hangs up), placed together
# Sampled per worker every few seconds (agent.server.metrics_process): present in every answer, but
# their values move with time, not with calls.
_SAMPLED = re.compile(r"^(process_[a-z_]+|slotline_tasks)[ {]")


async def _answers(url: str, path: str, *, rounds: int = 24) -> dict[int, list[str]]:
    """``path``'s body from new connections, by the pid of the worker that answered."""
    by_pid: dict[int, list[str]] = {}
    for _ in range(rounds):
        connector = aiohttp.TCPConnector(limit=1)  # one connection: both requests on it
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.get(f"{url}/healthz") as health:
                pid = int((await health.json())["pid"])
            async with http.get(f"{url}{path}") as page:
                assert page.status == 200, await page.text()
                by_pid.setdefault(pid, []).append(await page.text())
    return by_pid


def _steady(text: str) -> str:
    """A metrics page without the sampled gauges' values (their names stay)."""
    return "\n".join(line.split(" ")[0] if _SAMPLED.match(line) else line
                     for line in text.splitlines())


def _value(text: str, series: str) -> float:
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    raise AssertionError(f"{series} not in the metrics")


async def test_two_workers_answer_the_call_list_and_metrics_alike_and_whole(
    tmp_path: Path,
) -> None:
    store_url = f"sqlite:///{tmp_path}/whole.db"
    async with serve_process(0, 2, CONFIG, store_url, tmp_path) as server:
        workers = await server.worker_pids()
        media = server.url.replace("http://", "ws://") + "/twilio/media"

        # a call held open: every worker lists it in progress, whichever worker carries it,
        # once it has had a turn (greeting, the caller, the reply)
        hangup = asyncio.Event()
        held = asyncio.create_task(run_caller(
            media, [caller_wav(u.stem) for u in DEMO_SCRIPT], call_sid="CA-whole-live",
            hangup=hangup))

        async def listed_live_by_both() -> bool:
            answers = await _answers(server.url, "/api/calls", rounds=8)
            return set(answers) == workers and all(
                any(c["call_sid"] == "CA-whole-live" and c["status"] == "in-progress"
                    and c["turns"] >= 3 for c in json.loads(body)["calls"])
                for bodies in answers.values() for body in bodies)

        await until(listed_live_by_both, timeout_s=60)
        hangup.set()
        await held

        reports = await asyncio.gather(*(run_caller(media, [], call_sid=f"CA-whole-{n}")
                                         for n in range(CALLS)))
        assert all(report.errors == () for report in reports)
        sids = {"CA-whole-live", *(f"CA-whole-{n}" for n in range(CALLS))}

        async def all_ended() -> bool:
            answers = await _answers(server.url, "/api/calls", rounds=4)
            calls = json.loads(next(iter(answers.values()))[0])["calls"]
            return {c["call_sid"] for c in calls if c["status"] != "in-progress"} >= sids

        await until(all_ended, timeout_s=60)

        answers = await _answers(server.url, "/api/calls")
        assert set(answers) == workers  # both workers answered ...
        bodies = {body for texts in answers.values() for body in texts}
        assert len(bodies) == 1  # ... with the same bytes
        calls = json.loads(bodies.pop())["calls"]
        assert {c["call_sid"] for c in calls} == sids
        assert all(c["status"] == "completed" and c["turns"] >= 1 for c in calls)
        assert [c["started_at"] for c in calls] == sorted(
            (c["started_at"] for c in calls), reverse=True)  # newest first

        async def counted() -> bool:  # the last call's end is counted as its session ends
            pages = await _answers(server.url, "/metrics", rounds=2)
            page = next(iter(pages.values()))[0]
            return _value(page, 'slotline_calls_started_total{direction="inbound"}') == len(sids)

        await until(counted, timeout_s=30)
        pages = await _answers(server.url, "/metrics")
        assert set(pages) == workers
        steady = {_steady(page) for texts in pages.values() for page in texts}
        assert len(steady) == 1  # identical but for the sampled gauges' values
        page = next(iter(pages.values()))[0]
        assert _value(page, 'slotline_calls_started_total{direction="inbound"}') == len(sids)
        assert _value(page, 'slotline_calls_started_total{direction="outbound"}') == 0
        ended = sum(_value(page, f'slotline_calls_ended_total{{direction="inbound",status="{s}"}}')
                    for s in ("completed", "failed"))
        assert ended == len(sids)
        assert _value(page, "slotline_active_calls") == 0
        assert _value(page, "slotline_workers") == 2
        turns = _value(page, "slotline_turn_latency_seconds_count")
        assert turns >= 1  # the held call's caller spoke before hanging up
        for stage in ("endpoint", "stt_final", "llm_ttft", "tts_ttfb"):
            assert _value(page, f'slotline_stage_seconds_count{{stage="{stage}"}}') == turns
        assert _value(page, 'slotline_bookings_total{result="booked"}') == 0  # known, at zero
        assert _value(page, "process_resident_memory_bytes") > 2 * 10 * 1024 * 1024
        assert _value(page, "slotline_tasks") >= 2

        # a worker killed and replaced: its live gauges go (the supervisor marks it dead), its
        # counts stay in the totals
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        replaced = await server.worker_pids(exclude=frozenset({victim}))
        assert victim not in replaced

        async def whole_again() -> bool:
            pages = await _answers(server.url, "/metrics", rounds=6)
            return set(pages) == replaced and all(
                _value(text, "slotline_workers") == 2 for texts in pages.values()
                for text in texts)

        await until(whole_again, timeout_s=30)
        pages = await _answers(server.url, "/metrics", rounds=6)
        for text in (text for texts in pages.values() for text in texts):
            assert _value(text, 'slotline_calls_started_total{direction="inbound"}') == len(sids)
            assert _value(text, "slotline_turn_latency_seconds_count") == turns


async def test_the_call_list_survives_a_restart(tmp_path: Path) -> None:
    env = {"SLOTLINE_STORE__URL": f"sqlite:///{tmp_path}/restart.db"}
    runner, server = await running_server(env)
    try:
        for n in range(2):
            report = await run_caller(server.media_url, [], call_sid=f"CA-before-{n}")
            assert report.errors == ()
        before: list[dict[str, object]] = []

        async def both_ended() -> bool:
            async with aiohttp.ClientSession() as http, \
                    http.get(f"{server.url}/api/calls") as response:
                before[:] = (await response.json())["calls"]
            return len(before) == 2 and all(c["ended_at"] for c in before)

        await until(both_ended, timeout_s=30)
    finally:
        await runner.cleanup()
    assert call_tasks() == []

    runner, server = await running_server(env)  # a new process would see the same
    try:
        assert len(server.deps.call_log.all()) == 0  # nothing in memory: the list is stored
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/api/calls") as response:
                after = (await response.json())["calls"]
            async with http.get(f"{server.url}/api/calls/CA-before-0") as response:
                one = await response.json()
    finally:
        await runner.cleanup()
    assert [c["call_sid"] for c in after] == ["CA-before-1", "CA-before-0"]
    assert after == before  # the same summaries, the same time format
    assert all(c["status"] == "completed" and c["ended_at"] for c in after)
    summary = after[1]
    assert {key: one[key] for key in summary if key not in ("turns", "errors")} == {
        key: value for key, value in summary.items() if key not in ("turns", "errors")}
    assert len(one["turns"]) == summary["turns"] and len(one["errors"]) == summary["errors"]
