"""Tracing end to end: one booking call by voice, its spans exported in memory, checked as a
tree (the in-memory exporter is the SDK's own; everything else is the real server)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import aiohttp
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from slotline.agent import otel
from slotline.agent.sim.caller import run_caller
from slotline.agent.sim.demo import DEMO_SCRIPT, caller_wav, fetch_stream
from slotline.providers.emulators.calcom import CalcomEmulator
from slotline.providers.emulators.calcom_rules import EventType
from slotline.providers.emulators.deepgram import DeepgramEmulator
from slotline.providers.emulators.elevenlabs import ElevenLabsEmulator
from slotline.providers.emulators.openai import OpenAIEmulator
from slotline.providers.emulators.twilio import TwilioEmulator
from tests.e2e.conftest import running_server
from tests.e2e.providers import booking_env
from tests.e2e.test_confirmations import BUSINESS_NUMBER, phone_in

CALLER = "+15005550006"  # the number the demo's TwiML passes as user_phone
LATENCY = ("slotline.endpoint_ms", "slotline.stt_final_ms", "slotline.llm_ttft_ms",
           "slotline.tts_ttfb_ms", "slotline.turn_latency_ms", "slotline.server_overhead_ms")


def _attributes(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def _assert_no_personal_data(spans: Sequence[ReadableSpan], *, email: str = "") -> None:
    """Not the caller's number (in any shape), not their name, no e-mail address."""
    digits = CALLER.lstrip("+")
    for span in spans:
        for key, value in _attributes(span).items():
            text = str(value)
            assert digits[-7:] not in re.sub(r"\D", "", text), (span.name, key)
            assert "John" not in text and "Smith" not in text, (span.name, key)
            assert "@" not in text and (not email or email not in text), (span.name, key)


def _children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def _parent(spans: Sequence[ReadableSpan], child: ReadableSpan) -> ReadableSpan:
    assert child.parent is not None
    [found] = [s for s in spans if s.context is not None
               and s.context.span_id == child.parent.span_id]
    return found


async def test_a_booking_call_is_one_span_tree_without_personal_data() -> None:
    exporter = InMemorySpanExporter()
    async with otel.installed([exporter], batch=False):  # exported as each span ends
        runner, server = await running_server()
        try:
            async with aiohttp.ClientSession() as http:
                url, params = await fetch_stream(http, server.url)
                assert params["user_phone"] == CALLER
                script = [caller_wav(u.stem) for u in DEMO_SCRIPT]
                report = await run_caller(url, script, custom_parameters=params, session=http)
        finally:
            await runner.cleanup()
    assert report.errors == ()
    spans = exporter.get_finished_spans()

    # one root: the call, and every other span in its trace, under a parent that was exported
    [call] = [s for s in spans if s.parent is None]
    assert call.name == "call" and call.context is not None
    assert {s.context.trace_id for s in spans if s.context is not None} == {call.context.trace_id}
    assert all(_parent(spans, s) for s in spans if s is not call)
    attributes = dict(call.attributes or {})
    assert attributes["slotline.call_sid"] == report.call_sid
    assert attributes["slotline.direction"] == "inbound"
    assert attributes["slotline.flow"] == "demo_booking"
    assert attributes["slotline.caller"] == "***06"  # masked
    assert attributes["slotline.status"] == "completed"

    # turns: the greeting, then one per caller utterance, each a child of the call, the caller's
    # with the call log's latency vocabulary and their final transcript's request below them
    turns = [s for s in _children(spans, call) if s.name == "turn"]
    kinds = Counter(str((s.attributes or {})["slotline.turn.event"]) for s in turns)
    assert kinds["CallStarted"] == 1 and kinds["CallerSaid"] == len(DEMO_SCRIPT)
    record = server.deps.call_log.get(report.call_sid)
    assert record is not None
    logged = [t.latency for t in record.turns if t.role == "agent" and t.latency is not None]
    heard = sorted((s for s in turns if (s.attributes or {})["slotline.turn.event"]
                    == "CallerSaid"), key=lambda s: s.start_time or 0)
    assert len(logged) == len(heard)
    for turn, latency in zip(heard, logged, strict=True):
        values = dict(turn.attributes or {})
        assert all(name in values for name in LATENCY), values
        assert values["slotline.turn_latency_ms"] == round(latency.turn_latency_ms, 1)
        assert values["slotline.endpoint_ms"] == round(latency.endpoint_ms, 1)
        assert float(values["slotline.turn_latency_ms"]) >= float(values["slotline.endpoint_ms"])
        assert [s.name for s in _children(spans, turn)].count("stt finalize") == 1
        # the turn began at the caller's last voiced frame, before their transcript was asked
        [stt] = [s for s in _children(spans, turn) if s.name == "stt finalize"]
        assert (turn.start_time or 0) < (stt.start_time or 0)
        assert (stt.attributes or {})["slotline.provider"] == "local"

    # the booking: availability and the booking, each under a turn, their calendars below them
    [availability, *_] = [s for s in spans if s.name == "availability"]
    assert _parent(spans, availability).name == "turn"
    busy = [s for s in _children(spans, availability) if s.name == "calendar busy"]
    assert busy and all((s.attributes or {})["slotline.calendar"] == "main" for s in busy)
    [booking] = [s for s in spans if s.name == "booking"]
    assert _parent(spans, booking).name == "turn"
    assert (booking.attributes or {})["slotline.booking.outcome"] == "booked"
    [create] = [s for s in _children(spans, booking) if s.name == "calendar create"]
    assert (create.attributes or {})["slotline.provider"] == "local"

    # speech synthesis: per sentence, under a turn (a reply) or the call (the cache's warm-up)
    synthesized = [s for s in spans if s.name == "tts synthesize"]
    assert synthesized
    assert {_parent(spans, s).name for s in synthesized} <= {"turn", "call"}

    _assert_no_personal_data(spans)


