"""``slotline demo``: a simulated caller phones a local Slotline and books by voice.

Everything a real call does happens over real sockets on loopback: the caller asks
``POST /twilio/voice`` for TwiML like Twilio does, connects to the ``<Stream>`` URL it names with
the ``<Parameter>``s it lists, streams recorded speech in real time and plays the agent's audio
back. The default flow (``demo_booking``) books on the local calendar. The demo passes (exit 0)
only if every utterance was transcribed as spoken and the booking is in the store.
"""

from __future__ import annotations

import logging
import secrets as _secrets
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO

import aiohttp
from aiohttp import web

from slotline.agent.call.calllog import CallRecord
from slotline.agent.call.session import SessionDeps
from slotline.agent.config import Secrets, Settings, StoreSettings
from slotline.agent.server.app import build_app
from slotline.agent.server.wiring import build_deps
from slotline.agent.sim.caller import CallerReport, Speak, run_caller
from slotline.agent.store import BookingRecord


@dataclass(frozen=True, slots=True)
class Utterance:
    stem: str  # file in agent/assets/caller/
    text: str  # what the caller says (and the transcript we expect)


DEMO_SCRIPT = (
    Utterance("name_john", "my name is john smith"),
    Utterance("no", "no thanks"),  # no e-mail address (asked before booking)
    Utterance("day_tuesday", "next tuesday"),
    Utterance("time_3pm", "three p m"),
    Utterance("yes", "yes"),
)


def caller_wav(stem: str) -> Speak:
    path = resources.files("slotline.agent.assets.caller").joinpath(f"{stem}.wav")
    with resources.as_file(path) as file:
        return Speak.from_wav(file)


async def fetch_stream(
    http: aiohttp.ClientSession, base_url: str, *, call_sid: str | None = None
) -> tuple[str, dict[str, str]]:
    """Do what Twilio does on an inbound call: POST the voice webhook, read ``<Stream>``.
    ``call_sid``: the call's sid, when its stream will announce it (a server with a Twilio auth
    token admits the stream only for the call its TwiML's token was issued to)."""
    form = {
        "CallSid": call_sid or "CA" + _secrets.token_hex(16),
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


def on_loopback(settings: Settings, secrets: Secrets, scratch: str) -> tuple[Settings, Secrets]:
    """``settings`` and ``secrets`` for a server the simulated caller phones on loopback: the
    default store becomes a fresh database in the folder ``scratch``, so every run books the
    same time afresh; and as the caller neither signs its requests nor dials a public URL, the
    Twilio auth token and the public URL are left out."""
    if settings.store.url == StoreSettings().url:
        settings = settings.model_copy(
            update={"store": StoreSettings(url=f"sqlite:///{scratch}/demo.db")}
        )
    secrets = secrets.model_copy(update={"twilio_auth_token": None})
    server = settings.server.model_copy(update={"public_url": ""})
    return settings.model_copy(update={"server": server}), secrets


async def start_server(
    settings: Settings, secrets: Secrets, deps: SessionDeps
) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(build_app(settings, secrets, deps), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    if deps.dialer is not None:
        deps.dialer.serving_at(f"http://{host}:{port}")
    return runner, f"http://{host}:{port}"


async def run_demo(
    settings: Settings,
    secrets: Secrets,
    out: TextIO = sys.stdout,
    *,
    config_path: Path | None = None,
) -> int:
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # the demo prints its own
    with tempfile.TemporaryDirectory(prefix="slotline-demo-") as scratch:
        settings, secrets = on_loopback(settings, secrets, scratch)
        deps = await build_deps(settings, secrets, config_path=config_path)
        runner, base_url = await start_server(settings, secrets, deps)
        try:
            async with aiohttp.ClientSession() as http:
                url, parameters = await fetch_stream(http, base_url)
                print(f"server  {base_url}  stream {url}  parameters {parameters}", file=out)
                script = [caller_wav(u.stem) for u in DEMO_SCRIPT]
                report = await run_caller(url, script, custom_parameters=parameters,
                                          session=http)
            record = deps.call_log.get(report.call_sid)
            assert deps.store is not None
            booked = await deps.store.bookings.for_call(report.call_sid)
        finally:
            await runner.cleanup()
    if record is None:
        print("FAIL: the server has no record of the call", file=out)
        return 1
    return _print_and_judge(report, record, booked, out)


def _print_and_judge(
    report: CallerReport, record: CallRecord, booked: list[BookingRecord], out: TextIO
) -> int:
    failures: list[str] = []
    print(f"\ncall {record.call_sid}: {record.status}, closed by {report.closed_by}, "
          f"path ends at {record.node!r}", file=out)
    for turn in record.turns:
        if turn.role == "agent":
            print(f"  agent : {turn.text}", file=out)
            if turn.latency is not None:
                parts = "  ".join(f"{k}={v:.0f}" for k, v in turn.latency.as_dict().items())
                print(f"          server: {parts}", file=out)
        else:
            print(f"  caller: {turn.text!r}", file=out)
    said = [t.text for t in record.turns if t.role == "caller"]
    expected = [u.text for u in DEMO_SCRIPT]
    for i, text in enumerate(expected):
        got = said[i] if i < len(said) else "(nothing)"
        if got != text:
            failures.append(f"caller said {text!r}, transcribed {got!r}")
    latencies = [t.turn_latency_ms for t in report.turns]
    print("\nturn_latency_ms (caller side): "
          + ", ".join("-" if x is None else f"{x:.0f}" for x in latencies), file=out)
    if any(x is None for x in latencies):
        failures.append("a caller turn got no answer")
    for booking in booked:
        print(f"booking {booking.id}: {booking.start.isoformat()} - {booking.end.isoformat()} "
              f"{booking.status} on calendar {booking.calendar!r} for {booking.attendee.name!r}",
              file=out)
    if [b.status for b in booked] != ["confirmed"]:
        failures.append(f"expected one confirmed booking in the store, found {len(booked)}")
    failures.extend(f"server error: {e['message']}" for e in record.errors)
    failures.extend(f"caller error: {e}" for e in report.errors)
    lateness = report.send_lateness
    print(f"caller frame send lateness p50={lateness.p50_ms:.2f} ms "
          f"p99={lateness.p99_ms:.2f} ms over {lateness.frames} frames", file=out)
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures), file=out)
        return 1
    print("PASS: every utterance transcribed and answered; the booking is in the store", file=out)
    return 0
