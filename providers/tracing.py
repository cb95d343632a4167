"""Spans when tracing is on, nothing otherwise: the seam between the code that makes spans and
OpenTelemetry (the optional ``otel`` extra, wired by ``agent.tracing``).

``agent.tracing`` installs a ``Tracer`` at start-up when tracing is enabled. Until then every
helper here returns the one shared ``NO_SPAN`` (a global read, no allocation), and
``traced_stream`` hands back the stream it was given, so code on a request path calls them
unconditionally. Nothing here is meant for the per-frame path: a span is a request or more.

Two kinds of span:
- ``span(name, ...)``: a unit of our own work (a call, a turn, a booking), made the *current*
  span while its ``with`` body runs, so spans started inside it, in this task and in tasks
  created inside it (asyncio copies the context into a new task), are its children. Only in a
  plain coroutine: never across the ``yield`` of an async generator.
- ``request(provider, operation, ...)``: one vendor request, a child of the current span and
  never current itself, so it may stay open across the ``yield``s of a streaming generator.

Attributes never carry personal data: counts, timings, names of providers and calendars,
masked numbers. A failed span records the error's type only (its message may quote a vendor's
answer about a caller).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from types import TracebackType
from typing import Protocol, TypeVar

AttributeValue = str | bool | int | float
Attributes = Mapping[str, AttributeValue]
_NONE: Attributes = {}
T = TypeVar("T")


class Span(Protocol):
    """What Slotline code does with a span (an OpenTelemetry ``Span`` fits)."""

    def set_attribute(self, key: str, value: AttributeValue) -> None: ...

    def is_recording(self) -> bool: ...


class Tracer(Protocol):
    """What ``agent.tracing`` installs: starts, ends and activates spans."""

    def start(
        self, name: str, attributes: Attributes, *, root: bool = False, start_ns: int | None = None
    ) -> Span:
        """A span, child of the current one (``root``: of none), not made current."""

    def end(self, span: Span, error: BaseException | None = None) -> None: ...

    def attach(self, span: Span) -> object:
        """Make ``span`` current in this context; returns the token ``detach`` takes."""

    def detach(self, token: object) -> None: ...


class NoSpan:
    """The span of tracing off: also a ``with`` that does nothing."""

    __slots__ = ()

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        return None

    def is_recording(self) -> bool:
        return False

    def __enter__(self) -> Span:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


NO_SPAN = NoSpan()
_tracer: Tracer | None = None


def install(tracer: Tracer | None) -> Tracer | None:
    """Make ``tracer`` this process's (None: tracing off); returns the one it replaces."""
    global _tracer
    previous, _tracer = _tracer, tracer
    return previous


def tracer() -> Tracer | None:
    return _tracer


class Scope:
    """A live span for one ``with`` body: ended on exit; an exception other than a cancellation
    or a closed generator marks it failed."""

    __slots__ = ("_current", "_token", "_tracer", "span")

    def __init__(self, tracer: Tracer, span: Span, *, current: bool) -> None:
        self._tracer = tracer
        self.span = span
        self._current = current
        self._token: object = None

    def __enter__(self) -> Span:
        if self._current:
            self._token = self._tracer.attach(self.span)
        return self.span

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            self._tracer.detach(self._token)
            self._token = None
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            self.span.set_attribute("slotline.cancelled", True)
            exc = None
        self._tracer.end(self.span, exc)


def span(name: str, attributes: Attributes = _NONE) -> Scope | NoSpan:
    """Our own unit of work, current while the ``with`` body runs (see the module doc)."""
    tracer = _tracer
    if tracer is None:
        return NO_SPAN
    return Scope(tracer, tracer.start(name, attributes), current=True)


def request(provider: str, operation: str, attributes: Attributes = _NONE) -> Scope | NoSpan:
    """One vendor request (``operation`` e.g. ``"stt finalize"``), never made current."""
    tracer = _tracer
    if tracer is None:
        return NO_SPAN
    attrs = {"slotline.provider": provider, **attributes}
    return Scope(tracer, tracer.start(operation, attrs), current=False)


def traced_stream(
    provider: str, operation: str, stream: AsyncGenerator[T, None], attributes: Attributes = _NONE
) -> AsyncGenerator[T, None]:
    """``stream`` itself when tracing is off; else a stream yielding the same items inside one
    ``request`` span that records the time to the first item and how many came."""
    if _tracer is None:
        return stream
    return _traced(provider, operation, stream, attributes)


async def _traced(
    provider: str, operation: str, stream: AsyncGenerator[T, None], attributes: Attributes
) -> AsyncGenerator[T, None]:
    began = time.perf_counter()
    items = 0
    with request(provider, operation, attributes) as span:
        try:
            async with aclosing(stream):
                async for item in stream:
                    if not items:
                        span.set_attribute("slotline.first_item_ms",
                                           round((time.perf_counter() - began) * 1000, 1))
                    items += 1
                    yield item
        finally:
            span.set_attribute("slotline.items", items)
