"""Which call a provider failure belongs to, so it lands in that call's log as well as in the
``slotline_provider_errors_total`` metric.

Some failures are seen far from the session: the Deepgram stream's own reconnect loop, the
flow's model performer, the booking runner. Their providers are built once per process and
report through one callback with no call attached. The session runs each call in its own task,
and asyncio copies the context into every task started under it (the call's ``TaskGroup``, the
recogniser's connection task, shielded booking writes), so the call's sink is kept in a
``ContextVar``: a process-wide reporter looks it up and hands the failure to the call it
happened in. Outside any call (start-up, a reminder job) only the metric counts it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from slotline.agent.server.metrics import Metrics
from slotline.providers.errors import ProviderError

ErrorSink = Callable[[ProviderError], None]

_CALL_SINK: ContextVar[ErrorSink | None] = ContextVar("slotline_call_errors", default=None)


@contextmanager
def errors_of_this_call(sink: ErrorSink) -> Iterator[None]:
    """Route provider failures reported from this task (and tasks started under it) to
    ``sink``; the sink counts the metric itself (``CallSession._provider_error``)."""
    token = _CALL_SINK.set(sink)
    try:
        yield
    finally:
        _CALL_SINK.reset(token)


class ErrorReporter:
    """The ``on_error`` of process-wide providers: to the current call, else to the metric."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def __call__(self, error: ProviderError) -> None:
        sink = _CALL_SINK.get()
        if sink is not None:
            sink(error)
        else:
            self._metrics.provider_errors.inc(error.provider)
