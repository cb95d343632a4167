"""The labelled turn-end set against a real Slotline: how often the caller is cut off in a
pause, and how often the agent stops for something that was not an interruption.

    python -m bench.turn_end_set [--stack offline|cloud] [--voices kal,slt,...] [--seed N]
                                 [--rounds 2] [--concurrency 3] [--out FILE.json]
    python -m bench.turn_end_set compare BEFORE.json AFTER.json

``slotline serve`` runs in a process of its own (``agent.bench.target.SubprocessSlotline``):
its own offline stack by default, with ``--stack cloud`` Deepgram, ElevenLabs and the model on
their local emulators with the ``cloud`` latency profile. Calls go through the Twilio protocol
in real time with the simulated caller (``agent.sim.caller``), over real sockets:

* booking calls answer the demo flow's questions (name, e-mail, date, time, "Shall I go
  ahead?") with labelled clips said in pieces (``bench.turn_end_clips``), so each answer is
  heard with the endpointing its question asks for; a second kind of call says "cancel my
  appointment" and reads a phone number in digit groups. The caller answers the question it
  was asked, as a person does: it follows the agent's lines in the live call log
  (``GET /api/calls/{sid}``) and plays the clip of that kind, a spare one (another phrasing)
  when the question is asked again, and hangs up when it is asked a third time;
* event calls play one backchannel, cough, noise burst or real interruption over the greeting.

What came back is scored by ``bench.turn_end_score`` from the agent audio and ``clear``
messages as they arrived (a tap on the caller's WebSocket) and the server's call log. The run
also watches itself: the harness's CPU, its event loop's worst lag (a 10 ms ticker) and how
late the callers' frames left. A late frame moves the pauses the labels describe, so a run
whose loop lagged more than ``--max-lag-ms`` or whose frames were p99 later than
``--max-send-lateness-ms`` is marked invalid. Prints a table and writes JSON. Not a test: the
numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import secrets
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt

from bench.turn_end_clips import (
    ANSWERS,
    BACKCHANNELS,
    BOOKING_KINDS,
    CANCEL,
    DAYS,
    DEFAULT_VOICES,
    HOURS,
    INTERRUPTIONS,
    Clip,
    Synth,
    Synthesise,
    Template,
    caller_words,
    first_voiced_ms,
    noise_clip,
    said,
)
from bench.turn_end_score import (
    AnswerOutcome,
    EventOutcome,
    Heard,
    Sent,
    asked_kind,
    opened_s,
    outcome_rows,
    score_answer,
    score_event,
    summarise,
    table,
)
from slotline.agent.bench.profiles import BUILTIN, Profile
from slotline.agent.bench.sysstat import SystemSampler
from slotline.agent.bench.target import SubprocessSlotline
from slotline.agent.sim import caller as sim_caller
from slotline.agent.sim.caller import CallerReport, run_caller
from slotline.audio.framing import FRAME_MS
from slotline.providers.errors import ProtocolError
from slotline.providers.telephony import twilio_media as tw

ROOT = Path(__file__).resolve().parents[1]
EVENT_AFTER_MS = (600, 1400)  # how much of the greeting plays before an event starts
REPLY_TIMEOUT_S = 15.0
QUESTION_POLL_S = 0.1  # how often a booking call reads the live call log for the question
# The caller's speech step; its class is being renamed from Say to Speak (issue 12: no two
# classes named Say), and the harness must run on commits from both sides of the rename.
SPEECH_STEP: Callable[..., Any] = getattr(sim_caller, "Speak", None) or sim_caller.__dict__["Say"]


# --- the plan -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PlannedCall:
    name: str
    clips: tuple[Clip, ...]  # the answers in the flow's order, then the spares
    event_after_ms: int | None = None  # an event call: the clip is played over the greeting
    spares: int = 0  # the last ``spares`` clips: said only when a question is asked again

    def steps(self) -> list[Any]:
        if self.event_after_ms is not None:
            return [SPEECH_STEP(self.clips[0].audio, pause_ms=0,
                                interrupt_after_ms=self.event_after_ms)]
        return [SPEECH_STEP(clip.audio) for clip in self.clips]

    def choose(self, asked: str, unplayed: Sequence[int]) -> int | None:
        """The clip to say when the agent's last line asked for ``asked`` (a kind of
        ``asked_kind``): the first unplayed one of that kind; when it asks for a kind this call
        answers and none is left, None (hang up); for any other line the next answer in the
        flow's order (the greeting, an offer of slots), None when all have been said."""
        for index in unplayed:
            if self.clips[index].kind == asked:
                return index
        if any(clip.kind == asked for clip in self.clips):
            return None
        answers = len(self.clips) - self.spares
        return next((index for index in unplayed if index < answers), None)


