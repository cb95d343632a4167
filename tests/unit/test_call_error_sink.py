"""agent.call.errors: a provider failure reaches the call it happened in, and a call that has
ended is not kept alive by what it opened."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref

from slotline.agent.call.errors import ErrorReporter, errors_of_this_call
from slotline.agent.server.metrics import Metrics
from slotline.providers.errors import ProviderError


class _Call:
    """Stands for a call's session: its sink is a bound method, as ``CallSession``'s is."""

    def __init__(self) -> None:
        self.errors: list[ProviderError] = []

    def sink(self, error: ProviderError) -> None:
        self.errors.append(error)


async def _report_later(report: ErrorReporter) -> None:
    await asyncio.sleep(0)
    report(ProviderError("stt", "in a task of the call"))


async def test_a_failure_goes_to_the_call_it_happened_in_and_after_it_to_the_metric() -> None:
    metrics = Metrics()
    report = ErrorReporter(metrics)
    call = _Call()
    with errors_of_this_call(call.sink):
        report(ProviderError("stt", "during the call"))
        await asyncio.create_task(_report_later(report), name="started-in-the-call")
    report(ProviderError("stt", "outside any call"))
    assert [e.message for e in call.errors] == ["during the call", "in a task of the call"]
    assert metrics.provider_errors.values["stt"] == 1


async def test_a_connection_opened_during_a_call_does_not_keep_the_call_alive() -> None:
    # A pooled keep-alive or vendor socket opened in a call outlives it; its reader's handle
    # keeps a copy of the context it was opened in.
    metrics = Metrics()
    report = ErrorReporter(metrics)
    accepted: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    call = _Call()
    ended = weakref.ref(call)
    with errors_of_this_call(call.sink):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        kept = contextvars.copy_context()  # as asyncio copies it into every handle
    try:
        del call
        gc.collect()
        assert ended() is None, "the ended call is still referenced"
        # a failure seen on that connection now counts in the metric alone
        kept.run(report, ProviderError("tts", "late"))
        assert metrics.provider_errors.values["tts"] == 1
    finally:
        writer.close()
        for peer in accepted:
            peer.close()
        server.close()
        await server.wait_closed()
        del reader
