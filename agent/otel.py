"""The OpenTelemetry SDK behind ``providers.tracing``: imported only once tracing is on (it needs
the ``otel`` extra: ``pip install 'slotline[otel]'``), so a server without it pays nothing.

One ``TracerProvider`` per server process, kept by this module rather than set as the global
provider: a process may run several servers (tests, the demo) and the OpenTelemetry API lets
the global one be set only once. Exporters read the standard ``OTEL_EXPORTER_OTLP_*``
variables themselves (endpoint, headers, timeout, compression, certificates); the resource's
``service.name`` is ``OTEL_SERVICE_NAME`` (or ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``),
else ``slotline``. Spans are exported by a batch processor's own thread, off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import Token

# The extra may be missing when mypy runs: then these are Any, and this module is never imported.
from opentelemetry import context as otel_context  # type: ignore[import-not-found, unused-ignore]
from opentelemetry import trace  # type: ignore[import-not-found, unused-ignore]
from opentelemetry.sdk.resources import (  # type: ignore[import-not-found, unused-ignore]
    SERVICE_NAME,
    SERVICE_VERSION,
    Resource,
)
from opentelemetry.sdk.trace import TracerProvider  # type: ignore[import-not-found, unused-ignore]
from opentelemetry.sdk.trace.export import (  # type: ignore[import-not-found, unused-ignore]
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

import slotline
from slotline.providers import tracing as spans

SERVICE = "slotline"


class OtelTracer:
    """``providers.tracing.Tracer`` on an OpenTelemetry tracer."""

    def __init__(self, provider: TracerProvider) -> None:
        self._tracer: trace.Tracer = provider.get_tracer("slotline", slotline.__version__)
        self._root = otel_context.Context()

    def start(
        self,
        name: str,
        attributes: spans.Attributes,
        *,
        root: bool = False,
        start_ns: int | None = None,
    ) -> spans.Span:
        span: spans.Span = self._tracer.start_span(
            name, context=self._root if root else None, attributes=dict(attributes),
            start_time=start_ns, record_exception=False, set_status_on_exception=False,
        )
        return span

    def end(self, span: spans.Span, error: BaseException | None = None) -> None:
        assert isinstance(span, trace.Span)
        if error is not None:  # the type only: a message may quote personal data
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
        span.end()

    def attach(self, span: spans.Span) -> object:
        assert isinstance(span, trace.Span)
        token: object = otel_context.attach(trace.set_span_in_context(span))
        return token

    def detach(self, token: object) -> None:
        assert isinstance(token, Token)
        otel_context.detach(token)


def resource() -> Resource:
    """The standard resource; its service name from the environment, else ``slotline``."""
    found: Resource = Resource.create({SERVICE_VERSION: slotline.__version__})
    name = str(found.attributes.get(SERVICE_NAME, ""))
    if not name or name.startswith("unknown_service"):
        found = found.merge(Resource({SERVICE_NAME: SERVICE}))
    return found


def exporter_named(name: str) -> SpanExporter:
    """``OTEL_TRACES_EXPORTER``'s names this build ships: ``otlp`` (HTTP/protobuf) and
    ``console``."""
    if name == "console":
        console: SpanExporter = ConsoleSpanExporter()
        return console
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found, unused-ignore]  # noqa: E501
        OTLPSpanExporter,
    )

    otlp: SpanExporter = OTLPSpanExporter()
    return otlp


@asynccontextmanager
async def installed(
    exporters: Sequence[SpanExporter], *, batch: bool = True
) -> AsyncIterator[TracerProvider]:
    """A provider exporting to ``exporters`` is this process's tracer while the block runs;
    on the way out it flushes and shuts down (in a thread: an exporter may wait on its
    collector). ``batch=False`` exports as each span ends (tests)."""
    provider = TracerProvider(resource=resource())
    for exporter in exporters:
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
    previous = spans.install(OtelTracer(provider))
    try:
        yield provider
    finally:
        spans.install(previous)
        await asyncio.to_thread(provider.shutdown)
