"""Which call a provider failure belongs to, so it lands in that call's log as well as in the
``slotline_provider_errors_total`` metric.

Some failures are seen far from the session: the Deepgram stream's own reconnect loop, the
flow's model performer, the booking runner. Their providers are built once per process and
report through one callback with no call attached. The session runs each call in its own task,
and asyncio copies the context into every task started under it (the call's ``TaskGroup``, the
recogniser's connection task, shielded booking writes), so the call's sink is kept in a
``ContextVar``: a process-wide reporter looks it up and hands the failure to the call it
happened in. Outside any call (start-up, a reminder job) only the metric counts it.

The variable holds a ``_CallSink`` that is emptied when the call ends, not the sink itself:
asyncio copies the context into every handle too, and a pooled connection opened during a call
(an HTTP keep-alive, a vendor's socket) keeps its reader's copy for as long as it lives. Holding
the sink there kept the finished call's session, and all it refers to, alive with it. A failure
reported in such a copy after the call ended counts in the metric only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from slotline.agent.server.metrics import Metrics
from slotline.providers.errors import ProviderError

ErrorSink = Callable[[ProviderError], None]


class _CallSink:
    """One call's sink while the call lasts (``None`` once it has ended)."""

    __slots__ = ("sink",)

    def __init__(self, sink: ErrorSink) -> None:
        self.sink: ErrorSink | None = sink


_CALL_SINK: ContextVar[_CallSink | None] = ContextVar("slotline_call_errors", default=None)


@contextmanager
def errors_of_this_call(sink: ErrorSink) -> Iterator[None]:
    """Route provider failures reported from this task (and tasks started under it) to
    ``sink`` until the block ends; the sink counts the metric itself
    (``CallSession._provider_error``)."""
    current = _CallSink(sink)
    token = _CALL_SINK.set(current)
    try:
        yield
    finally:
        current.sink = None  # copies of this context may outlive the call (module doc)
        _CALL_SINK.reset(token)


class ErrorReporter:
    """The ``on_error`` of process-wide providers: to the current call, else to the metric."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def __call__(self, error: ProviderError) -> None:
        current = _CALL_SINK.get()
        sink = current.sink if current is not None else None
        if sink is not None:
            sink(error)
        else:
            self._metrics.provider_errors.inc(error.provider)
