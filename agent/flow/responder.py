"""``FlowResponder``: the flow engine behind the call session's ``Responder`` seam.

The engine is pure; this is where its actions meet the world. Speech (``Say``, ``Listen``,
``Hangup``) goes to the session; booking, cancelling and custom actions go to the runners
below, each answer goes back into the engine, and whatever the engine says next follows in the
same reply. Every runner call is bounded by ``service_timeout_s`` and a failing one
(``ProviderError`` or timeout) becomes a failure result, so the flow takes its failure edge and
the call never hangs.

Barge-in cancels a reply at any point. Nothing is lost: actions not yet carried out stay queued,
and a runner call in flight keeps running (it is shielded) and is awaited at the start of the
next reply. Queued ``Say``s are dropped — the caller talked over them — but what a late result
makes the engine say is spoken, because the caller has not heard it yet.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Protocol

from agent.flow.engine import FlowEngine
from agent.flow.messages import (
    AvailabilityReady,
    BookingFinished,
    CallWebhook,
    CancelFinished,
    CheckAvailability,
    FlowAction,
    Hangup,
    Listen,
    RunBooking,
    RunCancel,
    RunReschedule,
    Say,
    SendSms,
    ServiceResult,
    Transfer,
    WebhookFinished,
)
from agent.responder import Action, CallEvent
from providers.errors import ProviderError, ProviderTimeout

log = logging.getLogger(__name__)

# Above the booking engine's own per-calendar timeouts: this only catches a runner that never
# answers, so that the caller hears the failure message instead of silence.
DEFAULT_SERVICE_TIMEOUT_S = 15.0

ServiceRequest = CheckAvailability | RunBooking | RunReschedule | RunCancel | CallWebhook


class BookingRunner(Protocol):
    """The booking service, as one call sees it (the protocol is in ``agent.flow.messages``)."""

    async def check(self, request: CheckAvailability) -> AvailabilityReady: ...

    async def run(self, request: RunBooking) -> BookingFinished: ...

    async def reschedule(self, request: RunReschedule) -> BookingFinished: ...

    async def cancel(self, request: RunCancel) -> CancelFinished: ...


class WebhookRunner(Protocol):
    """Custom actions (``webhook`` nodes): variables in, variables out."""

    async def call(self, request: CallWebhook) -> WebhookFinished: ...


class CallControl(Protocol):
    """What the telephony side does for a flow besides speaking."""

    async def send_sms(self, request: SendSms) -> None: ...

    async def transfer(self, request: Transfer) -> None: ...


class FlowResponder:
    """A ``Responder`` that runs a flow. ``control`` None: SMS are skipped (logged) and a
    transfer hangs up with reason ``transfer-unavailable``."""

    def __init__(
        self,
        engine: FlowEngine,
        *,
        booking: BookingRunner,
        webhooks: WebhookRunner,
        control: CallControl | None = None,
        service_timeout_s: float = DEFAULT_SERVICE_TIMEOUT_S,
    ) -> None:
        self._engine = engine
        self._booking = booking
        self._webhooks = webhooks
        self._control = control
        self._timeout_s = service_timeout_s
        self._queue: deque[FlowAction] = deque()
        self._pending: asyncio.Task[ServiceResult] | None = None

    @property
    def engine(self) -> FlowEngine:
        return self._engine

    @property
    def flow(self) -> str:
        return self._engine.flow.name

    @property
    def node(self) -> str:
        return self._engine.node_id

    @property
    def variables(self) -> Mapping[str, str]:
        return self._engine.variables

    async def handle(self, event: CallEvent) -> AsyncGenerator[Action, None]:
        self._queue = deque(a for a in self._queue if not isinstance(a, Say))
        if self._pending is not None:
            self._queue.extend(self._engine.handle(await self._settle(self._pending)))
        async for action in self._drain():
            yield action
        self._queue.extend(self._engine.handle(event))
        async for action in self._drain():
            yield action

    async def aclose(self) -> None:
        """Wait for a runner call a barge-in left running (a booking is never abandoned)."""
        if self._pending is not None:
            await self._settle(self._pending)

    async def _drain(self) -> AsyncIterator[Action]:
        while self._queue:
            action = self._queue.popleft()
            if isinstance(action, Say | Listen | Hangup):
                yield action
            elif isinstance(action, SendSms):
                await self._send_sms(action)
            elif isinstance(action, Transfer):
                if self._control is None:
                    log.warning("call_sid=%s transfer requested but no call control is "
                                "configured", self._engine.call_sid)
                    yield Hangup("transfer-unavailable")
                else:
                    await self._control.transfer(action)
            else:
                task = asyncio.create_task(self._ask(action), name=f"flow-{action.node_id}")
                self._pending = task
                self._queue.extend(self._engine.handle(await self._settle(task)))

    async def _settle(self, task: asyncio.Task[ServiceResult]) -> ServiceResult:
        try:
            return await asyncio.shield(task)  # a barge-in cancels us, never the booking
        finally:
            if task.done():  # finished (or failed): nothing left to collect later
                self._pending = None

    async def _send_sms(self, sms: SendSms) -> None:
        sid = self._engine.call_sid
        if self._control is None:
            log.warning("call_sid=%s SMS skipped: no call control is configured", sid)
            return
        try:
            await self._control.send_sms(sms)
        except ProviderError as exc:  # a failed confirmation text must not end the call
            log.warning("call_sid=%s SMS failed: %s", sid, exc)

    async def _ask(self, request: ServiceRequest) -> ServiceResult:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._call(request)
        except ProviderError as exc:
            log.warning("call_sid=%s %s failed at node %s: %s", self._engine.call_sid,
                        type(request).__name__, request.node_id, exc)
            return _failed(request, "timeout" if isinstance(exc, ProviderTimeout) else "error")
        except TimeoutError:
            log.warning("call_sid=%s %s timed out at node %s after %.1f s", self._engine.call_sid,
                        type(request).__name__, request.node_id, self._timeout_s)
            return _failed(request, "timeout")
        except Exception:  # e.g. the database is locked: the flow's failure edge, not a crash
            log.exception("call_sid=%s %s failed at node %s", self._engine.call_sid,
                          type(request).__name__, request.node_id)
            return _failed(request, "error")

    async def _call(self, request: ServiceRequest) -> ServiceResult:
        if isinstance(request, CheckAvailability):
            return await self._booking.check(request)
        if isinstance(request, RunBooking):
            return await self._booking.run(request)
        if isinstance(request, RunReschedule):
            return await self._booking.reschedule(request)
        if isinstance(request, RunCancel):
            return await self._booking.cancel(request)
        return await self._webhooks.call(request)


def _failed(request: ServiceRequest, reason: str) -> ServiceResult:
    """The result a failed service call stands for: the flow's failure edge."""
    node_id = request.node_id
    if isinstance(request, CheckAvailability):
        return AvailabilityReady(node_id, None, reason=reason)
    if isinstance(request, RunBooking | RunReschedule):
        return BookingFinished(node_id, success=False, reason=reason)
    if isinstance(request, RunCancel):
        return CancelFinished(node_id, success=False, reason=reason)
    return WebhookFinished(node_id, success=False, reason=reason)
