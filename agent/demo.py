"""``slotline demo``: a simulated caller phones a local Slotline over the Twilio protocol.

Everything a real call does happens over real sockets on loopback: the caller asks
``POST /twilio/voice`` for TwiML like Twilio does, connects to the ``<Stream>`` URL it names with
the ``<Parameter>``s it lists, streams recorded speech in real time and plays the agent's audio
back. The demo passes (exit 0) only if every utterance was transcribed as spoken and answered.
"""

from __future__ import annotations

import logging
import secrets as _secrets
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import resources
from typing import TextIO

import aiohttp
from aiohttp import web

from agent.app import build_app
from agent.caller import CallerReport, Say, run_caller
from agent.calllog import CallRecord
from agent.config import Secrets, Settings
from agent.session import SessionDeps
from agent.wiring import build_deps


@dataclass(frozen=True, slots=True)
class Utterance:
    stem: str  # file in agent/assets/caller/
    text: str  # what the caller says (and the transcript we expect)


DEMO_SCRIPT = (
    Utterance("name_john", "my name is john smith"),
    Utterance("day_tuesday", "next tuesday"),
)


def caller_wav(stem: str) -> Say:
    path = resources.files("agent.assets.caller").joinpath(f"{stem}.wav")
    with resources.as_file(path) as file:
        return Say.from_wav(file)


async def fetch_stream(http: aiohttp.ClientSession, base_url: str) -> tuple[str, dict[str, str]]:
    """Do what Twilio does on an inbound call: POST the voice webhook, read ``<Stream>``."""
    form = {
        "CallSid": "CA" + _secrets.token_hex(16),
        "AccountSid": "AC" + _secrets.token_hex(16),
        "From": "+15005550006",
        "To": "+15005550001",
        "CallStatus": "ringing",
        "Direction": "inbound",
    }
    async with http.post(f"{base_url}/twilio/voice", data=form) as response:
        response.raise_for_status()
        twiml = await response.text()
    stream = ET.fromstring(twiml).find("./Connect/Stream")
    if stream is None:
        raise RuntimeError(f"no <Connect><Stream> in TwiML: {twiml}")
    parameters = {p.attrib["name"]: p.attrib["value"] for p in stream.iter("Parameter")}
    return stream.attrib["url"], parameters


async def start_server(
    settings: Settings, secrets: Secrets, deps: SessionDeps
) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(build_app(settings, secrets, deps), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def run_demo(settings: Settings, secrets: Secrets, out: TextIO = sys.stdout) -> int:
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # the demo prints its own
    deps = build_deps(settings)
    runner, base_url = await start_server(settings, secrets, deps)
    try:
        async with aiohttp.ClientSession() as http:
            url, parameters = await fetch_stream(http, base_url)
            print(f"server  {base_url}  stream {url}  parameters {parameters}", file=out)
            script = [caller_wav(u.stem) for u in DEMO_SCRIPT]
            report = await run_caller(url, script, custom_parameters=parameters, session=http)
    finally:
        await runner.cleanup()
    record = deps.call_log.get(report.call_sid)
    if record is None:
        print("FAIL: the server has no record of the call", file=out)
        return 1
    return _print_and_judge(report, record, out)


def _print_and_judge(report: CallerReport, record: CallRecord, out: TextIO) -> int:
    failures: list[str] = []
    said = [t.text for t in record.turns if t.role == "caller"]
    agent = [t for t in record.turns if t.role == "agent"]
    print(f"\ncall {record.call_sid}: {record.status}, closed by {report.closed_by}", file=out)
    for i, turn in enumerate(agent):
        heard = report.agent_turns[i].heard_ms / 1000 if i < len(report.agent_turns) else 0.0
        print(f"  agent : {turn.text}  [{heard:.1f} s of audio heard]", file=out)
        if i < len(DEMO_SCRIPT):
            expected = DEMO_SCRIPT[i].text
            got = said[i] if i < len(said) else ""
            ok = got == expected
            if not ok:
                failures.append(f"caller said {expected!r}, transcribed {got!r}")
            caller_turn = report.turns[i] if i < len(report.turns) else None
            latency = caller_turn.turn_latency_ms if caller_turn else None
            if latency is None:
                failures.append(f"no answer to {expected!r}")
            server = agent[i + 1].latency if i + 1 < len(agent) else None
            breakdown = (
                "  ".join(f"{k}={v:.0f}" for k, v in server.as_dict().items()) if server else ""
            )
            mark = "ok" if ok else "MISMATCH"
            print(f"  caller: {got!r} ({mark})", file=out)
            if latency is not None:
                print(f"          turn_latency_ms={latency:.0f} (caller side)  "
                      f"server: {breakdown}", file=out)
    if len(agent) != len(DEMO_SCRIPT) + 1:
        failures.append(f"expected {len(DEMO_SCRIPT) + 1} agent turns, got {len(agent)}")
    failures.extend(f"server error: {e['message']}" for e in record.errors)
    failures.extend(f"caller error: {e}" for e in report.errors)
    lateness = report.send_lateness
    print(f"\ncaller frame send lateness p50={lateness.p50_ms:.2f} ms "
          f"p99={lateness.p99_ms:.2f} ms over {lateness.frames} frames", file=out)
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures), file=out)
        return 1
    print("PASS: every utterance transcribed and answered", file=out)
    return 0