async def test_cloud_vendor_requests_nest_under_their_turns() -> None:
    """Deepgram, ElevenLabs, an OpenAI model, Cal.com and Twilio's REST API, each on its
    emulator: every request a span, under the turn (or the call) it served; the caller gives
    an e-mail address, which no span carries."""
    email_said = [u.stem if u.stem != "no" else "email_john" for u in DEMO_SCRIPT]
    exporter = InMemorySpanExporter()
    event = EventType(4201, length_min=30, timezone="America/New_York", slug="demo")
    async with (otel.installed([exporter], batch=False),
                DeepgramEmulator(api_key="dg-key") as deepgram,
                ElevenLabsEmulator(api_key="xi-key") as eleven,
                OpenAIEmulator(api_key="sk-test") as llm,
                CalcomEmulator("cal_key", [event]) as calcom,
                TwilioEmulator() as twilio):
        env = {
            "SLOTLINE_STT__PROVIDER": "deepgram", "SLOTLINE_STT__BASE_URL": deepgram.url,
            "SLOTLINE_TTS__PROVIDER": "elevenlabs", "SLOTLINE_TTS__BASE_URL": eleven.base_url,
            "SLOTLINE_TTS__VOICE_ID": "voice-ava",
            "SLOTLINE_LLM__PROVIDER": "openai", "SLOTLINE_LLM__BASE_URL": llm.base_url,
            "SLOTLINE_LLM__MODEL": "gpt-4o-mini",
            "SLOTLINE_CALENDARS__MAIN__PROVIDER": "calcom",
            "SLOTLINE_CALENDARS__MAIN__BASE_URL": calcom.base_url,
            "SLOTLINE_CALENDARS__MAIN__EVENT_TYPE_ID": "4201",
            "SLOTLINE_TWILIO__BASE_URL": twilio.base_url,
            "SLOTLINE_TWILIO__FROM_NUMBER": BUSINESS_NUMBER,
            **booking_env(("main",)),
        }
        secrets = {"DEEPGRAM_API_KEY": "dg-key", "ELEVENLABS_API_KEY": "xi-key",
                   "OPENAI_API_KEY": "sk-test", "CALCOM_API_KEY": "cal_key",
                   "TWILIO_ACCOUNT_SID": twilio.account_sid,
                   "TWILIO_AUTH_TOKEN": twilio.auth_token}
        runner, server = await running_server(env, secrets)
        try:
            report = await phone_in(server, twilio, email_said)
        finally:
            await runner.cleanup()
    assert report.errors == () and report.hung_up_early  # ended through Twilio's REST API
    record = server.deps.call_log.get(report.call_sid)
    assert record is not None and record.errors == [] and len(record.bookings) == 1
    email = record.variables["user_email"]
    assert "@" in email
    finished = exporter.get_finished_spans()
    [call] = [s for s in finished if s.name == "call"]
    assert call.parent is None and call.context is not None
    spans = [s for s in finished if s.context is not None
             and s.context.trace_id == call.context.trace_id]
    assert all(_parent(spans, s) for s in spans if s is not call)  # one whole tree

    def named(name: str) -> list[ReadableSpan]:
        return [s for s in spans if s.name == name]

    def parents(name: str) -> set[str]:
        return {_parent(spans, s).name for s in named(name)}

    # the recogniser: its connection under the call, each turn's final transcript under it
    assert named("stt stream") and parents("stt stream") == {"call"}
    finalized = named("stt finalize")
    assert {_attributes(s)["slotline.provider"] for s in finalized} == {"deepgram"}
    assert parents("stt finalize") == {"turn"} and len(finalized) >= len(DEMO_SCRIPT)
    # the voice: ElevenLabs, under the turns (and the call: the prompt cache's warm-up)
    voiced = named("tts synthesize")
    assert {_attributes(s)["slotline.provider"] for s in voiced} == {"elevenlabs"}
    assert "turn" in parents("tts synthesize") <= {"turn", "call"}
    assert all("slotline.first_item_ms" in _attributes(s) for s in voiced)
    # model requests (made early, on interim words) are the call's or a turn's
    assert parents("llm chat") <= {"turn", "call"}
    # Cal.com: its slots under the availability look-up, the booking's write under the
    # booking; each HTTP attempt a span below the calendar request it served
    assert parents("calendar free_slots") == {"availability"} and parents("availability") == {
        "turn"}
    [booking] = named("booking")
    assert _attributes(booking)["slotline.booking.outcome"] == "booked"
    [create] = _children(spans, booking)
    assert create.name == "calendar create" and _attributes(create)["slotline.provider"] == "calcom"
    http = named("calcom GET") + named("calcom POST")
    assert {_parent(spans, s).name for s in http} == {"calendar free_slots", "calendar create"}
    assert {_attributes(s)["http.response.status_code"] for s in http} <= {200, 201}
    # the hang-up through Twilio's REST API, under the last turn (the goodbye's reply)
    [hangup] = named("twilio POST")
    assert _parent(spans, hangup).name == "turn"
    assert _attributes(hangup)["http.response.status_code"] == 200
    _assert_no_personal_data(spans, email=email)
