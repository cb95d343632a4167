"""Tracing: off costs nothing visible; on, spans reach an OTLP/HTTP collector as the standard
OTEL_* variables say (a real local HTTP server decoding the protobuf the exporter sends)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from slotline.agent import tracing
from slotline.agent.call.calllog import CallRecord
from slotline.agent.config_models import TracingSettings
from slotline.providers import tracing as spans

ON = TracingSettings(enabled=True)


def test_off_unless_enabled_and_the_environment_agrees(caplog: pytest.LogCaptureFixture) -> None:
    assert tracing.exporters_wanted(TracingSettings(), {"OTEL_TRACES_EXPORTER": "otlp"}) == ()
    assert tracing.exporters_wanted(ON, {}) == ("otlp",)
    assert tracing.exporters_wanted(ON, {"OTEL_SDK_DISABLED": "TRUE"}) == ()
    assert tracing.exporters_wanted(ON, {"OTEL_TRACES_EXPORTER": "none"}) == ()
    assert tracing.exporters_wanted(ON, {"OTEL_TRACES_EXPORTER": "console, otlp"}) == (
        "console", "otlp")
    with caplog.at_level(logging.WARNING):
        assert tracing.exporters_wanted(ON, {"OTEL_TRACES_EXPORTER": "zipkin"}) == ()
    assert "zipkin not available" in caplog.text


async def test_off_every_hook_is_the_shared_no_op() -> None:
    assert spans.tracer() is None
    assert spans.span("turn") is spans.NO_SPAN
    assert spans.request("deepgram", "stt finalize") is spans.NO_SPAN
    assert tracing.call_started(CallRecord("CA1", "MZ1", "demo_booking", phone="+15005550006")) \
        is None
    assert tracing.turn_started("CallerSaid") is spans.NO_SPAN
    assert tracing.current(spans.NO_SPAN) is spans.NO_SPAN
    assert tracing.booking("demo", "first_available") is spans.NO_SPAN

    async def stream() -> AsyncIterator[bytes]:
        yield b"audio"

    generator = stream()
    assert spans.traced_stream("local", "tts synthesize", generator) is generator  # not wrapped
    await generator.aclose()


def test_a_server_with_tracing_off_never_imports_opentelemetry() -> None:
    """A whole server started and stopped in a fresh process: no OpenTelemetry module loaded,
    no tracer installed (the default settings, and enabled with OTEL_SDK_DISABLED)."""
    script = textwrap.dedent("""
        import asyncio, sys
        from slotline.agent.config import load_secrets, load_settings
        from slotline.agent.sim.demo import start_server
        from slotline.agent.server.wiring import build_deps
        from slotline.providers import tracing

        async def main(env):
            settings = load_settings(None, env)
            deps = await build_deps(settings, load_secrets({}))
            runner, _ = await start_server(settings, load_secrets({}), deps)
            installed = tracing.tracer() is not None
            await runner.cleanup()
            return installed

        folder = sys.argv[1]
        store = {"SLOTLINE_STORE__URL": f"sqlite:///{folder}/t.db"}
        installed = [asyncio.run(main(store)),
                     asyncio.run(main({**store, "SLOTLINE_TRACING__ENABLED": "true"}))]
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        print(installed, loaded)
    """)
    env = {**os.environ, "OTEL_SDK_DISABLED": "true"}
    out = subprocess.run([sys.executable, "-c", script, os.environ.get("TMPDIR", "/tmp")],
                         capture_output=True, text=True, env=env, timeout=120, check=True)
    assert out.stdout.strip() == "[False, False] []", out.stderr[-2000:]


class Collector:
    """An OTLP/HTTP trace collector on 127.0.0.1: keeps what it is sent, and the headers."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.api_keys: list[str] = []

    async def traces(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        self.requests.append(ExportTraceServiceRequest.FromString(await request.read()))
        self.api_keys.append(request.headers.get("x-api-key", ""))
        return web.Response(body=b"", content_type="application/x-protobuf")

    @property
    def spans(self) -> dict[str, tuple[str, bytes, bytes, dict[str, str]]]:
        """name → (service.name, span id, parent span id, string attributes)."""
        found = {}
        for sent in self.requests:
            for resource_spans in sent.resource_spans:
                service = {a.key: a.value.string_value
                           for a in resource_spans.resource.attributes}["service.name"]
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        attributes = {a.key: a.value.string_value for a in span.attributes}
                        found[span.name] = (service, span.span_id, span.parent_span_id,
                                            attributes)
        return found


@pytest.fixture
async def collector(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Collector]:
    found = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", found.traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=k123")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    try:
        yield found
    finally:
        await runner.cleanup()


async def _one_call_with_a_request() -> None:
    record = CallRecord("CA42", "MZ42", "demo_booking", phone="+15005550006")
    scope = tracing.call_started(record)
    assert scope is not None
    with spans.request("calcom", "calcom GET", {"http.request.method": "GET"}):
        await asyncio.sleep(0)
    tracing.call_ended(scope, record)


async def test_spans_reach_an_otlp_collector_named_slotline(collector: Collector) -> None:
    async with tracing.configured(ON, os.environ) as on:
        assert on and spans.tracer() is not None
        await _one_call_with_a_request()
    assert spans.tracer() is None  # uninstalled on the way out, after a flush
    found = collector.spans
    service, call_id, call_parent, call = found["call"]
    assert service == "slotline" and call_parent == b""
    assert call["slotline.call_sid"] == "CA42" and call["slotline.caller"] == "***06"
    _, _, parent, request = found["calcom GET"]
    assert parent == call_id and request["slotline.provider"] == "calcom"
    assert collector.api_keys and set(collector.api_keys) == {"k123"}  # OTEL_EXPORTER_OTLP_HEADERS


async def test_otel_service_name_names_the_service(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "slotline-eu")
    async with tracing.configured(ON, os.environ):
        await _one_call_with_a_request()
    assert {service for service, *_ in collector.spans.values()} == {"slotline-eu"}
