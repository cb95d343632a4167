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

With a model (``llm``), the engine's ``AskModel``/``JudgeConditions`` go to
:class:`agent.flow.llm.LlmPerformer` with the conversation as the caller heard it. A free
answer is spoken clause by clause while the model streams. Barge-in closes an ``AskModel``
generation at once (its tool calls never run; the engine hears ``cancelled`` and listens to
the new words); a ``JudgeConditions`` speaks nothing and decides where the flow goes, so like a
runner call it is shielded and awaited by the next reply.

A do-not-call request (``OptOut``) puts the number the call is on (the ``user_phone`` call
parameter, else the flow's ``user_phone`` variable) on the ``opt_out`` list before the goodbye
is spoken. It is shielded like a runner call, and bounded by the same timeout; when it cannot
be recorded (no list, no number, the store fails) that is logged and reported as a provider
error, and the caller still hears the goodbye and the call ends.

A node with a ``prompt`` asks for its line with ``WriteLine``: the model's clauses are spoken
as they stream (the first ``Say`` leaves as soon as the first clause is complete). Barge-in
closes the generation (the next event cancels it if the reply was cut between two clauses); a
failed or stalled line keeps what was spoken and the node's ``say`` ends it.

While the caller answers a question whose yes books (a read-back, a lone offer), the line the
booking's success will say comes right after the ``Listen`` as ``Prepare``
(``agent.flow.foresee``), for the call's voice to synthesize ahead.

``anticipate(text)`` starts the model request the caller's words would lead to while they are
still pausing (``agent.flow.anticipate``: a fork of the engine says what it would be; only a
model request ever starts early). The final transcript's reply uses it when it asks the very
same request with the very same conversation; any other event drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

from slotline.agent.call.responder import Action, CallEvent, CallStarted, Prepare
from slotline.agent.flow.anticipate import Anticipation, model_request_ahead
from slotline.agent.flow.booking_steps import FIXED_SENTENCES
from slotline.agent.flow.engine import FlowEngine
from slotline.agent.flow.foresee import line_after_yes
from slotline.agent.flow.llm import (
    DEFAULT_LLM_TIMEOUT_S,
    History,
    LlmPerformer,
    LlmStats,
    Written,
    nothing,
)
from slotline.agent.flow.messages import (
    AskModel,
    AvailabilityReady,
    BookingFinished,
    CallerSaid,
    CallWebhook,
    CancelFinished,
    CheckAvailability,
    DtmfPressed,
    FlowAction,
    Hangup,
    JudgeConditions,
    Listen,
    ModelAnswered,
    ModelRequest,
    ModelResult,
    OptOut,
    ReplyInterrupted,
    RunBooking,
    RunCancel,
    RunReschedule,
    Say,
    SendSms,
    ServiceResult,
    Transfer,
    WebhookFinished,
    WriteLine,
)
from slotline.agent.flow.model import BookingNode, RescheduleNode
from slotline.agent.flow.state import HOLD_ACK, REPROMPT_PREFIX
from slotline.agent.logs import mask
from slotline.providers.base import ChatModel
from slotline.providers.errors import ProviderError, ProviderTimeout

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


class OptOutList(Protocol):
    """The do-not-call list: numbers that must never be called again (``OptOut``)."""

    async def add(self, phone: str, *, call_sid: str) -> None: ...


class CallControl(Protocol):
    """What the telephony side does for a flow besides speaking."""

    async def send_sms(self, request: SendSms) -> None: ...

    async def transfer(self, request: Transfer) -> None: ...


class FlowResponder:
    """A ``Responder`` that runs a flow. ``control`` None: SMS are skipped (logged) and a
    transfer hangs up with reason ``transfer-unavailable``. ``llm`` (with an engine built
    with ``use_llm=True``) performs the model's jobs, each bounded by ``llm_timeout_s``;
    ``on_provider_error`` hears every model failure (metrics), else they are only logged;
    it also hears a do-not-call request that could not be put on ``opt_out`` (None: no list,
    so every such request is reported)."""

    def __init__(
        self,
        engine: FlowEngine,
        *,
        booking: BookingRunner,
        webhooks: WebhookRunner,
        control: CallControl | None = None,
        service_timeout_s: float = DEFAULT_SERVICE_TIMEOUT_S,
        llm: ChatModel | None = None,
        llm_timeout_s: float = DEFAULT_LLM_TIMEOUT_S,
        on_provider_error: Callable[[ProviderError], None] | None = None,
        opt_out: OptOutList | None = None,
    ) -> None:
        if llm is not None and not engine.uses_llm:
            raise ValueError("an llm needs an engine that may ask it: FlowEngine(use_llm=True)")
        self._engine = engine
        self._booking = booking
        self._webhooks = webhooks
        self._control = control
        self._timeout_s = service_timeout_s
        self._queue: deque[FlowAction] = deque()
        self._pending: asyncio.Task[ServiceResult | ModelResult] | None = None
        self._stats = LlmStats()
        self._llm = None if llm is None else LlmPerformer(
            llm, timeout_s=llm_timeout_s, on_error=on_provider_error, stats=self._stats
        )
        self._history = History()
        self._thinking: tuple[AskModel, asyncio.Task[ModelResult]] | None = None
        self._writing: asyncio.Task[Written] | None = None  # a line being written (WriteLine)
        self._early: Anticipation | None = None  # a model request started on a pause's words
        self._turn_asked = True  # whether this caller turn has asked the model yet
        self._opt_out = opt_out
        self._on_provider_error = on_provider_error
        self._opting_out: asyncio.Task[None] | None = None  # shielded from barge-in
        self._phone = ""  # the number this call is on (the user_phone call parameter)

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

    @property
    def path(self) -> Sequence[str]:
        """``ReportsPath``: every node the engine entered, in order."""
        return self._engine.path

    @property
    def asking(self) -> Listen | None:
        """``ReportsQuestion``: the Listen queued right behind the Say being spoken."""
        head = self._queue[0] if self._queue else None
        return head if isinstance(head, Listen) else None

    @property
    def llm_stats(self) -> LlmStats:
        """This call's use of the model (turns that skipped it, failures, …)."""
        return self._stats

    def static_prompts(self) -> tuple[str, ...]:
        """What the flow says from fixed text (``say``, ``reprompt``, the default reprompt's
        prefix, the hold acknowledgement; templates), for the prompt cache. With a model, the
        ``say`` of a node with a ``prompt`` is only its fallback: it is left out, so that a
        model's words that happen to match it are synthesised like any other (as a real
        model's, new on every call, would be) and the cache holds what is actually said."""
        written = self._llm is not None
        texts = [REPROMPT_PREFIX, HOLD_ACK]
        nodes = self._engine.flow.nodes.values()
        if any(isinstance(node, BookingNode | RescheduleNode) for node in nodes):
            texts += FIXED_SENTENCES  # what the booking steps say in fixed words
        for node in nodes:
            if not (written and getattr(node, "prompt", "").strip()):
                texts.append(getattr(node, "say", ""))
            texts.append(getattr(node, "reprompt", ""))
        return tuple(text for text in dict.fromkeys(texts) if text)

    @property
    def can_anticipate(self) -> bool:
        return self._llm is not None

    def anticipate(self, text: str) -> bool:
        """The caller is pausing after ``text`` (the recogniser's settled words): start the model
        request the flow would make for it, if it would make one first. True if started."""
        self.forget_anticipation()
        if (self._llm is None or self._queue or self._pending is not None
                or self._thinking is not None or self._writing is not None):
            return False
        ahead = model_request_ahead(self._engine, self._history, text)
        if ahead is None:
            return False
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        early_stats = LlmStats()
        sid, request = self._engine.call_sid, ahead.request
        job = (self._llm.write(request, ahead.history, sentences.put_nowait, call_sid=sid,
                               stats=early_stats)
               if isinstance(request, WriteLine) else
               self._llm.perform(request, ahead.history, sentences.put_nowait, call_sid=sid,
                                 stats=early_stats))
        task: asyncio.Task[Any] = asyncio.create_task(job, name=f"llm-early-{request.node_id}")
        task.add_done_callback(lambda _: sentences.put_nowait(None))
        self._early = Anticipation(text, ahead, task, sentences, early_stats)
        self._stats.early_started += 1
        return True

    def forget_anticipation(self) -> None:
        """The caller went on talking: drop the early request (its answer is never seen)."""
        early, self._early = self._early, None
        if early is not None:
            early.cancel()

    def _adopt(self, request: ModelRequest | WriteLine) -> Anticipation | None:
        """The early request, if it is exactly ``request`` asked now; else it is dropped."""
        early, self._early = self._early, None
        if early is None:
            return None
        if not early.matches(request, self._history.messages()):
            early.cancel()
            return None
        self._stats.early_used += 1
        log.info("call_sid=%s model request at node %s started early, on the words of the pause",
                 self._engine.call_sid, request.node_id)
        return early

    async def handle(self, event: CallEvent) -> AsyncGenerator[Action, None]:
        if not isinstance(event, CallerSaid):
            self.forget_anticipation()
        if isinstance(event, CallStarted):
            self._phone = event.custom_parameters.get("user_phone", "")
        self._queue = deque(a for a in self._queue if not isinstance(a, Say | WriteLine))
        self._stop_writing()  # a barge-in cut a line off between two clauses
        if self._thinking is not None:  # a barge-in cut the model off
            self._queue.extend(self._engine.handle(await self._cancel_thinking()))
        if self._pending is not None:
            self._queue.extend(self._engine.handle(await self._settle(self._pending)))
        async for action in self._drain():
            yield action
        self._heard(event)
        self._queue.extend(self._engine.handle(event))
        async for action in self._drain():
            yield action
        self.forget_anticipation()  # the reply did not ask what was anticipated

    async def aclose(self) -> None:
        """Wait for a runner call a barge-in left running (a booking is never abandoned)."""
        self.forget_anticipation()
        self._stop_writing()
        if self._thinking is not None:
            await self._cancel_thinking()
        if self._pending is not None:
            await self._settle(self._pending)
        if self._opting_out is not None:
            await self._opting_out

    def _heard(self, event: CallEvent) -> None:
        """Keep the conversation as the caller experienced it, and count caller turns."""
        if isinstance(event, ReplyInterrupted):
            self._history.interrupted(event.heard_text)
        elif isinstance(event, CallerSaid | DtmfPressed):
            self._history.caller(event.text if isinstance(event, CallerSaid) else event.digit)
            self._stats.caller_turns += 1
            self._turn_asked = False

    async def _drain(self) -> AsyncIterator[Action]:
        while self._queue:
            action = self._queue.popleft()
            if isinstance(action, Say):
                self._history.agent(action.text)
                yield action
            elif isinstance(action, Listen):
                yield action
                if not self._queue and (line := line_after_yes(self._engine)) is not None:
                    yield Prepare(line)  # a yes would book: its confirmation, synthesized now
            elif isinstance(action, Hangup):
                yield action
            elif isinstance(action, OptOut):
                await self._record_opt_out()
            elif isinstance(action, SendSms):
                await self._send_sms(action)
            elif isinstance(action, Transfer):
                if self._control is None:
                    log.warning("call_sid=%s transfer requested but no call control is "
                                "configured", self._engine.call_sid)
                    yield Hangup("transfer-unavailable")
                else:
                    await self._control.transfer(action)
            elif isinstance(action, WriteLine):
                async with contextlib.aclosing(self._write(action)) as clauses:
                    async for say in clauses:
                        yield say
            elif isinstance(action, AskModel) and self._llm is not None:
                async with contextlib.aclosing(self._think(action)) as sentences:
                    async for say in sentences:
                        yield say
            else:
                work = self._work(action)
                if work is None:
                    continue
                task = asyncio.create_task(work, name=f"flow-{action.node_id}")
                self._pending = task
                self._queue.extend(self._engine.handle(await self._settle(task)))

    def _work(
        self, action: ServiceRequest | ModelRequest
    ) -> Coroutine[None, None, ServiceResult | ModelResult] | None:
        """What answers a runner call or a judgement (shielded from barge-in); None when the
        flow asked for a model that is not configured (answered with nothing at once)."""
        if not isinstance(action, AskModel | JudgeConditions):
            return self._ask(action)
        if self._llm is None:
            log.warning("call_sid=%s the flow asked a model but none is configured",
                        self._engine.call_sid)
            self._queue.extend(self._engine.handle(nothing(action, "no_model")))
            return None
        assert isinstance(action, JudgeConditions)  # AskModel is spoken by _think
        self._count_model_turn()
        early = self._adopt(action)
        if early is not None:
            return self._judged_early(early)
        return self._llm.perform(action, self._history.messages(), _silent,
                                 call_sid=self._engine.call_sid)

    async def _judged_early(self, early: Anticipation) -> ModelResult:
        result: ModelResult = await early.task
        self._stats.add(early.stats)
        return result

    async def _think(self, request: AskModel) -> AsyncGenerator[Say, None]:
        """Run the model in its own task; speak its free answer as the sentences arrive; feed
        its result to the engine. Closed early (barge-in), the generation is cancelled."""
        assert self._llm is not None
        self._count_model_turn()
        early = self._adopt(request)
        if early is not None:
            task, sentences = early.task, early.sentences
        else:
            sentences = asyncio.Queue()
            task = asyncio.create_task(
                self._llm.perform(request, self._history.messages(), sentences.put_nowait,
                                  call_sid=self._engine.call_sid),
                name=f"llm-{request.node_id}",
            )
            task.add_done_callback(lambda _: sentences.put_nowait(None))
        self._thinking = (request, task)
        try:
            while (sentence := await sentences.get()) is not None:
                self._history.agent(sentence)
                yield Say(sentence)
            result = task.result()
        finally:
            if not task.done():
                task.cancel()  # close the HTTP stream now, not when the reply is collected
        if early is not None:
            self._stats.add(early.stats)
        self._thinking = None
        self._queue.extend(self._engine.handle(result))

    async def _write(self, line: WriteLine) -> AsyncGenerator[Say, None]:
        """The model's line, a ``Say`` per clause as they stream; the fallback (the node's
        ``say``) when there is no model, and after a line the model failed to finish."""
        if self._llm is None:
            self._history.agent(line.fallback)
            yield Say(line.fallback)
            return
        self._count_model_turn()
        early = self._adopt(line)
        task: asyncio.Task[Written]
        if early is not None:  # started on the pause's words: the same line, asked now
            task, clauses = early.task, early.sentences
        else:
            clauses = asyncio.Queue()
            task = asyncio.create_task(
                self._llm.write(line, self._history.messages(), clauses.put_nowait,
                                call_sid=self._engine.call_sid),
                name=f"llm-line-{line.node_id}",
            )
            task.add_done_callback(lambda _: clauses.put_nowait(None))
        self._writing = task
        try:
            while (clause := await clauses.get()) is not None:
                self._history.agent(clause)
                yield Say(clause)
            written = task.result()
        finally:  # closes the HTTP stream now, not when the reply is collected
            if self._writing is task:  # (a reply closed late must not stop a newer line)
                self._writing = None
            _stop(task, self._stats)
        if early is not None:
            self._stats.add(early.stats)
        if not written.finished:
            self._history.agent(line.fallback)
            yield Say(line.fallback)

    def _stop_writing(self) -> None:
        task, self._writing = self._writing, None
        if task is not None:
            _stop(task, self._stats)

    async def _cancel_thinking(self) -> ModelResult:
        assert self._thinking is not None
        request, task = self._thinking
        self._thinking = None
        self._stats.cancelled += 1
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        log.info("call_sid=%s model answer at node %s cut off by the caller",
                 self._engine.call_sid, request.node_id)
        return ModelAnswered(request.node_id, cancelled=True, reason="barge-in")

    def _count_model_turn(self) -> None:
        if not self._turn_asked:
            self._turn_asked = True
            self._stats.llm_turns += 1

    async def _settle(
        self, task: asyncio.Task[ServiceResult | ModelResult]
    ) -> ServiceResult | ModelResult:
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

    async def _record_opt_out(self) -> None:
        """Put the caller's number on the list, shielded: a barge-in now must not lose it (the
        call's ``aclose`` waits for it)."""
        task = asyncio.create_task(self._add_to_opt_out_list(),
                                   name=f"opt-out-{self._engine.call_sid}")
        self._opting_out = task
        await asyncio.shield(task)
        self._opting_out = None

    async def _add_to_opt_out_list(self) -> None:
        """Never raises: a request that cannot be recorded is logged and reported, and the
        goodbye is spoken all the same (a caller is never left on a silent line)."""
        sid = self._engine.call_sid
        phone = self._phone or self._engine.variables.get("user_phone", "")
        if self._opt_out is None or not phone:
            missing = "no opt-out list is configured" if self._opt_out is None else "no number"
            self._opt_out_failed(ProviderError("opt-out", missing), phone)
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._opt_out.add(phone, call_sid=sid)
        except ProviderError as exc:
            self._opt_out_failed(exc, phone)
        except TimeoutError:
            self._opt_out_failed(ProviderTimeout("opt-out", "timed out"), phone)
        except Exception as exc:  # e.g. the database is locked: the goodbye is still said
            log.exception("call_sid=%s opt-out list failed", sid)
            self._opt_out_failed(ProviderError("opt-out", type(exc).__name__), phone)
        else:
            log.info("call_sid=%s %s is on the do-not-call list", sid, mask(phone) or "-")

    def _opt_out_failed(self, exc: ProviderError, phone: str) -> None:
        log.error("call_sid=%s do-not-call request for %s not recorded: %s",
                  self._engine.call_sid, mask(phone) or "an unknown number", exc)
        if self._on_provider_error is not None:
            self._on_provider_error(exc)

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


def _stop(task: asyncio.Task[Written], stats: LlmStats) -> None:
    """Cancel a line still being written (once: it is counted once)."""
    if not task.done() and not task.cancelling():
        stats.cancelled += 1
        task.cancel()


def _silent(text: str) -> None:
    """A judgement speaks nothing."""


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
