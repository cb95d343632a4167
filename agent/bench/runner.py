"""Fixed load: N simulated callers, started evenly over the ramp, redialling until the end.

Caller ``i`` dials at ``i * ramp / N``; when its conversation ends it dials again at once,
until ``duration`` (counted from the first dial, ramp included) or a stop request. Then every
call still up hangs up at its next frame (those calls are ``cut``, which is not a failure).
For a Slotline target each call first asks ``POST /twilio/voice`` for its stream like Twilio
does. Each call's log (``GET /api/calls/{sid}``) and the server's ``/metrics`` are fetched by
``fetch_records`` once the load is over, outside the CPU window: answering the harness's own
questions is not the server's work for the calls, and asked as each call ended they landed in
the end-of-call waves (~2 % of the server's profile at 100 calls; within noise side by side).
A foreign target is dialled at its URL as given (any path, e.g. a plain ``/ws``), with an empty
``customParameters``: Twilio's ``start`` for a ``<Stream>`` without ``<Parameter>``. With
``greeting_wait_s`` a caller that hears no greeting that long speaks first (servers that wait
to be spoken to); such calls are counted (``spoke_first``).

Outcomes: ``completed`` (the script ran out, whoever hung up), ``ended_by_server`` (the server
hung up normally with steps left), ``cut`` (the run ended first), ``failed`` (the caller saw an
error: no reply in time, a bad message, the webhook refused), ``dropped`` (could not connect, or
the socket died without a normal close).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from slotline.agent.bench.conversation import Conversation
from slotline.agent.bench.target import TargetInfo
from slotline.agent.sim.caller import CallerReport, run_caller
from slotline.agent.sim.demo import fetch_stream
from slotline.agent.sim.frame_clock import FrameClock

log = logging.getLogger(__name__)

Outcome = Literal["completed", "ended_by_server", "cut", "failed", "dropped"]
OUTCOMES: tuple[Outcome, ...] = ("completed", "ended_by_server", "cut", "failed", "dropped")
_NORMAL_CLOSE = 1000
_REDIAL_AFTER_FAILURE_S = 1.0  # a target refusing calls is not hammered in a tight loop
_CALL_TIMEOUT_MARGIN_S = 120.0  # a call outliving the run by this much is a caller bug


@dataclass(frozen=True, slots=True)
class LoadPlan:
    calls: int
    duration_s: float
    ramp_s: float = 0.0

    def __post_init__(self) -> None:
        if self.calls < 1:
            raise ValueError("calls must be >= 1")
        if self.duration_s <= 0:
            raise ValueError("duration must be > 0")
        if not 0 <= self.ramp_s < self.duration_s:
            raise ValueError("ramp must be >= 0 and shorter than the duration")


@dataclass(slots=True)
class CallResult:
    slot: int
    started_at_s: float  # from the run's start
    ended_at_s: float
    outcome: Outcome
    errors: list[str]
    report: CallerReport | None = None
    call_log: dict[str, Any] | None = None  # the server's record (Slotline targets)

    @property
    def call_sid(self) -> str | None:
        return None if self.report is None else self.report.call_sid


@dataclass(slots=True)
class RunResult:
    plan: LoadPlan
    conversation: str
    started_mono_s: float
    started_wall_s: float  # time.time() at started_mono_s: call log times are wall clock
    ended_mono_s: float = 0.0
    calls: list[CallResult] = field(default_factory=list)
    concurrency: list[tuple[float, int]] = field(default_factory=list)  # (t_s, active) changes
    stopped_early: bool = False  # a stop request (Ctrl-C) ended the run before its duration
    server_metrics: str | None = None  # the target's /metrics at the end (Slotline)
    server_metrics_before: str | None = None  # ... when the load started
    greeting_wait_s: float | None = None  # callers spoke first after this long without a greeting

    @property
    def wall_s(self) -> float:
        return self.ended_mono_s - self.started_mono_s


def classify(report: CallerReport, steps: int) -> Outcome:
    if report.hung_up_early:
        return "cut"
    if report.errors:
        return "failed"
    if report.close_code not in (None, _NORMAL_CLOSE):
        return "dropped"
    if report.closed_by == "server" and len(report.turns) < steps:
        return "ended_by_server"
    return "completed"


class LoadRunner:
    def __init__(
        self,
        target: TargetInfo,
        conversation: Conversation,
        plan: LoadPlan,
        *,
        stop: asyncio.Event | None = None,
        reply_timeout_s: float = 15.0,
        greeting_wait_s: float | None = None,
        slots: Sequence[int] | None = None,
    ) -> None:
        self._target = target
        self._conversation = conversation
        self._plan = plan
        self._stop = stop or asyncio.Event()
        self._reply_timeout_s = reply_timeout_s
        self._hangup = asyncio.Event()
        self.active = 0
        self.live_latencies_ms: list[float] = []  # every turn_latency_ms so far, as measured
        self._greeting_wait_s = greeting_wait_s
        self._slots = tuple(range(plan.calls)) if slots is None else tuple(slots)
        self._clock = FrameClock()  # every caller's 20 ms frames on shared timers
        self.result = RunResult(plan, conversation.name, time.monotonic(), time.time(),
                                greeting_wait_s=greeting_wait_s)

    def elapsed_s(self) -> float:
        return time.monotonic() - self.result.started_mono_s

    async def run(self, origin: tuple[float, float] | None = None) -> RunResult:
        """Run the plan's slots (``slots``: this process's share of them) from ``origin``
        (monotonic, wall clock; default now)."""
        result = self.result
        timeout = aiohttp.ClientTimeout(total=None, connect=10)
        connector = aiohttp.TCPConnector(limit=0)  # one socket per call, no pool limit
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            result.started_mono_s, result.started_wall_s = (
                origin or (time.monotonic(), time.time()))
            result.concurrency.append((0.0, 0))
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._end_of_run(), name="bench-deadline")
                for slot in self._slots:
                    tasks.create_task(self._slot(slot, http), name=f"bench-slot-{slot}")
        result.ended_mono_s = time.monotonic()
        return result

    async def _end_of_run(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._plan.duration_s - self.elapsed_s()):
                await self._stop.wait()
                self.result.stopped_early = True
        self._hangup.set()

    async def _wait_hangup(self, delay_s: float) -> bool:
        """Sleep ``delay_s`` unless the run ends first; True if it has ended."""
        if delay_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay_s):
                    await self._hangup.wait()
        return self._hangup.is_set()

    async def _slot(self, slot: int, http: aiohttp.ClientSession) -> None:
        plan = self._plan
        if await self._wait_hangup(slot * plan.ramp_s / plan.calls - self.elapsed_s()):
            return
        while not self._hangup.is_set():
            call = await self._call(slot, http)
            self.result.calls.append(call)
            quick = call.ended_at_s - call.started_at_s < _REDIAL_AFTER_FAILURE_S
            if call.outcome in ("failed", "dropped") and quick:
                await self._wait_hangup(_REDIAL_AFTER_FAILURE_S)

    def _count(self, delta: int) -> None:
        self.active += delta
        self.result.concurrency.append((self.elapsed_s(), self.active))

    async def _call(self, slot: int, http: aiohttp.ClientSession) -> CallResult:
        started = self.elapsed_s()
        steps = self._conversation.steps
        self._count(+1)
        try:
            url, parameters = self._target.media_url, dict[str, str]()
            if self._target.http_url is not None:
                url, parameters = await fetch_stream(http, self._target.http_url)
            report = await run_caller(
                url, steps, custom_parameters=parameters, session=http, hangup=self._hangup,
                reply_timeout_s=self._reply_timeout_s, greeting_wait_s=self._greeting_wait_s,
                on_turn_latency=self.live_latencies_ms.append,
                timeout_s=self._plan.duration_s + _CALL_TIMEOUT_MARGIN_S, clock=self._clock,
                keep_audio=False,  # the report uses the timings, not the agent's audio
            )
        except aiohttp.ClientResponseError as exc:  # the voice webhook said no
            return self._ended(slot, started, "failed", f"webhook: HTTP {exc.status}")
        except (SyntaxError, KeyError, RuntimeError) as exc:  # TwiML without a usable <Stream>
            return self._ended(slot, started, "failed", f"webhook: unusable TwiML ({exc!r})")
        except (aiohttp.ClientError, OSError) as exc:
            return self._ended(slot, started, "dropped", f"connect: {exc!r}")
        self._count(-1)
        return CallResult(slot, started, self.elapsed_s(), classify(report, len(steps)),
                          list(report.errors), report)

    def _ended(self, slot: int, started: float, outcome: Outcome, error: str) -> CallResult:
        self._count(-1)
        log.debug("bench call failed: %s", error)
        return CallResult(slot, started, self.elapsed_s(), outcome, [error])



_RECORDS_AT_ONCE = 8  # call logs asked for at a time after the run


_RECORDS_TIMEOUT = aiohttp.ClientTimeout(total=30)


def _headers(api_token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token}"} if api_token else {}


async def server_metrics(target: TargetInfo, api_token: str | None) -> str | None:
    """A Slotline target's ``/metrics`` now (None for another server, or none answered): the
    bench asks before the load starts, and ``fetch_records`` after it."""
    if target.http_url is None:
        return None
    async with aiohttp.ClientSession(timeout=_RECORDS_TIMEOUT) as http:
        return await _get_text(http, target.http_url + "/metrics", _headers(api_token))


async def fetch_records(target: TargetInfo, result: RunResult, api_token: str | None) -> None:
    """What a Slotline target recorded, asked once the load is over (the CPU window closed):
    its ``/metrics`` first (the end of the run's counters), then each call's log."""
    if target.http_url is None:
        return
    base, headers = target.http_url, _headers(api_token)
    async with aiohttp.ClientSession(timeout=_RECORDS_TIMEOUT) as http:
        result.server_metrics = await _get_text(http, base + "/metrics", headers)
        gate = asyncio.Semaphore(_RECORDS_AT_ONCE)

        async def record(call: CallResult, sid: str) -> None:
            async with gate:
                call.call_log = await _get_json(http, f"{base}/api/calls/{sid}", headers)

        async with asyncio.TaskGroup() as tasks:
            for call in result.calls:
                if call.call_sid is not None:
                    tasks.create_task(record(call, call.call_sid))


async def _get_json(http: aiohttp.ClientSession, url: str,
                    headers: dict[str, str]) -> dict[str, Any] | None:
    try:
        async with http.get(url, headers=headers) as response:
            if response.status != 200:
                return None
            body: dict[str, Any] = await response.json()
            return body
    except (aiohttp.ClientError, OSError, ValueError):
        return None


async def _get_text(http: aiohttp.ClientSession, url: str,
                    headers: dict[str, str]) -> str | None:
    try:
        async with http.get(url, headers=headers) as response:
            return await response.text() if response.status == 200 else None
    except (aiohttp.ClientError, OSError):
        return None
