"""The Twilio emulator places outbound calls as Twilio does, against a real app on 127.0.0.1.

The app lives in this file (``App``): it records status and AMD callbacks and checks their
``X-Twilio-Signature``, serves TwiML at /voice, and takes the media streams at /media. The
person who answers is a ``Callee``: a hand-written one (``HandCallee``), ``agent.sim.caller``'s
simulated caller, or the emulator's own silent line. Timings are checked loosely (the machine
is shared); order, parameters and signatures exactly.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from slotline.agent.sim.caller import CallerReport, run_caller
from slotline.providers.emulators.twilio import CALL, TwilioEmulator, response_validator
from slotline.providers.emulators.twilio_outbound import Callee, Party, StreamTarget
from slotline.providers.telephony import twilio_media as tw
from slotline.providers.telephony.twilio_rest import TwilioRest
from slotline.providers.telephony.twilio_webhook import signature_valid, stream_twiml

FROM = "+15005550006"
TO = "+14155550123"
ALL_EVENTS = ("initiated", "ringing", "answered", "completed")


# ---- the app's side ---------------------------------------------------------------------------


@dataclass
class Hook:
    path: str
    params: dict[str, str]
    signed: bool
    at_s: float  # monotonic, on arrival


@dataclass
class StreamSeen:
    """One media stream as the app saw it."""

    signed: bool
    call_sid: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)  # every message but media, in order
    media_frames: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class App:
    """The application Twilio talks to; ``hang_up_on_echo``: close the stream once a mark it
    sent after ``start`` comes back (the app ending the call by closing the socket)."""

    def __init__(self, auth_token: str) -> None:
        self.auth_token = auth_token
        self.hooks: list[Hook] = []
        self.streams: list[StreamSeen] = []
        self.twiml = ""
        self.hang_up_on_echo = False
        self._runner: web.AppRunner | None = None
        self.origin = ""

    async def start(self) -> None:
        app = web.Application()
        for path in ("/status", "/amd", "/voice"):
            app.router.add_post(path, self._hook)
        app.router.add_get("/media", self._media)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.origin = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self.twiml = stream_twiml(self.ws_url, {"lead": "42", "campaign": "spring"})

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def ws_url(self) -> str:
        return self.origin.replace("http://", "ws://") + "/media"

    def hooks_at(self, path: str) -> list[Hook]:
        return [hook for hook in self.hooks if hook.path == path]

    def statuses(self) -> list[str]:
        return [hook.params["CallStatus"] for hook in self.hooks_at("/status")]

    async def _hook(self, request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        signed = signature_valid(
            self.auth_token, str(request.url), form, request.headers.get("X-Twilio-Signature")
        )
        self.hooks.append(Hook(request.path, form, signed, time.monotonic()))
        if request.path == "/voice":
            return web.Response(text=self.twiml, content_type="application/xml")
        return web.Response(status=204)

    async def _media(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        header = request.headers.get("X-Twilio-Signature")
        seen = StreamSeen(signature_valid(self.auth_token, self.ws_url, {}, header))
        self.streams.append(seen)
        async for message in ws:
            parsed = tw.parse_inbound(message.data)
            if isinstance(parsed, tw.Media):
                seen.media_frames += 1
                continue
            seen.events.append(type(parsed).__name__)
            if isinstance(parsed, tw.Start):
                seen.call_sid, seen.parameters = parsed.call_sid, dict(parsed.custom_parameters)
                seen.started.set()
                if self.hang_up_on_echo:
                    await ws.send_str(tw.encode_media(parsed.stream_sid, b"\x00" * 800))
                    await ws.send_str(tw.encode_mark(parsed.stream_sid, "greeting"))
            elif isinstance(parsed, tw.MarkEcho) and self.hang_up_on_echo:
                break
            elif isinstance(parsed, tw.Stop):
                break
        await ws.close()
        seen.closed.set()
        return ws


@pytest.fixture
async def app() -> AsyncIterator[App]:
    server = App(auth_token="outbound-test-token")
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


# ---- callees ----------------------------------------------------------------------------------


@dataclass
class HandCallee:
    """A person in a few lines: ``connected`` and ``start``, then waits; sends ``stop`` and
    closes when told (``hangup``) or after ``hang_up_after_s``; returns when the app closes."""

    session: aiohttp.ClientSession
    hang_up_after_s: float | None = None
    seen: list[StreamTarget] = field(default_factory=list)
    endings: list[str] = field(default_factory=list)  # per stream: told | self | app

    async def __call__(self, stream: StreamTarget) -> None:
        self.seen.append(stream)
        async with self.session.ws_connect(stream.url, headers=dict(stream.headers)) as ws:
            sid = f"MZ{uuid.uuid4().hex}"
            await ws.send_str(tw.encode_connected())
            await ws.send_str(
                tw.encode_start(
                    sid, stream.account_sid, stream.call_sid, custom_parameters=stream.parameters
                )
            )
            closing = asyncio.create_task(ws.receive())  # the app sends nothing but its close
            told = asyncio.create_task(stream.hangup.wait())
            done, _ = await asyncio.wait(
                {closing, told}, timeout=self.hang_up_after_s, return_when=asyncio.FIRST_COMPLETED
            )
            told.cancel()
            if closing in done:
                self.endings.append("app")
                return
            closing.cancel()
            await asyncio.gather(closing, told, return_exceptions=True)
            self.endings.append("told" if told in done else "self")
            await ws.send_str(tw.encode_stop(sid, 3, stream.account_sid, stream.call_sid))


def simulated_caller(session: aiohttp.ClientSession, reports: list[CallerReport]) -> Callee:
    """``agent.sim.caller.run_caller`` as the person: silent, hangs up when Twilio says so."""

    async def callee(stream: StreamTarget) -> None:
        reports.append(
            await run_caller(
                stream.url, (), custom_parameters=stream.parameters, headers=stream.headers,
                account_sid=stream.account_sid, call_sid=stream.call_sid, hangup=stream.hangup,
                session=session, reply_timeout_s=30, timeout_s=30,
            )
        )  # fmt: skip

    return callee


# ---- helpers ----------------------------------------------------------------------------------


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def emulator(app: App, parties: Mapping[str, Party], cps: float = 50.0) -> TwilioEmulator:
    return TwilioEmulator(auth_token=app.auth_token, cps=cps, parties=lambda to: parties[to])


def rest(emu: TwilioEmulator) -> TwilioRest:
    return TwilioRest(emu.account_sid, emu.auth_token, base_url=emu.base_url)


async def fetch(emu: TwilioEmulator, sid: str, form: dict[str, str] | None = None) -> Any:
    """GET (or POST ``form`` to) Calls/{sid}.json as any client would."""
    secret = base64.b64encode(f"{emu.account_sid}:{emu.auth_token}".encode()).decode()
    url = emu.base_url + CALL.replace("{AccountSid}", emu.account_sid).replace("{Sid}", sid)
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {secret}"}) as client:
        method = "GET" if form is None else "POST"
        async with client.request(method, url, data=form) as response:
            assert response.status == 200
            return await response.json()


def refused_url() -> str:
    """A loopback URL nobody listens on (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/status"


# ---- the tests --------------------------------------------------------------------------------


async def test_an_answered_call_posts_every_event_signed_then_streams_to_the_app(
    app: App, session: aiohttp.ClientSession
) -> None:
    callee = HandCallee(session, hang_up_after_s=0.3)
    async with emulator(app, {TO: Party(ring_ms=50, callee=callee)}) as emu, rest(emu) as client:
        sid = await client.create_call(
            TO, FROM, app.origin + "/voice", status_callback=app.origin + "/status?tenant=a",
            status_callback_events=ALL_EVENTS,
        )  # fmt: skip
        await eventually(lambda: "completed" in app.statuses())

    assert app.statuses() == ["initiated", "ringing", "in-progress", "completed"]
    hooks = app.hooks_at("/status")
    assert all(hook.signed for hook in hooks)  # over the URL with its query string
    assert [hook.params["SequenceNumber"] for hook in hooks] == ["0", "1", "2", "3"]
    for hook in hooks:
        assert {k: hook.params[k] for k in ("CallSid", "AccountSid", "From", "To")} == {
            "CallSid": sid, "AccountSid": emu.account_sid, "From": FROM, "To": TO,
        }  # fmt: skip
        assert hook.params["Direction"] == "outbound-api"
        assert hook.params["ApiVersion"] == "2010-04-01"
        assert hook.params["CallbackSource"] == "call-progress-events"
        assert parsedate_to_datetime(hook.params["Timestamp"]).tzinfo is not None
    final = hooks[-1].params
    assert (final["CallDuration"], final["Duration"]) == ("0", "1")  # 0.3 s, one billed minute
    assert "CallDuration" not in hooks[1].params

    [voice] = app.hooks_at("/voice")  # the TwiML request, signed, with the call's state
    assert voice.signed and voice.params["CallStatus"] == "in-progress"
    assert voice.params["CallSid"] == sid and "AnsweredBy" not in voice.params
    [stream] = app.streams
    assert stream.signed and stream.call_sid == sid
    assert stream.parameters == {"lead": "42", "campaign": "spring"}
    assert stream.events == ["Connected", "Start", "Stop"]
    [target] = callee.seen
    assert (target.index, target.call_sid, target.account_sid) == (0, sid, emu.account_sid)
    assert callee.endings == ["self"]
    call = emu.call(sid)
    assert call.status == "completed" and call.duration_s == 0
    assert call.dispatched_at_s is not None and call.answered_at_s is not None


@pytest.mark.parametrize(
    ("party", "timeout_s", "statuses"),
    [
        (Party("busy", ring_ms=50), None, ["initiated", "ringing", "busy"]),
        (Party("no-answer", ring_ms=100), None, ["initiated", "ringing", "no-answer"]),
        (Party("failed"), None, ["initiated", "failed"]),
        (Party("answer", ring_ms=60_000), 1, ["initiated", "ringing", "no-answer"]),  # Timeout
    ],
    ids=["busy", "no-answer", "failed", "rings-past-timeout"],
)
async def test_a_call_nobody_answers_ends_with_its_status_and_no_twiml(
    app: App, party: Party, timeout_s: int | None, statuses: list[str]
) -> None:
    async with emulator(app, {TO: party}) as emu, rest(emu) as client:
        sid = await client.create_call(
            TO, FROM, app.origin + "/voice", status_callback=app.origin + "/status",
            status_callback_events=ALL_EVENTS, timeout_s=timeout_s,
        )  # fmt: skip
        await eventually(lambda: len(app.statuses()) == len(statuses))
        body = await fetch(emu, sid)

    assert app.statuses() == statuses
    final = app.hooks_at("/status")[-1].params
    assert (final["CallDuration"], final["Duration"]) == ("0", "0")
    assert app.hooks_at("/voice") == [] and app.streams == []
    assert (body["status"], body["duration"], body["answered_by"]) == (statuses[-1], None, None)
    if timeout_s is not None:  # rang for the Timeout, not the party's minute
        call = emu.call(sid)
        assert call.ended_at_s is not None and call.dispatched_at_s is not None
        assert 0.9 <= call.ended_at_s - call.dispatched_at_s < 2.0


async def test_calls_leave_the_queue_in_order_at_the_accounts_cps(
    app: App, session: aiohttp.ClientSession
) -> None:
    party = Party(ring_ms=20, callee=HandCallee(session, hang_up_after_s=0.6))
    async with emulator(app, {TO: party}, cps=2) as emu, rest(emu) as client:
        sids = [await client.create_call(TO, FROM, app.origin + "/voice") for _ in range(5)]
        assert (await fetch(emu, sids[-1]))["status"] == "queued"  # waiting for its slot
        await eventually(lambda: all(emu.call(s).status == "completed" for s in sids), 8)

    dispatched = [at for sid in sids if (at := emu.call(sid).dispatched_at_s) is not None]
    assert len(dispatched) == len(sids)
    gaps = [b - a for a, b in zip(dispatched, dispatched[1:], strict=False)]
    assert all(0.5 - 0.005 <= gap < 0.5 + 0.1 for gap in gaps), gaps
    assert emu.call(sids[0]).queue_time_ms < 100 <= emu.call(sids[-1]).queue_time_ms
    # live calls overlap (each lasts longer than 1 / cps): the emulator's count matches
    spans = [(emu.call(s).dispatched_at_s or 0.0, emu.call(s).ended_at_s or 0.0) for s in sids]
    overlap = max(sum(start <= at < end for start, end in spans) for at, _ in spans)
    assert emu.max_concurrent == overlap >= 2


async def test_the_async_amd_verdict_is_posted_after_the_answer_and_fetch_shows_it(
    app: App, session: aiohttp.ClientSession
) -> None:
    callee = HandCallee(session, hang_up_after_s=1.1)
    party = Party(answered_by="machine_end_beep", amd_after_ms=300, ring_ms=20, callee=callee)
    async with emulator(app, {TO: party}) as emu, rest(emu) as client:
        sid = await client.create_call(
            TO, FROM, app.origin + "/voice", machine_detection="DetectMessageEnd",
            async_amd=True, async_amd_status_callback=app.origin + "/amd",
            status_callback=app.origin + "/status",
        )  # fmt: skip
        await eventually(lambda: bool(app.hooks_at("/amd")))
        live = await fetch(emu, sid)
        await eventually(lambda: "completed" in app.statuses())
        ended = await fetch(emu, sid)

    [amd] = app.hooks_at("/amd")
    assert amd.signed and amd.params == {
        "AccountSid": emu.account_sid, "AnsweredBy": "machine_end_beep", "CallSid": sid,
        "MachineDetectionDuration": "300",
    }  # fmt: skip
    answered_at_s = emu.call(sid).answered_at_s
    assert answered_at_s is not None and 0.3 <= amd.at_s - answered_at_s < 0.6
    assert "AnsweredBy" not in app.hooks_at("/voice")[0].params  # async: the TwiML did not wait
    assert (live["status"], live["answered_by"], live["duration"]) == (
        "in-progress", "machine_end_beep", None,
    )  # fmt: skip
    assert (ended["status"], ended["answered_by"], ended["duration"]) == (
        "completed", "machine_end_beep", "1",
    )  # fmt: skip
    assert list(response_validator("api.v2010.account.call").iter_errors(ended)) == []
    assert app.statuses() == ["completed"]  # Twilio's default: the final event only


async def test_no_amd_verdict_for_a_call_that_ended_first(
    app: App, session: aiohttp.ClientSession
) -> None:
    party = Party(amd_after_ms=400, ring_ms=20, callee=HandCallee(session, hang_up_after_s=0.1))
    async with emulator(app, {TO: party}) as emu, rest(emu) as client:
        sid = await client.create_call(
            TO, FROM, app.origin + "/voice", machine_detection="Enable", async_amd=True,
            async_amd_status_callback=app.origin + "/amd", status_callback=app.origin + "/status",
        )  # fmt: skip
        await eventually(lambda: "completed" in app.statuses())
        await asyncio.sleep(0.5)

    assert app.hooks_at("/amd") == [] and emu.call(sid).answered_by is None


async def test_synchronous_amd_holds_the_twiml_request_until_the_verdict(
    app: App, session: aiohttp.ClientSession
) -> None:
    callee = HandCallee(session, hang_up_after_s=0.1)
    party = Party(answered_by="human", amd_after_ms=250, ring_ms=20, callee=callee)
    async with emulator(app, {TO: party}) as emu, rest(emu) as client:
        sid = await client.create_call(TO, FROM, app.origin + "/voice", machine_detection="Enable",
                                       status_callback=app.origin + "/status")  # fmt: skip
        await eventually(lambda: "completed" in app.statuses())

    [voice] = app.hooks_at("/voice")
    answered_at_s = emu.call(sid).answered_at_s
    assert voice.params["AnsweredBy"] == "human" and voice.signed
    assert answered_at_s is not None and voice.at_s - answered_at_s >= 0.25
    assert app.hooks_at("/amd") == []  # no AsyncAmd: nothing posted


async def test_the_app_hanging_up_over_rest_stops_the_stream_and_completes_the_call(
    app: App, session: aiohttp.ClientSession
) -> None:
    reports: list[CallerReport] = []
    party = Party(ring_ms=20, callee=simulated_caller(session, reports))
    async with emulator(app, {TO: party}) as emu, rest(emu) as client:
        sid = await client.create_call(TO, FROM, app.origin + "/voice",
                                       status_callback=app.origin + "/status")  # fmt: skip
        await eventually(lambda: bool(app.streams) and app.streams[0].started.is_set())
        await asyncio.sleep(1.05)  # a call of just over a second
        await client.hangup(sid)
        await eventually(lambda: "completed" in app.statuses())
        body = await fetch(emu, sid)

    [stream] = app.streams
    assert stream.events[-1] == "Stop" and stream.media_frames > 20
    [report] = reports
    assert report.hung_up_early and report.closed_by == "caller" and report.call_sid == sid
    [final] = app.hooks_at("/status")
    assert (final.params["CallStatus"], final.params["CallDuration"]) == ("completed", "1")
    assert (body["status"], body["duration"]) == ("completed", "1")


async def test_a_redirect_runs_a_second_stream_without_completing_the_call(
    app: App, session: aiohttp.ClientSession
) -> None:
    callee = HandCallee(session)  # hangs up only when told
    async with emulator(app, {TO: Party(ring_ms=20, callee=callee)}) as emu, rest(emu) as client:
        sid = await client.create_call(
            TO, FROM, app.origin + "/voice", status_callback=app.origin + "/status",
            status_callback_events=ALL_EVENTS,
        )  # fmt: skip
        await eventually(lambda: bool(app.streams) and app.streams[0].started.is_set())
        await client.redirect(sid, stream_twiml(app.ws_url, {"leg": "second"}))
        await eventually(lambda: len(app.streams) == 2 and app.streams[1].started.is_set())
        statuses_between = app.statuses()
        await client.hangup(sid)
        await eventually(lambda: "completed" in app.statuses())

    assert statuses_between == ["initiated", "ringing", "in-progress"]
    assert app.statuses() == ["initiated", "ringing", "in-progress", "completed"]
    first, second = app.streams
    assert first.events == ["Connected", "Start", "Stop"] and first.closed.is_set()
    assert second.parameters == {"leg": "second"} and second.events[-1] == "Stop"
    assert [t.index for t in callee.seen] == [0, 1] and callee.endings == ["told", "told"]
    assert dict(callee.seen[1].parameters) == {"leg": "second"}
    call = emu.call(sid)
    assert call.status == "completed" and len(call.redirects) == 1 and len(call.streams) == 2


async def test_a_callback_url_that_refuses_connections_does_not_break_the_call(
    app: App, session: aiohttp.ClientSession
) -> None:
    callee = HandCallee(session, hang_up_after_s=0.2)
    async with emulator(app, {TO: Party(ring_ms=20, callee=callee)}) as emu, rest(emu) as client:
        sid = await client.create_call(
            TO, FROM, app.origin + "/voice", status_callback=refused_url(),
            status_callback_events=ALL_EVENTS,
        )  # fmt: skip
        await eventually(lambda: len(emu.call(sid).webhooks) == 5)  # TwiML + 4 callbacks
        body = await fetch(emu, sid)

    call = emu.call(sid)
    assert body["status"] == "completed" and call.status == "completed"
    assert callee.endings == ["self"] and len(app.streams) == 1
    failed = [attempt for attempt in call.webhooks if attempt.kind == "status"]
    assert len(failed) == 4 and all(a.status is None and a.error for a in failed)


async def test_the_default_party_is_a_silent_line_that_echoes_marks_until_the_app_closes(
    app: App,
) -> None:
    app.hang_up_on_echo = True  # the app greets, waits for its mark, then closes the stream
    async with TwilioEmulator(auth_token=app.auth_token) as emu, rest(emu) as client:
        sid = await client.create_call(TO, FROM, app.origin + "/voice",
                                       status_callback=app.origin + "/status")  # fmt: skip
        await eventually(lambda: "completed" in app.statuses())

    [stream] = app.streams
    assert stream.signed and stream.parameters == {"lead": "42", "campaign": "spring"}
    assert stream.events == ["Connected", "Start", "MarkEcho"]  # 100 ms of audio, then the echo
    assert emu.call(sid).status == "completed" and emu.call(sid).errors == []


async def test_twiml_the_emulator_does_not_play_completes_the_call_and_is_kept(
    app: App,
) -> None:
    app.twiml = "<Response><Say>Hello</Say><Pause/></Response>"
    async with emulator(app, {TO: Party(ring_ms=20)}) as emu, rest(emu) as client:
        sid = await client.create_call(TO, FROM, app.origin + "/voice",
                                       status_callback=app.origin + "/status")  # fmt: skip
        await eventually(lambda: "completed" in app.statuses())

    call = emu.call(sid)
    assert call.unemulated == [app.twiml] and app.streams == []


async def test_canceling_a_queued_call_takes_no_slot_and_reports_canceled(app: App) -> None:
    async with emulator(app, {TO: Party("busy", ring_ms=20)}, cps=1) as emu, rest(emu) as client:
        first = await client.create_call(TO, FROM, app.origin + "/voice")
        second = await client.create_call(TO, FROM, app.origin + "/voice",
                                          status_callback=app.origin + "/status")  # fmt: skip
        canceled = await fetch(emu, second, {"Status": "canceled"})
        await eventually(lambda: app.statuses() == ["canceled"])
        await eventually(lambda: emu.call(first).status == "busy")

    assert canceled["status"] == "canceled" and emu.call(second).dispatched_at_s is None
    assert app.hooks_at("/status")[0].params["CallDuration"] == "0"


async def test_closing_the_emulator_ends_live_calls_promptly(
    app: App, session: aiohttp.ClientSession
) -> None:
    callee = HandCallee(session)  # would wait forever
    emu = emulator(app, {TO: Party(ring_ms=20, callee=callee)})
    async with emu, rest(emu) as client:
        await client.create_call(TO, FROM, app.origin + "/voice")
        await eventually(lambda: bool(app.streams) and app.streams[0].started.is_set())
        closing_at_s = time.monotonic()
    assert time.monotonic() - closing_at_s < 2.0
    await eventually(lambda: app.streams[0].closed.is_set())
