"""Tracing with OpenTelemetry (the optional ``otel`` extra): whether it is on, and the spans of
a call.

On when ``tracing.enabled`` is true, the extra is installed, and the standard environment does
not turn it off (``OTEL_SDK_DISABLED=true``, ``OTEL_TRACES_EXPORTER=none``). Exporters are the
ones ``OTEL_TRACES_EXPORTER`` names (default ``otlp``, over HTTP/protobuf; ``console`` too),
configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables (``agent.otel``). Off, nothing of
OpenTelemetry is imported and every hook is a global read returning a shared no-op
(``providers.tracing``).

The tree of one call::

    call                      root; call_sid, direction, flow, the caller's number masked
    ├── stt stream            a recogniser connection (cloud recognisers)
    ├── tts synthesize        the prompt cache's warm-up
    └── turn                  one per reply; a caller's turn starts at their last voiced frame
        ├── stt finalize      that turn's final transcript
        ├── availability      the pooled calendars asked at once
        │   └── calendar busy     (a REST calendar's HTTP requests below it)
        ├── booking           outcome: booked | slot_taken | failed | incomplete
        │   └── calendar create
        ├── llm chat          a model request
        └── tts synthesize    each sentence not in the prompt cache

Turn spans carry the call log's latency vocabulary (``slotline.endpoint_ms``,
``slotline.stt_final_ms``, ``slotline.llm_ttft_ms``, ``slotline.tts_ttfb_ms``,
``slotline.turn_latency_ms``, ``slotline.server_overhead_ms``), set as the reply ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from slotline.agent.call.calllog import CallRecord, Latency
from slotline.agent.config_models import TracingSettings
from slotline.agent.logs import mask
from slotline.providers import tracing as spans
from slotline.providers.errors import BookingIncomplete

log = logging.getLogger(__name__)

EXPORTERS = ("otlp", "console")  # the OTEL_TRACES_EXPORTER names this build ships
OUTCOME = "slotline.booking.outcome"


def exporters_wanted(settings: TracingSettings, environ: Mapping[str, str]) -> tuple[str, ...]:
    """The exporters to send spans to; none: tracing is off."""
    if not settings.enabled:
        return ()
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        log.info("tracing.enabled, but OTEL_SDK_DISABLED=true: tracing is off")
        return ()
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    names = tuple(dict.fromkeys(name.strip() for name in named.split(",") if name.strip()))
    if "none" in names:
        return ()
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        log.warning("OTEL_TRACES_EXPORTER=%s: %s not available (this build has %s)", named,
                    ", ".join(unknown), ", ".join(EXPORTERS))
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    if "otlp" in names and protocol != "http/protobuf":
        log.warning("OTLP protocol %s is not supported: spans go over http/protobuf", protocol)
    return tuple(name for name in names if name in EXPORTERS)


@asynccontextmanager
async def configured(settings: TracingSettings, environ: Mapping[str, str]) -> AsyncIterator[bool]:
    """Tracing for the life of the block when settings and environment want it (True then)."""
    names = exporters_wanted(settings, environ)
    if not names:
        yield False
        return
    try:
        from slotline.agent import otel
    except ImportError:
        log.warning("tracing.enabled, but OpenTelemetry is not installed "
                    "(pip install 'slotline[otel]'): tracing is off")
        yield False
        return
    async with otel.installed([otel.exporter_named(name) for name in names]):
        log.info("tracing on: spans exported to %s", ", ".join(names))
        yield True


# ---- the call --------------------------------------------------------------------------------


def call_started(record: CallRecord) -> spans.Scope | None:
    """The call's root span, made current for the rest of this task and the tasks it starts;
    ``call_ended`` ends it (in the same task)."""
    tracer = spans.tracer()
    if tracer is None:
        return None
    attributes = {"slotline.call_sid": record.call_sid, "slotline.direction": record.direction}
    if record.phone:
        attributes["slotline.caller"] = mask(record.phone)  # "***06": never the number
    span = tracer.start("call", attributes, root=True)
    scope = spans.Scope(tracer, span, current=True)
    scope.__enter__()
    return scope


def call_ended(scope: spans.Scope | None, record: CallRecord) -> None:
    if scope is None:
        return
    span = scope.span
    span.set_attribute("slotline.flow", record.flow)  # a <Parameter> may have chosen it
    span.set_attribute("slotline.status", record.status)
    span.set_attribute("slotline.turns", len(record.turns))
    span.set_attribute("slotline.bookings", len(record.bookings))
    span.set_attribute("slotline.errors", len(record.errors))
    scope.__exit__(None, None, None)


# ---- turns -----------------------------------------------------------------------------------


def turn_started(event: str, *, since_s: float = 0.0) -> spans.Span:
    """A turn's span, child of the call's: it began ``since_s`` ago (a caller's turn: at their
    last voiced frame). Not made current: ``current`` does that where the turn's work runs."""
    tracer = spans.tracer()
    if tracer is None:
        return spans.NO_SPAN
    start_ns = time.time_ns() - int(since_s * 1e9)
    return tracer.start("turn", {"slotline.turn.event": event}, start_ns=start_ns)


