"""``slotline bench`` end to end: a short run against a Slotline it starts (the default: server
and emulated vendors in their own processes), and a run against a foreign Twilio-protocol
server written here whose delays are known, to show the harness measures what happened.

The checks are on completeness and sanity (fields, schema, plots present, numbers consistent
with each other), not on timing budgets — except the foreign server's known delay, which the
harness must report within one 20 ms frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from aiohttp import WSMsgType, web

from slotline.agent.bench.cli import Options, run_load
from slotline.agent.bench.conversation import load_conversation
from slotline.agent.bench.html import write_report
from slotline.agent.bench.metrics import STAGES
from slotline.agent.bench.profiles import BUILTIN
from slotline.agent.bench.report import SCHEMA, summary_table, validate
from slotline.agent.bench.runner import LoadPlan
from slotline.agent.cli import main
from slotline.audio.framing import FRAME_MS
from slotline.audio.mulaw import decode_array, encode_array
from slotline.providers.telephony.twilio_media import (
    InboundStream,
    Media,
    Start,
    Stop,
    encode_clear,
    encode_mark,
    encode_media,
)
from tests.loopback import serving_ws


def test_smoke_run_writes_a_complete_sane_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = main(["bench", "--calls", "2", "--duration", "7", "--ramp", "0.5",
                       "--profile", "instant", "--conversation", "short", "--out", str(out)])
    assert status == 0
    result = json.loads((out / "result.json").read_text())
    assert result["schema"] == SCHEMA and validate(result) == []
    assert "caller turn_latency_ms" in stdout.getvalue()  # the summary table was printed

    assert result["config"]["target"]["kind"] == "slotline-subprocess"
    assert result["calls"]["started"] >= 2
    assert result["calls"]["failed"] == result["calls"]["dropped"] == 0
    assert result["errors"]["count"] == 0
    turns = result["turns"]
    assert turns["answered"] >= 2 and turns["unanswered"] == 0
    assert turns["bargein"] >= 2 and turns["bargein_cleared"] == turns["bargein"]
    assert turns["matched_in_call_log"] == turns["answered"]

    latency = result["latency"]
    assert latency["caller"]["turn_latency_ms"]["count"] == turns["answered"]
    assert latency["caller"]["bargein_ms"]["count"] == turns["bargein_cleared"]
    assert set(STAGES) <= set(latency["server"])  # every name of the latency vocabulary
    for stats in (*latency["caller"].values(), *latency["server"].values()):
        assert stats["min"] >= 0 and stats["min"] <= stats["p50"] <= stats["p95"] <= stats["max"]
    assert latency["server_metrics"]["bargein_count"] == turns["bargein_cleared"]
    for turn in result["per_turn"]:
        server = turn["server"]
        if server is not None:  # the stages add up to the server's turn latency
            parts = sum(server[k] for k in STAGES[1:])
            assert abs(parts - server["turn_latency_ms"]) <= 1.0

    audio = result["audio"]
    assert audio["frames_sent"] > 0 and audio["send_lateness_ms"]["p50"] >= 0
    server = result["resources"]["processes"]["server"]
    assert result["resources"]["available"] and not result["resources"]["shared_process"]
    assert server["pid"] == result["config"]["target"]["server_pid"]
    assert server["rss_mb_peak"] > 0 and server["cpu_s"] > 0
    assert server["cpu_ms_per_call_second"] > 0
    assert result["vendors"]["stt_connections"] >= 2 and result["vendors"]["tts_contexts"] > 0
    harness = result["harness"]  # the bench's own cost, each harness process's loop lag
    assert set(harness["processes"]) == {"bench", "vendors"}
    assert harness["cpu_ms_per_call_second"]["callers"] > 0
    assert harness["cpu_ms_per_call_second"]["emulators"] > 0
    assert all(p["loop_lag_ms"]["count"] > 0 for p in harness["processes"].values())
    assert "ms CPU per call-second; loop lag p99 bench" in stdout.getvalue()

    page = (out / "report.html").read_text()
    assert page.count("<svg") == 5 and "Latency CDF per stage" in page
    assert (out / "server.log").exists() and (out / "vendors.log").exists()


def test_split_load_on_slotline_gets_every_calls_log_after_the_run(tmp_path: Path) -> None:
    """The call logs are fetched by the bench itself once the load is over, whichever process
    ran the call: every answered turn of both load processes is matched in them."""
    out = tmp_path / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        status = main(["bench", "--calls", "2", "--duration", "6", "--ramp", "0.5",
                       "--load-procs", "2", "--profile", "instant", "--conversation", "short",
                       "--out", str(out)])
    assert status == 0
    result = json.loads((out / "result.json").read_text())
    assert validate(result) == []
    assert {c["slot"] for c in result["per_call"]} == {0, 1}
    turns = result["turns"]
    assert turns["answered"] >= 2
    assert turns["matched_in_call_log"] == turns["answered"]
    assert all(c.get("server_status") for c in result["per_call"])  # each call's log came
    assert result["latency"]["server_metrics"]["bargein_count"] == turns["bargein_cleared"]


# ---- a foreign Twilio Media Streams server with known timing ---------------------------------

REPLY_DELAY_MS = 400  # after the utterance's last voiced frame arrived
END_SILENT_FRAMES = 12  # 240 ms of quiet ends an utterance (the recordings pause < 180 ms)
ONSET_RMS = 300.0  # frames this loud start an utterance / count towards a barge-in
BARGEIN_FRAMES = 5  # loud frames over our own audio before we clear it
WITHIN_DB, FLOOR_RMS = 35.0, 32.8  # "voiced": within 35 dB of the utterance's peak, > -60 dBFS


def frame_rms(payload: bytes) -> float:
    pcm = decode_array(payload).astype(np.float64)
    return float(np.sqrt(np.mean(pcm * pcm)))


def last_voiced(frames: list[tuple[float, float]]) -> float:
    """The arrival of an utterance's last voiced frame, from its ``(rms, arrival)`` frames."""
    peak = max(rms for rms, _ in frames)
    threshold = max(peak * 10 ** (-WITHIN_DB / 20), FLOOR_RMS)
    return [t for rms, t in frames if rms >= threshold][-1]