def plan(speak: Synthesise, voices: Sequence[str], rounds: int, seed: int,
         keep: Callable[[str], bool] = lambda name: True) -> list[PlannedCall]:
    """Every call of the run whose name ``keep`` accepts: per voice and round a booking call
    and a phone call, and per voice the event calls. Templates rotate with voice and round so
    each is said by several voices; each booking call asks for its own slot so calls do not
    compete for one. Every call draws from its own generator (seed and name), so leaving
    calls out changes nothing in the others."""
    calls: list[PlannedCall] = []
    for r in range(rounds):
        for v, voice in enumerate(voices):
            slot = r * len(voices) + v
            words = caller_words(random.Random(f"{seed}/{voice}/r{r}/words"),
                                 DAYS[slot % len(DAYS)], HOURS[slot // len(DAYS) % len(HOURS)])
            name = f"booking/{voice}/r{r}"
            if keep(name):
                rng = random.Random(f"{seed}/{name}")
                answers = [said(speak, voice, _nth(kind, v + r), words, rng, f"r{r}")
                           for kind in BOOKING_KINDS]
                spares = [said(speak, voice, _nth(kind, v + r + 1), words, rng, f"r{r}.again")
                          for kind in BOOKING_KINDS]
                calls.append(PlannedCall(name, (*answers, *spares), spares=len(spares)))
            name = f"phone/{voice}/r{r}"
            if keep(name):
                rng = random.Random(f"{seed}/{name}")
                calls.append(PlannedCall(name, (
                    said(speak, voice, CANCEL, words, rng, f"r{r}"),
                    said(speak, voice, _nth("phone", v + r), words, rng, f"r{r}"),
                    said(speak, voice, _nth("phone", v + r + 1), words, rng, f"r{r}.again")),
                    spares=1))
    for voice in voices:
        for template in (*BACKCHANNELS, *INTERRUPTIONS, "cough", "noise"):
            tag = template if isinstance(template, str) else template.id
            name = f"event/{voice}/{tag}"
            if not keep(name):
                continue
            rng = random.Random(f"{seed}/{name}")
            clip = noise_clip(template, voice, seed, "e") if isinstance(template, str) else \
                said(speak, voice, template, {}, rng, "e")
            after = 10 * rng.randint(EVENT_AFTER_MS[0] // 10, EVENT_AFTER_MS[1] // 10)
            calls.append(PlannedCall(name, (clip,), after))
    return calls


def _nth(kind: str, n: int) -> Template:
    """The answers of ``kind`` in rotation: each voice and round starts at its own."""
    return ANSWERS[kind][n % len(ANSWERS[kind])]


# --- watching the harness ---------------------------------------------------------------------

class LagTicker:
    """Wakes every 10 ms and keeps the worst lateness: how late this loop ran a timer."""

    def __init__(self, interval_s: float = 0.010) -> None:
        self.interval_s = interval_s
        self.max_lag_s = 0.0
        self.late_ticks = 0  # ticks more than 20 ms (one caller frame) late

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval_s
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            now = loop.time()
            lag = now - due
            self.max_lag_s = max(self.max_lag_s, lag)
            self.late_ticks += lag > FRAME_MS / 1000
            due = max(due + self.interval_s, now)


def tap_class(arrivals: list[tuple[float, str]]) -> type[aiohttp.ClientWebSocketResponse]:
    """A WebSocket response that notes when agent audio and ``clear`` arrive, before the
    caller sees them (the caller's report keeps no per-message times)."""

    class Tap(aiohttp.ClientWebSocketResponse):
        # aiohttp's own signature, timeout included
        async def receive(self, timeout: float | None = None) -> aiohttp.WSMessage:  # noqa: ASYNC109
            msg = await super().receive(timeout)
            if msg.type is aiohttp.WSMsgType.TEXT:
                now = time.monotonic()
                with contextlib.suppress(ProtocolError):
                    parsed = tw.parse_outbound(msg.data)
                    if isinstance(parsed, tw.OutboundMedia):
                        if parsed.payload:
                            arrivals.append((now, "media"))
                    elif not isinstance(parsed, tw.OutboundMark):
                        arrivals.append((now, "clear"))
            return msg

    return Tap


# --- one call -------------------------------------------------------------------------------

async def fetch_stream(http: aiohttp.ClientSession, base_url: str,
                       call_sid: str) -> tuple[str, dict[str, str]]:
    """What Twilio does first: POST the voice webhook and read ``<Stream>``'s URL and
    parameters. (``agent.sim.demo`` has the same; importing it pulls in the whole call
    session, which the harness process has no use for and which older commits import in an
    order of their own.)"""
    form = {"CallSid": call_sid, "AccountSid": "AC" + secrets.token_hex(16),
            "From": "+15005550006", "To": "+15005550001", "CallStatus": "ringing",
            "Direction": "inbound"}
    async with http.post(f"{base_url}/twilio/voice", data=form) as response:
        response.raise_for_status()
        stream = ET.fromstring(await response.text()).find("./Connect/Stream")
    if stream is None:
        raise aiohttp.ClientError("no <Connect><Stream> in the TwiML")
    return stream.attrib["url"], {p.attrib["name"]: p.attrib["value"]
                                  for p in stream.iter("Parameter")}


@dataclass(slots=True)
class CallOutcome:
    name: str
    call_sid: str = ""
    errors: tuple[str, ...] = ()
    answers: tuple[AnswerOutcome, ...] = ()
    events: tuple[EventOutcome, ...] = ()
    send_lateness_p99_ms: float = 0.0


def _heard(log: dict[str, Any], wall_minus_mono_s: float) -> list[Heard]:
    heard, question = [], ""
    for turn in log.get("turns", []):
        if turn["role"] == "agent":
            question = turn["text"]
            continue
        at_s = datetime.fromisoformat(turn["started_at"]).timestamp() - wall_minus_mono_s
        heard.append(Heard(at_s, turn["text"], asked_kind(question), turn.get("ended_by"),
                           turn.get("patience"), question))
    return heard


def _sent(call: PlannedCall, report: CallerReport) -> list[Sent]:
    sent = []
    for turn in report.turns:
        clip = call.clips[turn.step_index]
        if turn.first_voiced_at_s is None:
            continue
        start_s = turn.first_voiced_at_s - first_voiced_ms(clip.audio) / 1000
        sent.append(Sent(clip, start_s, turn.turn_latency_ms, turn.bargein_ms, turn.barge_in))
    return sent


async def follow_questions(http: aiohttp.ClientSession, log_url: str, asked: list[str]) -> None:
    """Keep ``asked[0]`` at the kind of the agent's latest line in the live call log."""
    while True:
        with contextlib.suppress(aiohttp.ClientError, ValueError):
            async with http.get(log_url) as response:
                if response.status == 200:
                    lines = [turn["text"] for turn in (await response.json()).get("turns", [])
                             if turn["role"] == "agent"]
                    if lines:
                        asked[0] = asked_kind(lines[-1])
        await asyncio.sleep(QUESTION_POLL_S)


async def one_call(call: PlannedCall, base_url: str, wall_minus_mono_s: float) -> CallOutcome:
    arrivals: list[tuple[float, str]] = []
    timeout = aiohttp.ClientTimeout(total=None, connect=10)
    tap = tap_class(arrivals)
    call_sid = "CA" + secrets.token_hex(16)
    log_url = f"{base_url}/api/calls/{call_sid}"
    async with aiohttp.ClientSession(timeout=timeout, ws_response_class=tap) as http:
        url, parameters = await fetch_stream(http, base_url, call_sid)
        asked = ["?"]
        follower = asyncio.create_task(follow_questions(http, log_url, asked))
        try:
            report = await run_caller(
                url, call.steps(), custom_parameters=parameters, session=http,
                reply_timeout_s=REPLY_TIMEOUT_S, timeout_s=180, call_sid=call_sid,
                choose_step=None if call.event_after_ms is not None else
                lambda unplayed: call.choose(asked[0], unplayed))
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        async with http.get(log_url) as response:
            log = await response.json() if response.status == 200 else {}
    heard = _heard(log, wall_minus_mono_s)
    media = [t for t, kind in arrivals if kind == "media"]
    clears = [t for t, kind in arrivals if kind == "clear"]
    sent = _sent(call, report)
    outcome = CallOutcome(call.name, report.call_sid, report.errors,
                          send_lateness_p99_ms=report.send_lateness.p99_ms)
    if call.event_after_ms is not None:
        resumed = any(t.get("resumed") for t in log.get("turns", []) if t["role"] == "agent")
        outcome.events = tuple(score_event(s, clears, heard, resumed=resumed, media_s=media)
                               for s in sent)
        return outcome
    ends = [opened_s(s) for s in sent[1:]] + [report.started_at_s + report.duration_s]
    outcome.answers = tuple(score_answer(s, end, media, heard) for s, end in zip(sent, ends,
                                                                                   strict=True))
    return outcome


# --- the run --------------------------------------------------------------------------------

def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _harness_digest() -> str:
    """The harness's own files, hashed: two runs with the same digest measured the same way
    (the server's commit may differ: a worktree at an older commit with these files in)."""
    digest = hashlib.sha1()
    for name in ("turn_end_clips.py", "turn_end_score.py", "turn_end_set.py"):
        digest.update((ROOT / "bench" / name).read_bytes())
    return digest.hexdigest()[:10]


def _profile(stack: str) -> Profile:
    return BUILTIN["cloud"] if stack == "cloud" else Profile("offline", emulated=False)


async def _watch(ticker: LagTicker, sampler: SystemSampler) -> None:
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(ticker.run(), name="turn-end-lag-ticker")
        tasks.create_task(sampler.run(), name="turn-end-sampler")


async def run(args: argparse.Namespace, calls: list[PlannedCall]) -> dict[str, Any]:
    """Start the server, place ``calls`` (``--concurrency`` at a time), score, summarise."""
    target = SubprocessSlotline(_profile(args.stack), log_dir=args.out.parent / "turn_end_logs")
    ticker = LagTicker()
    outcomes: list[CallOutcome] = []
    active = [0]
    async with target as info:
        base_url, server_pid = info.http_url, info.server_pid
        assert base_url is not None and server_pid is not None
        pids = {"harness": os.getpid(), "server": server_pid}
        if info.vendors_pid is not None:
            pids["vendors"] = info.vendors_pid
        sampler = SystemSampler(pids, lambda: active[0])
        sampler.start()
        wall_minus_mono_s = time.time() - time.monotonic()
        gate = asyncio.Semaphore(args.concurrency)
        started_s = time.monotonic()

        async def guarded(call: PlannedCall) -> None:
            async with gate:
                active[0] += 1
                try:
                    outcomes.append(await one_call(call, base_url, wall_minus_mono_s))
                except (aiohttp.ClientError, OSError) as exc:
                    outcomes.append(CallOutcome(call.name, errors=(f"connect: {exc!r}",)))
                finally:
                    active[0] -= 1
            print(f"  {len(outcomes):>3}/{len(calls)} {call.name}", file=sys.stderr, flush=True)

        watcher = asyncio.create_task(_watch(ticker, sampler), name="turn-end-watch")
        try:
            async with asyncio.TaskGroup() as group:
                for call in calls:
                    group.create_task(guarded(call), name=f"turn-end-{call.name}")
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        sampler.sample()
        wall_s = time.monotonic() - started_s
        processes = sampler.summary(0.0, 0)
    return result(args, calls, outcomes, ticker, processes, wall_s)


def result(args: argparse.Namespace, calls: Sequence[PlannedCall], outcomes: list[CallOutcome],
           ticker: LagTicker, processes: dict[str, Any], wall_s: float) -> dict[str, Any]:
    answers = [a for o in outcomes for a in o.answers]
    events = [e for o in outcomes for e in o.events]
    lateness = [o.send_lateness_p99_ms for o in outcomes if o.call_sid]
    worst_lateness = max(lateness, default=0.0)
    reasons = []
    if ticker.max_lag_s * 1000 > args.max_lag_ms:
        reasons.append(f"harness loop lagged {ticker.max_lag_s * 1000:.0f} ms "
                       f"(limit {args.max_lag_ms:g})")
    if worst_lateness > args.max_send_lateness_ms:
        reasons.append(f"a caller's frames were p99 {worst_lateness:.1f} ms late "
                       f"(limit {args.max_send_lateness_ms:g})")
    failed = [o for o in outcomes if o.errors]  # the server's doing (no reply...), listed
    harness = processes.get("harness", {})
    return {
        "commit": _commit(), "harness_digest": _harness_digest(), "stack": args.stack,
        "seed": args.seed, "voices": args.voices,
        "rounds": args.rounds, "concurrency": args.concurrency, "only": args.only,
        "calls": len(calls),
        "wall_s": round(wall_s, 1),
        "valid": not reasons, "invalid_because": reasons,
        "harness": {"cpu_s": harness.get("cpu_s"),
                    "cpu_percent_mean": harness.get("cpu_percent_mean"),
                    "loop_lag_max_ms": round(ticker.max_lag_s * 1000, 1),
                    "loop_ticks_late_over_20ms": ticker.late_ticks,
                    "send_lateness_p99_ms_worst_call": round(worst_lateness, 2),
                    "send_lateness_p99_ms_median_call": round(float(np.median(lateness)), 2)
                    if lateness else None},
        "processes": processes,
        "summary": summarise(answers, events),
        "answers": outcome_rows(answers), "events": outcome_rows(events),
        "errors": {o.name: list(o.errors) for o in failed},
        "clips": [c.as_dict() for call in calls for c in call.clips],
    }


def report_lines(data: dict[str, Any]) -> str:
    harness = data["harness"]
    head = (f"turn-end set  commit {data['commit']} (harness {data['harness_digest']})  "
            f"stack {data['stack']}  seed {data['seed']}  "
            f"voices {','.join(data['voices'])}  calls {data['calls']}  "
            f"concurrency {data['concurrency']}  {data['wall_s']:.0f} s")
    watch = (f"harness: CPU {harness['cpu_percent_mean']} % of a core, loop lag max "
             f"{harness['loop_lag_max_ms']} ms, caller frames p99 late (worst call) "
             f"{harness['send_lateness_p99_ms_worst_call']} ms")
    verdict = "VALID" if data["valid"] else "INVALID: " + "; ".join(data["invalid_because"])
    if data["errors"]:
        verdict += f"  ({len(data['errors'])} calls with caller errors: see errors in the JSON)"
    cuts = [f"  cut: {a['clip']:<34} in a {a['cut_in_pause_ms']} ms pause ({a['evidence']}): "
            f"{' | '.join(a['texts'])}" for a in data["answers"] if a["cut_off"]]
    stops = [f"  stopped by: {e['clip']}" + (" (resumed)" if e["resumed"] else "")
             for e in data["events"] if e["stopped"] and not e["interruption"]]
    return "\n".join((head, table(data["summary"]), *cuts, *stops, watch, verdict))


def _row(data: dict[str, Any]) -> dict[str, str]:
    summary, harness = data["summary"], data["harness"]
    cut, stop, inter = summary["cut_off"], summary["false_stop"], summary["interruptions"]
    rows = {
        "commit / stack": f"{data['commit']} / {data['stack']}",
        "callers cut off": f"{cut['cut']}/{cut['turns']} ({cut['pct']} %)",
        "agent stopped by a non-interruption": f"{stop['stopped']}/{stop['events']} "
                                               f"({stop['pct']} %)",
        "interruptions that stopped the agent": f"{inter['stopped']}/{inter['events']}",
        "barge-in p50 / p95 ms": f"{inter['bargein_ms']['p50']} / {inter['bargein_ms']['p95']}",
    }
    for kind, spread in summary["turn_latency_ms"].items():
        rows[f"turn latency {kind} p50 / p95 ms"] = f"{spread['p50']} / {spread['p95']}"
    rows["harness loop lag max ms"] = str(harness["loop_lag_max_ms"])
    rows["valid"] = "yes" if data["valid"] else "no"
    return rows


def compare(paths: Sequence[Path]) -> str:
    """Runs side by side (``python -m bench.turn_end_set compare A.json B.json ...``)."""
    rows = [_row(json.loads(path.read_text())) for path in paths]
    names = list(dict.fromkeys(name for row in rows for name in row))
    return "\n".join(f"{name:<40}" + "".join(f"{row.get(name, '-'):>26}" for row in rows)
                     for name in names)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.turn_end_set",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--stack", choices=("offline", "cloud"), default="offline")
    parser.add_argument("--voices", default=",".join(DEFAULT_VOICES),
                        help="comma-separated: flite voices and/or espeak "
                             f"(default {','.join(DEFAULT_VOICES)})")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2,
                        help="booking and phone calls per voice (default 2)")
    parser.add_argument("--concurrency", type=int, default=3, help="calls at a time (default 3)")
    parser.add_argument("--only", default="",
                        help="comma-separated parts of call names to keep, e.g. "
                             "'booking/slt,event/kal/bc' (default: every call)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default bench-results/turn_end_set-<stack>.json)")
    parser.add_argument("--max-lag-ms", type=float, default=100.0,
                        help="harness loop lag beyond which the run is invalid (default 100)")
    parser.add_argument("--max-send-lateness-ms", type=float, default=20.0,
                        help="callers' p99 frame lateness beyond which the run is invalid "
                             "(default 20)")
    args = parser.parse_args(argv)
    args.voices = [v for v in args.voices.split(",") if v]
    if args.out is None:
        args.out = ROOT / "bench-results" / f"turn_end_set-{args.stack}.json"
    if args.rounds < 1 or args.concurrency < 1 or not args.voices:
        parser.error("--rounds and --concurrency must be >= 1, and --voices not empty")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["compare"]:
        print(compare([Path(p) for p in argv[1:]]))
        return 0
    args = parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    synth = Synth()
    try:
        wanted = [part for part in args.only.split(",") if part]

        def keep(name: str) -> bool:
            return not wanted or any(part in name for part in wanted)

        lines: list[tuple[str, str]] = []

        def listed(voice: str, text: str) -> npt.NDArray[np.int16]:
            lines.append((voice, text))
            return np.full(80, 1000, np.int16)  # a stand-in: only the lines are wanted here

        plan(listed, args.voices, args.rounds, args.seed, keep)
        synth.prefetch(lines)
        calls = plan(synth, args.voices, args.rounds, args.seed, keep)  # before any call
    finally:
        synth.close()
    data = asyncio.run(run(args, calls))
    args.out.write_text(json.dumps(data, indent=1))
    print(report_lines(data))
    print(f"wrote {args.out}")
    return 0 if data["valid"] else 2


if __name__ == "__main__":
    sys.exit(main())