def current(span: spans.Span) -> spans.Scope | spans.NoSpan:
    """``span`` is the current span while the ``with`` body runs (tasks created there keep it)."""
    tracer = spans.tracer()
    if tracer is None or not span.is_recording():
        return spans.NO_SPAN
    return _Current(tracer, span)


class _Current(spans.Scope):
    __slots__ = ()

    def __init__(self, tracer: spans.Tracer, span: spans.Span) -> None:
        super().__init__(tracer, span, current=True)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            self._tracer.detach(self._token)
            self._token = None


def end_turn_with(task: asyncio.Task[None], span: spans.Span, latency: Latency | None) -> None:
    """End ``span`` when ``task`` (the reply) is done, with the turn's latency as attributes."""
    if spans.tracer() is None or not span.is_recording():
        return

    def done(finished: asyncio.Task[None]) -> None:
        cancelled = finished.cancelled()  # barge-in, or the call ended
        end_turn(span, latency, cancelled=cancelled,
                 error=None if cancelled else finished.exception())

    task.add_done_callback(done)


def end_turn(
    span: spans.Span,
    latency: Latency | None = None,
    *,
    cancelled: bool = False,
    noise: bool = False,
    error: BaseException | None = None,
) -> None:
    """End a turn's span (``noise``: the caller's sound was no words; the agent resumed)."""
    tracer = spans.tracer()
    if tracer is None or not span.is_recording():
        return
    if latency is not None:
        _latency_attributes(span, latency)
    if cancelled:
        span.set_attribute("slotline.cancelled", True)
    if noise:
        span.set_attribute("slotline.turn.noise", True)
    tracer.end(span, error)


def _latency_attributes(span: spans.Span, latency: Latency) -> None:
    span.set_attribute("slotline.endpoint_ms", round(latency.endpoint_ms, 1))
    span.set_attribute("slotline.stt_final_ms", round(latency.stt_final_ms, 1))
    if latency.turn_latency_ms:  # the reply's first audio left: the rest was measured
        span.set_attribute("slotline.llm_ttft_ms", round(latency.llm_ttft_ms, 1))
        span.set_attribute("slotline.tts_ttfb_ms", round(latency.tts_ttfb_ms, 1))
        span.set_attribute("slotline.turn_latency_ms", round(latency.turn_latency_ms, 1))
        span.set_attribute("slotline.server_overhead_ms", round(latency.server_overhead_ms, 1))


# ---- bookings and calendars ------------------------------------------------------------------


def availability(action: str) -> spans.Scope | spans.NoSpan:
    """The look-up of free times over an action's pooled calendars, current while it runs."""
    return spans.span("availability", {"slotline.booking.action": action})


def booking(action: str, strategy: str) -> spans.Scope | spans.NoSpan:
    """One booking, current while it runs; set ``OUTCOME`` on it (``booked``, ``slot_taken``).
    Ended by an exception, its outcome is ``failed`` (``incomplete``: part of it stands)."""
    tracer = spans.tracer()
    if tracer is None:
        return spans.NO_SPAN
    span = tracer.start("booking", {"slotline.booking.action": action,
                                    "slotline.booking.strategy": strategy})
    return _Booking(tracer, span, current=True)


class _Booking(spans.Scope):
    __slots__ = ()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is not None and not isinstance(exc, asyncio.CancelledError):
            self.span.set_attribute(
                OUTCOME, "incomplete" if isinstance(exc, BookingIncomplete) else "failed"
            )
        super().__exit__(kind, exc, None)


def calendar(operation: str, name: str, provider: str) -> spans.Scope | spans.NoSpan:
    """One request to a calendar (``operation``: busy, free_slots, create, cancel, reschedule),
    current while it runs so a REST adapter's HTTP requests nest under it."""
    return spans.span(f"calendar {operation}", {"slotline.calendar": name,
                                                 "slotline.provider": provider})
