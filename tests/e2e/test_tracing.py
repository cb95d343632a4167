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
from slotline.agent.caller import run_caller
from slotline.agent.demo import DEMO_SCRIPT, caller_wav, fetch_stream
from tests.e2e.conftest import running_server

CALLER = "+15005550006"  # the number the demo's TwiML passes as user_phone
LATENCY = ("slotline.endpoint_ms", "slotline.stt_final_ms", "slotline.llm_ttft_ms",
           "slotline.tts_ttfb_ms", "slotline.turn_latency_ms", "slotline.server_overhead_ms")


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

    # no personal data: not the number (in any shape), not the caller's name, no e-mail
    digits = CALLER.lstrip("+")
    for span in spans:
        for key, value in (span.attributes or {}).items():
            text = str(value)
            assert digits[-7:] not in re.sub(r"\D", "", text), (span.name, key)
            assert "John" not in text and "@" not in text, (span.name, key)
