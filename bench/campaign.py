"""What the outbound dialer achieves, in one run, four measurements side by side:

1. Pacing. A campaign of ``--pacing`` cheap contacts (busy after 100 ms of ringing, max one
   attempt) at ``--cps``: the achieved dial rate, ``(n - 1) / (last - first)``, and the min /
   p50 gap between dials, both as the Twilio emulator saw them (``EmulatedCall.dispatched_at_s``;
   the emulator's own CPS queue is set to 50, above any campaign, so it does not pace) and as
   the server recorded them (the attempts' ``started_at`` from ``GET /api/campaigns/{id}``).
2. Answer to greeting. ``--humans`` people who decline (``Callees().party("declines")``): from
   the emulator's answer (``EmulatedCall.answered_at_s``) to the first agent audio the callee
   heard (``CallerReport.first_agent_audio_at_s``, stream 0). p50 / p95.
3. Machine verdict to voicemail. ``--machines`` answering machines (``party("machine")``) in a
   campaign with ``machine=voicemail``. The emulator's AMD webhooks carry no timestamp, so the
   verdict time is taken as the emulator schedules it: ``answered_at_s + amd_after_ms`` (the
   Party's). Reported: that moment → the first agent audio on the redirected stream (stream 1,
   ``first_agent_audio_at_s``), and, the server-side part of it, the redirected stream's start
   (its report's ``started_at_s``) → that first audio. p50 / p95.
4. Many workers, no double dial. ``slotline serve --workers 2`` in a subprocess on a scratch
   PostgreSQL database (``--postgres`` admin URL), ``--contacts`` busy / no-answer contacts at
   cps 20, concurrency 20, one attempt each; the emulator counts calls per ``To`` number
   (duplicates must be 0). Reported: wall time from the create to ``status: done`` and the
   achieved dial rate at the emulator. The workers' CPU (``RUSAGE_CHILDREN``) is printed too.

1-3 run on one in-process server (fresh SQLite store, local STT/TTS, the rules model,
``turn.end_silence_ms`` 500 as the e2e tests use), one campaign after the other, so the harness
CPU of those phases includes the server's. The harness also runs a 10 ms ticker and reports the
worst lateness it saw (event-loop lag). The calling window is 08:00-21:00 in a zone where it is
now office hours. A table is printed and JSON written to ``--out``.

    cd /work/main && .venv/bin/python -m bench.campaign [--cps 2] [--pacing 20] [--humans 10]
        [--machines 4] [--contacts 200] [--out PATH]

Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import os
import resource
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from slotline.agent.config import load_secrets, load_settings
from slotline.agent.server.wiring import build_deps
from slotline.agent.sim.callees import Callees, office_hours_zone, parties
from slotline.agent.sim.demo import start_server
from slotline.agent.store.scratch import scratch_postgres
from slotline.providers.emulators.twilio import TwilioEmulator
from slotline.providers.emulators.twilio_call_state import EmulatedCall
from slotline.providers.emulators.twilio_outbound import Party

FROM = "+12025550100"
WINDOW = "08:00-21:00"
VOICEMAIL = "Hi {user_name}, this is Slotline about your demo. Call us back any time."
EMULATOR_CPS = 50.0  # the account's queue: above every campaign's cps, so the dialer paces
POLL_S = 0.25
FAST_ENV = {"SLOTLINE_TURN__END_SILENCE_MS": "500"}
WORKERS_CPS = 20
WORKERS_CONCURRENCY = 20


def number(block: int, i: int) -> str:
    return f"+1{block}555{i:04d}"


def pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


class LagTicker:
    """Wakes every 10 ms and keeps the worst lateness (how late the loop ran it)."""

    def __init__(self, interval_s: float = 0.010) -> None:
        self.interval_s = interval_s
        self.max_lag_s = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bench-lag-ticker")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval_s
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            now = loop.time()
            self.max_lag_s = max(self.max_lag_s, now - due)
            self.ticks += 1
            due = max(due + self.interval_s, now)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class Phase:
    """CPU and loop lag of one phase (the ticker's maximum is reset at each phase)."""

    name: str
    cpu_s: float = 0.0
    wall_s: float = 0.0
    max_lag_s: float = 0.0


@dataclass
class Harness:
    ticker: LagTicker
    phases: list[Phase] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def phase(self, name: str) -> AsyncIterator[Phase]:
        phase = Phase(name)
        self.ticker.max_lag_s = 0.0
        cpu, wall = time.process_time(), time.monotonic()
        try:
            yield phase
        finally:
            phase.cpu_s = time.process_time() - cpu
            phase.wall_s = time.monotonic() - wall
            phase.max_lag_s = self.ticker.max_lag_s
            self.phases.append(phase)


def contacts_csv(phones: Iterable[str], zone: str, prefix: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Phone", "Name", "timezone", "Company"])
    for i, phone in enumerate(phones):
        writer.writerow([phone, f"{prefix} {i}", zone, "Acme"])
    return out.getvalue().encode()


async def run_campaign(
    http: aiohttp.ClientSession,
    url: str,
    phones: Sequence[str],
    zone: str,
    query: Mapping[str, str],
    *,
    timeout_s: float,
) -> tuple[dict[str, Any], float]:
    """Create a campaign of ``phones``, poll until done; (its full JSON, create → done seconds)."""
    started = time.monotonic()
    async with http.post(
        f"{url}/api/campaigns",
        params=dict(query),
        data=contacts_csv(phones, zone, "Lead"),
        headers={"Content-Type": "text/csv"},
    ) as response:
        if response.status != 201:
            raise RuntimeError(f"campaign not created: {response.status} {await response.text()}")
        created = await response.json()
    if created["contacts"] != len(phones) or created["rejected"]:
        raise RuntimeError(f"campaign contacts: {created}")
    campaign_url = f"{url}/api/campaigns/{created['id']}"
    async with asyncio.timeout(timeout_s):
        while True:
            async with http.get(campaign_url) as got:
                body: dict[str, Any] = await got.json()
            if body["status"] == "done":
                return body, time.monotonic() - started
            await asyncio.sleep(POLL_S)


def dial_stats(times: Sequence[float]) -> dict[str, float | int | None]:
    ordered = sorted(times)
    gaps = [b - a for a, b in zip(ordered, ordered[1:], strict=False)]
    span = ordered[-1] - ordered[0] if len(ordered) > 1 else 0.0
    return {
        "dials": len(ordered),
        "achieved_cps": (len(ordered) - 1) / span if span > 0 else None,
        "min_gap_s": min(gaps) if gaps else None,
        "p50_gap_s": statistics.median(gaps) if gaps else None,
        "span_s": span,
    }


def attempt_times(body: Mapping[str, Any]) -> list[float]:
    return [
        datetime.fromisoformat(a["started_at"]).timestamp()
        for c in body["contacts"]
        for a in c["attempts"]
    ]


def calls_to(emulator: TwilioEmulator, phones: Iterable[str]) -> list[EmulatedCall]:
    wanted = set(phones)
    return [c for c in emulator.calls if c.to in wanted]


# ---- 1-3: one in-process server -----------------------------------------------------------------


async def in_process(args: argparse.Namespace, harness: Harness, zone: str) -> dict[str, Any]:
    pacing = [number(212, i) for i in range(args.pacing)]
    humans = [number(212, 2000 + i) for i in range(args.humans)]
    machines = [number(212, 4000 + i) for i in range(args.machines)]
    callees = Callees()
    book: dict[str, Party] = {p: Party(kind="busy", ring_ms=100) for p in pacing}
    book.update({p: callees.party("declines", variant=i) for i, p in enumerate(humans)})
    book.update({p: callees.party("machine", variant=i) for i, p in enumerate(machines)})
    base = {"flow": "lead_qualify", "max_attempts": "1", "window": WINDOW}
    out: dict[str, Any] = {}
    scratch = tempfile.mkdtemp(prefix="slotline-bench-campaign-")
    async with contextlib.AsyncExitStack() as stack:
        emulator = await stack.enter_async_context(
            TwilioEmulator(cps=EMULATOR_CPS, parties=parties(book))
        )
        settings = load_settings(
            None,
            {
                **FAST_ENV,
                "SLOTLINE_STORE__URL": f"sqlite:///{scratch}/bench.db",
                "SLOTLINE_TWILIO__BASE_URL": emulator.base_url,
                "SLOTLINE_TWILIO__FROM_NUMBER": FROM,
            },
        )
        secrets = load_secrets(
            {"TWILIO_ACCOUNT_SID": emulator.account_sid, "TWILIO_AUTH_TOKEN": emulator.auth_token}
        )
        deps = await build_deps(settings, secrets)
        runner, url = await start_server(settings, secrets, deps)
        stack.push_async_callback(runner.cleanup)
        http = await stack.enter_async_context(aiohttp.ClientSession())

        if pacing:
            async with harness.phase("1 pacing") as phase:
                query = {**base, "cps": str(args.cps), "concurrency": str(max(1, args.pacing))}
                body, wall = await run_campaign(http, url, pacing, zone, query, timeout_s=300)
            emulated = dial_stats(
                [
                    c.dispatched_at_s
                    for c in calls_to(emulator, pacing)
                    if c.dispatched_at_s is not None
                ]
            )
            out["pacing"] = {
                "configured_cps": args.cps,
                "contacts": args.pacing,
                "campaign_wall_s": wall,
                "emulator": emulated,
                "server_attempts": dial_stats(attempt_times(body)),
                "outcomes": body["counts"],
                **vars(phase),
            }

        if humans:
            async with harness.phase("2 humans") as phase:
                query = {**base, "cps": str(args.cps), "concurrency": str(args.live_concurrency)}
                body, wall = await run_campaign(http, url, humans, zone, query, timeout_s=600)
            first_audio = {
                sid: r.first_agent_audio_at_s for sid, index, r in callees.reports if index == 0
            }
            waits: list[float] = []
            missing = 0
            for call in calls_to(emulator, humans):
                heard = first_audio.get(call.sid)
                if call.answered_at_s is None or heard is None:
                    missing += 1
                    continue
                waits.append(heard - call.answered_at_s)
            out["humans"] = {
                "calls": len(humans),
                "measured": len(waits),
                "missing": missing,
                "answer_to_first_audio_s": waits,
                "p50_s": pct(waits, 0.5),
                "p95_s": pct(waits, 0.95),
                "max_s": max(waits, default=None),
                "campaign_wall_s": wall,
                "outcomes": body["counts"],
                **vars(phase),
            }

        if machines:
            async with harness.phase("3 machines") as phase:
                query = {
                    **base,
                    "cps": str(args.cps),
                    "concurrency": str(args.live_concurrency),
                    "machine": "voicemail",
                    "voicemail_message": VOICEMAIL,
                }
                body, wall = await run_campaign(http, url, machines, zone, query, timeout_s=600)
            redirected = {sid: r for sid, index, r in callees.reports if index == 1}
            verdict_to_audio: list[float] = []
            stream_to_audio: list[float] = []
            for call in calls_to(emulator, machines):
                report = redirected.get(call.sid)
                amd_after_s = book[call.to].amd_after_ms / 1000
                if report is None or report.first_agent_audio_at_s is None:
                    continue
                if call.answered_at_s is not None:
                    verdict_to_audio.append(
                        report.first_agent_audio_at_s - (call.answered_at_s + amd_after_s)
                    )
                stream_to_audio.append(report.first_agent_audio_at_s - report.started_at_s)
            out["machines"] = {
                "calls": len(machines),
                "measured": len(verdict_to_audio),
                "amd_after_ms": book[machines[0]].amd_after_ms,
                "verdict_to_voicemail_audio_s": verdict_to_audio,
                "verdict_p50_s": pct(verdict_to_audio, 0.5),
                "verdict_p95_s": pct(verdict_to_audio, 0.95),
                "stream_start_to_audio_s": stream_to_audio,
                "stream_p50_s": pct(stream_to_audio, 0.5),
                "stream_p95_s": pct(stream_to_audio, 0.95),
                "campaign_wall_s": wall,
                "outcomes": body["counts"],
                **vars(phase),
            }
    return out


# ---- 4: slotline serve --workers 2 on PostgreSQL ------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_healthy(
    http: aiohttp.ClientSession, url: str, workers: int, timeout_s: float
) -> set[int]:
    """Until ``workers`` distinct worker pids have answered /healthz (a new connection each)."""
    seen: set[int] = set()
    async with asyncio.timeout(timeout_s):
        while len(seen) < workers:
            try:
                async with http.get(f"{url}/healthz", headers={"Connection": "close"}) as response:
                    if response.status == 200:
                        seen.add(int((await response.json())["pid"]))
                        continue
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    return seen


async def workers_phase(args: argparse.Namespace, harness: Harness, zone: str) -> dict[str, Any]:
    phones = [number(213, i) for i in range(args.contacts)]
    book = {
        p: Party(kind="busy" if i % 2 else "no-answer", ring_ms=100) for i, p in enumerate(phones)
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = Path(tempfile.mkdtemp(prefix="slotline-bench-workers-")) / "serve.log"
    async with contextlib.AsyncExitStack() as stack:
        store_url = await stack.enter_async_context(scratch_postgres(args.postgres))
        emulator = await stack.enter_async_context(
            TwilioEmulator(cps=EMULATOR_CPS * 2, parties=parties(book))
        )
        env = {
            **os.environ,
            "SLOTLINE_STORE__URL": store_url,
            "SLOTLINE_TWILIO__BASE_URL": emulator.base_url,
            "SLOTLINE_TWILIO__FROM_NUMBER": FROM,
            "SLOTLINE_SERVER__PORT": str(port),
            "TWILIO_ACCOUNT_SID": emulator.account_sid,
            "TWILIO_AUTH_TOKEN": emulator.auth_token,
        }
        log = stack.enter_context(log_path.open("wb"))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "slotline.agent.cli",
            "serve",
            "--workers",
            str(args.workers),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )

        async def stop() -> None:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()

        stack.push_async_callback(stop)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        pids = await wait_healthy(http, url, args.workers, timeout_s=60)
        async with harness.phase("4 workers") as phase:
            query = {
                "flow": "lead_qualify",
                "max_attempts": "1",
                "window": WINDOW,
                "cps": str(WORKERS_CPS),
                "concurrency": str(WORKERS_CONCURRENCY),
            }
            body, wall = await run_campaign(http, url, phones, zone, query, timeout_s=600)
        per_number = Counter(c.to for c in calls_to(emulator, phones))
        await stop()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    attempts = sum(len(c["attempts"]) for c in body["contacts"])
    return {
        "workers": args.workers,
        "worker_pids": sorted(pids),
        "contacts": args.contacts,
        "configured_cps": WORKERS_CPS,
        "concurrency": WORKERS_CONCURRENCY,
        "emulator_calls": sum(per_number.values()),
        "numbers_called": len(per_number),
        "duplicates": sum(n - 1 for n in per_number.values() if n > 1),
        "server_attempts": attempts,
        "campaign_wall_s": wall,
        "emulator": dial_stats(
            [c.dispatched_at_s for c in calls_to(emulator, phones) if c.dispatched_at_s is not None]
        ),
        "server_attempt_starts": dial_stats(attempt_times(body)),
        "outcomes": body["counts"],
        "emulator_max_concurrent": emulator.max_concurrent,
        "server_cpu_s_children": children.ru_utime + children.ru_stime,
        "serve_log": str(log_path),
        **vars(phase),
    }


# ---- report -------------------------------------------------------------------------------------


def print_table(result: Mapping[str, Any]) -> None:
    def rate(stats: Mapping[str, Any]) -> str:
        value = stats["achieved_cps"]
        return "-" if value is None else f"{value:.2f}/s"

    print(f"{'measure':<46}{'value':>22}")
    if (p := result.get("pacing")) is not None:
        em, sv = p["emulator"], p["server_attempts"]
        print(
            f"{'1. dials/s at cps ' + str(p['configured_cps']) + ' (emulator | server)':<46}"
            f"{rate(em) + ' | ' + rate(sv):>22}"
        )
        print(
            f"{'   gap min | p50 (emulator)':<46}"
            f"{ms(em['min_gap_s']) + ' | ' + ms(em['p50_gap_s']):>22}"
        )
        print(
            f"{'   gap min | p50 (server started_at)':<46}"
            f"{ms(sv['min_gap_s']) + ' | ' + ms(sv['p50_gap_s']):>22}"
        )
    if (h := result.get("humans")) is not None:
        print(
            f"{'2. answer → greeting audio p50 | p95 (n=' + str(h['measured']) + ')':<46}"
            f"{ms(h['p50_s']) + ' | ' + ms(h['p95_s']):>22}"
        )
    if (m := result.get("machines")) is not None:
        print(
            f"{'3. AMD verdict → voicemail audio p50 | p95':<46}"
            f"{ms(m['verdict_p50_s']) + ' | ' + ms(m['verdict_p95_s']):>22}"
        )
        print(
            f"{'   redirected stream → audio p50 | p95 (n=' + str(m['measured']) + ')':<46}"
            f"{ms(m['stream_p50_s']) + ' | ' + ms(m['stream_p95_s']):>22}"
        )
    if (w := result.get("workers")) is not None:
        label = f"4. {w['contacts']} contacts, {w['workers']} workers: duplicates"
        print(f"{label:<46}{w['duplicates']:>22}")
        both = f"{w['emulator_calls']} | {w['server_attempts']}"
        print(f"{'   calls at emulator | server attempts':<46}{both:>22}")
        label = f"   wall create→done | dials/s (cps {w['configured_cps']})"
        both = f"{w['campaign_wall_s']:.1f} s | {rate(w['emulator'])}"
        print(f"{label:<46}{both:>22}")
        sv = w["server_attempt_starts"]
        both = f"{rate(sv)} | {ms(sv['min_gap_s'])} | {ms(sv['p50_gap_s'])}"
        print(f"{'   server started_at: dials/s | gap min | p50':<46}{both:>22}")
        print(f"{'   server CPU (workers + supervisor)':<46}{w['server_cpu_s_children']:>20.2f} s")
    both = f"{result['harness_cpu_s']:.2f} s | {ms(result['max_loop_lag_s'])}"
    print(f"{'harness CPU total | max loop lag (10 ms ticker)':<46}{both:>22}")
    for phase in result["phases"]:
        print(
            f"   {phase['name']:<12} wall {phase['wall_s']:6.1f} s  cpu {phase['cpu_s']:6.2f} s"
            f"  max lag {phase['max_lag_s'] * 1000:6.1f} ms"
        )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    ticker = LagTicker()
    ticker.start()
    harness = Harness(ticker)
    cpu, wall = time.process_time(), time.monotonic()
    overall_lag = 0.0
    zone = office_hours_zone()
    result: dict[str, Any] = {"zone": zone, "emulator_cps": EMULATOR_CPS}
    try:
        result.update(await in_process(args, harness, zone))
        if args.contacts:
            result["workers"] = await workers_phase(args, harness, zone)
    finally:
        await ticker.stop()
        overall_lag = max([ticker.max_lag_s, *(p.max_lag_s for p in harness.phases)])
    result["harness_cpu_s"] = time.process_time() - cpu
    result["wall_s"] = time.monotonic() - wall
    result["max_loop_lag_s"] = overall_lag
    result["ticks"] = ticker.ticks
    result["phases"] = [vars(p) for p in harness.phases]
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cps", type=float, default=2.0, help="campaign cps of phases 1-3")
    parser.add_argument("--pacing", type=int, default=20, help="contacts of the pacing campaign")
    parser.add_argument("--humans", type=int, default=10, help="people who decline")
    parser.add_argument("--machines", type=int, default=4, help="answering machines")
    parser.add_argument(
        "--live-concurrency",
        type=int,
        default=4,
        help="campaign concurrency of phases 2-3 (live calls at once)",
    )
    parser.add_argument(
        "--contacts", type=int, default=200, help="contacts of the workers phase (0: skip it)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1/test",
        help="admin URL for the scratch database",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON output (default: bench_campaign.json in a temp dir)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="slotline-bench-")) / "bench_campaign.json"
    result = asyncio.run(main_async(args))
    result["args"] = {k: str(v) for k, v in vars(args).items()}
    print_table(result)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"JSON: {out}")
    workers = result.get("workers")
    return 1 if workers is not None and workers["duplicates"] else 0


if __name__ == "__main__":
    sys.exit(main())