@dataclass
class EchoServer:
    """Greets with 2 s of tone; answers each utterance with 1 s of tone REPLY_DELAY_MS after
    the arrival of its last voiced frame; clears its audio when talked over."""

    replies: list[tuple[float, float]] = field(default_factory=list)  # (last voiced, sent)
    bargeins: list[tuple[float, float]] = field(default_factory=list)  # (first voiced, clear)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        stream, sid = InboundStream(), ""
        frames: list[tuple[float, float]] = []  # this utterance: (rms, arrival)
        quiet, loud = 0, 0
        talking_until = 0.0  # when our queued audio will have played
        async with asyncio.TaskGroup() as tasks:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                now = loop.time()
                event = stream.receive(msg.data)
                if isinstance(event, Start):
                    sid = event.stream_sid
                    talking_until = await self._say(ws, sid, 2000, now)
                elif isinstance(event, Media):
                    rms = frame_rms(event.payload)
                    if rms >= ONSET_RMS:
                        loud += 1
                        quiet = 0
                        if loud == 1:
                            first_loud = now
                        if loud == BARGEIN_FRAMES and now < talking_until:
                            await ws.send_str(encode_clear(sid))
                            self.bargeins.append((first_loud, loop.time()))
                            talking_until = now
                    elif frames:
                        quiet += 1
                    if frames or rms >= ONSET_RMS:
                        frames.append((rms, now))
                    if frames and quiet == END_SILENT_FRAMES:
                        voiced_at = last_voiced(frames)
                        tasks.create_task(self._reply(ws, sid, voiced_at))
                        talking_until = voiced_at + REPLY_DELAY_MS / 1000 + 1.0
                        frames, quiet, loud = [], 0, 0
                elif isinstance(event, Stop):
                    break
        return ws

    async def _reply(self, ws: web.WebSocketResponse, sid: str, last_voiced: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(last_voiced + REPLY_DELAY_MS / 1000 - loop.time())
        if not ws.closed:
            self.replies.append((last_voiced, loop.time()))
            await self._say(ws, sid, 1000, loop.time())

    @staticmethod
    async def _say(ws: web.WebSocketResponse, sid: str, ms: int, now: float) -> float:
        t = np.arange(ms * 8) / 8000
        tone = (6000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
        await ws.send_str(encode_media(sid, encode_array(tone)))
        await ws.send_str(encode_mark(sid, f"said-{now:.3f}"))
        return now + ms / 1000


def serving(echo: EchoServer) -> contextlib.AbstractAsyncContextManager[str]:
    return serving_ws(echo.handle, "/media")


async def test_foreign_target_latency_is_the_servers_known_delay(tmp_path: Path) -> None:
    echo = EchoServer()
    async with serving(echo) as url:
        plan = LoadPlan(calls=2, duration_s=8.0, ramp_s=0.3)
        options = Options(plan, BUILTIN["instant"], load_conversation("short"), url, None,
                          "subprocess", None, tmp_path, 1.0, 5.0)
        result = await run_load(options, plan, asyncio.Event(), log_dir=tmp_path)
    assert validate(result) == []
    assert result["config"]["target"] == {
        "kind": "foreign", "media_url": url, "http_url": None, "server_pid": None,
        "vendors_pid": None, "shared_process": False, "server_cpus": [], "event_loop": None}
    assert result["calls"]["failed"] == result["calls"]["dropped"] == 0
    # no call log for a foreign server: only what the caller measures
    assert result["latency"]["server"] == {} and result["turns"]["matched_in_call_log"] == 0

    answered = [t["caller"]["turn_latency_ms"] for t in result["per_turn"]
                if t["caller"]["turn_latency_ms"] is not None]
    assert len(answered) >= 2 and len(answered) == len(echo.replies)
    for latency in answered:  # the server's known delay, within one frame
        assert abs(latency - REPLY_DELAY_MS) <= FRAME_MS, answered
    # barge-in: what the caller measured is what the server did, within one frame
    measured = sorted(t["caller"]["bargein_ms"] for t in result["per_turn"]
                      if t["caller"]["bargein_ms"] is not None)
    truth = sorted((clear - first) * 1000 for first, clear in echo.bargeins)
    assert len(measured) == len(truth) >= 2
    for got, expected in zip(measured, truth, strict=True):
        assert abs(got - expected) <= FRAME_MS

    assert "caller turn_latency_ms" in summary_table(result)
    page = write_report(result, tmp_path).read_text()
    assert page.count("<svg") == 5 and "No server call log" in page


async def test_load_procs_split_the_callers_and_merge_their_results(tmp_path: Path) -> None:
    echo = EchoServer()
    async with serving(echo) as url:
        plan = LoadPlan(calls=2, duration_s=7.0, ramp_s=0.3)
        options = Options(plan, BUILTIN["instant"], load_conversation("short"), url, None,
                          "subprocess", None, tmp_path, 1.0, 5.0, load_procs=2)
        result = await run_load(options, plan, asyncio.Event(), log_dir=tmp_path)
    assert validate(result) == []
    assert result["calls"]["failed"] == result["calls"]["dropped"] == 0
    assert {c["slot"] for c in result["per_call"]} == {0, 1}  # one slot in each process
    assert result["run"]["peak_calls"] == 2  # the processes' timelines add up
    answered = [t["caller"]["turn_latency_ms"] for t in result["per_turn"]
                if t["caller"]["turn_latency_ms"] is not None]
    assert len(answered) == len(echo.replies) >= 2
    # measured in the children as in the bench itself: never less than the server's delay,
    # and at best that delay within a frame (on a loaded box two processes can each be late)
    assert min(answered) >= REPLY_DELAY_MS - FRAME_MS, answered
    assert abs(min(answered) - REPLY_DELAY_MS) <= FRAME_MS, answered
    harness = result["harness"]
    assert {"load-1", "load-2"} <= set(harness["processes"])
    for name in ("load-1", "load-2"):
        assert result["resources"]["processes"][name]["cpu_s"] > 0
        assert harness["processes"][name]["loop_lag_ms"]["count"] > 0
    assert harness["cpu_ms_per_call_second"]["callers"] > 0
