"""Twilio's side of an outbound call in the emulator: CPS queue, ringing, answer, TwiML, streams.

``TwilioEmulator`` (``twilio.py``, the REST surface) hands every created call to
``OutboundCalls.place``; one task per call then does what Twilio does, moving the call by the
table ``_NEXT`` (``advance``) — the REST side may end it at any point (``record_status``):

    queued ─(CPS slot)─▶ initiated ─(setup)─▶ ringing ─(ring_ms)─▶ in-progress ──▶ completed
                              └──▶ failed                 ├──▶ busy | no-answer
    REST Status=completed|canceled ends it wherever it is ─┘

- Who answers is injected: ``parties(to) -> Party`` (``providers`` never imports ``agent``; a
  test passes ``agent.sim.caller.run_caller`` wrapped as a ``Callee``). Default: everyone answers
  and stays silent (``SilentCallee``) until the app hangs up, at most 60 s.
- CPS: calls leave the queue in creation order, no two dispatches closer than ``1 / cps``
  (``_Pacer``); ``EmulatedCall.dispatched_at_s`` etc. are ``time.monotonic()`` readings.
- Status callbacks (``twilio_callbacks``, which also reads the TwiML): the
  ``StatusCallbackEvent``s asked for (default ``completed``), in order per call, signed,
  never retried; the ``initiated`` one carries ``CallStatus=initiated`` as Twilio's does,
  while the REST resource stays ``queued`` (its spec has no such status).
- Answer: TwiML from ``Twiml`` or a signed request to ``Url`` (11200 on failure: the call
  ends). ``<Connect><Stream>`` runs ``party.callee(StreamTarget)``; the callee returning (the
  person hung up, or the app closed the socket) completes the call. ``<Hangup/>`` or an empty
  ``<Response/>`` completes it; any other verb is not emulated: the call completes and the
  document is kept in ``EmulatedCall.unemulated``.
- Redirect (``redirected``): the live stream's ``hangup`` is set, the callee sends ``stop``,
  then the new TwiML runs; a new stream gets ``index + 1``. No completed callback in between.
- AMD: with ``AsyncAmd=true`` the verdict (``Party.answered_by``) is posted to
  ``AsyncAmdStatusCallback`` ``amd_after_ms`` after the answer. Synchronous AMD is emulated
  only as far as the TwiML request: it waits ``amd_after_ms`` and carries ``AnsweredBy``
  (``MachineDetectionTimeout``, ``machine_start`` heuristics and the like are not).
Not emulated either: ``<Stream statusCallback>``, ``FallbackUrl``, recordings, SIP.

The call's state (``EmulatedCall``, ``record_status``) is in ``twilio_call_state``, shared with
the REST surface; the default callee in ``twilio_silent_callee``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, Protocol

import aiohttp

from slotline.providers.emulators.twilio_call_state import (
    ENDED,
    EmulatedCall,
    ended_within,
    record_status,
)
from slotline.providers.emulators.twilio_callbacks import StatusCallbacks, WebhookSender, plan_twiml
from slotline.providers.emulators.twilio_silent_callee import SilentCallee
from slotline.providers.telephony.twilio_webhook import sign

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S: Final = 60  # Twilio's default ring Timeout
# Between leaving the queue and the far end ringing: a carrier's call setup takes ~1 s; a tenth
# of that keeps tests fast and still lets a client read ``queued`` right after the create.
CALL_SETUP_S: Final = 0.1
# How long a callee may take to send ``stop`` and close once told to hang up: Twilio's side
# drops the socket, so a callee that lingers is cut off.
HANGUP_GRACE_S: Final = 5.0
WEBHOOK_TIMEOUT_S: Final = 15.0  # Twilio waits 15 s for a webhook answer
_AMD_MODES: Final = frozenset({"Enable", "DetectMessageEnd"})
_NEXT: Final[Mapping[str, frozenset[str]]] = {  # every move the call task may make
    "queued": frozenset({"ringing", "failed"}),
    "ringing": frozenset({"in-progress", "busy", "no-answer", "failed"}),
    "in-progress": frozenset({"completed"}),
}


@dataclass(frozen=True, slots=True)
class StreamTarget:
    """One media stream the emulator opens to the app for a live call (a <Connect><Stream>)."""

    url: str  # the <Stream url> (ws:// or wss://)
    parameters: Mapping[str, str]  # the <Parameter>s → start.customParameters
    call_sid: str
    account_sid: str
    # {"X-Twilio-Signature": ...} signed as Twilio signs the upgrade: the URL with no params
    headers: Mapping[str, str]
    index: int  # 0 for the first stream of the call, 1 after the first redirect, ...
    # set when the call ends (REST Status=completed) or is redirected away: the callee must
    # send ``stop`` and close at its next frame (``agent.sim.caller.run_caller``'s ``hangup=``)
    hangup: asyncio.Event


class Callee(Protocol):
    """Plays the person (or machine) on one media stream; returns when its side is done (hung
    up, or the app closed the socket)."""

    async def __call__(self, stream: StreamTarget) -> None: ...


@dataclass(frozen=True, slots=True)
class Party:
    """Who (or what) is at a number."""

    kind: Literal["answer", "busy", "no-answer", "failed"] = "answer"
    # the AMD verdict: human | machine_end_beep | machine_end_silence | machine_end_other | fax
    # | unknown (or machine_start, Twilio's verdict for a machine with MachineDetection=Enable)
    answered_by: str = "human"
    amd_after_ms: int = 1500  # when the verdict is known, counted from the answer
    ring_ms: int = 300  # ringing before answer / busy / no-answer (capped at the Timeout)
    callee: Callee | None = None  # None: a silent line (``SilentCallee``)


class CallTransitionError(ValueError):
    """The call task tried a move the status table does not allow (an emulator bug)."""


def advance(call: EmulatedCall, status: str) -> bool:
    """Move ``call`` to ``status`` by the table; False when it had already ended (the REST
    side ended it first: the task then stops)."""
    if call.status in ENDED:
        return False
    if status not in _NEXT.get(call.status, frozenset()):
        raise CallTransitionError(f"call {call.sid}: {call.status} → {status} is not a move")
    record_status(call, status)
    return True


class _Pacer:
    """Twilio's per-account CPS queue. ``asyncio.Lock`` wakes waiters first come, first
    served, so calls leave in creation order; a call ended while queued takes no slot."""

    def __init__(self, cps: float) -> None:
        self._interval_s = 1.0 / cps
        self._lock = asyncio.Lock()
        self._next_s = 0.0

    async def dispatch(self, call: EmulatedCall) -> bool:
        """Wait for the call's slot; False if it ended first."""
        async with self._lock:
            if await ended_within(call, self._next_s - time.monotonic()):
                return False
            call.dispatched_at_s = time.monotonic()
            self._next_s = call.dispatched_at_s + self._interval_s
            return True


class OutboundCalls:
    """The outbound calls of one emulated account: one task per call, owned here."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        cps: float = 1.0,
        parties: Callable[[str], Party] | None = None,
    ) -> None:
        if not cps > 0:
            raise ValueError(f"cps must be positive, got {cps}")
        self._account_sid, self._auth_token = account_sid, auth_token
        self._parties = parties or (lambda _to: Party())
        self._pacer = _Pacer(cps)
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._webhooks: WebhookSender | None = None
        self._live: dict[str, EmulatedCall] = {}  # dispatched; pruned of ended calls
        self.max_concurrent = 0  # the most calls dispatched and not yet ended, at once

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
        self._session = aiohttp.ClientSession(timeout=timeout)  # bounds handshakes, not streams
        self._webhooks = WebhookSender(self._session, self._auth_token)

    async def aclose(self) -> None:
        """Cancel every call task (their streams close), then the HTTP session."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = self._webhooks = None

    def place(self, call: EmulatedCall) -> None:
        """Start the call's life (it was just created, ``queued``)."""
        if self._webhooks is None:
            raise RuntimeError("OutboundCalls.place before start()")
        task = asyncio.create_task(
            self._run(call, self._parties(call.to), self._webhooks), name=f"twilio-call-{call.sid}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("%s failed", task.get_name(), exc_info=error)  # an emulator bug

    def redirected(self, call: EmulatedCall) -> None:
        """The REST side gave the call new TwiML: its live stream (if any) hangs up, and the
        call task runs the new document once the callee has returned."""
        if call.stream_hangup is not None:
            call.stream_hangup.set()

    # ---- one call ---------------------------------------------------------------------------

    async def _run(self, call: EmulatedCall, party: Party, webhooks: WebhookSender) -> None:
        async with asyncio.TaskGroup() as tasks:
            callbacks = StatusCallbacks(call, self._account_sid, webhooks)
            tasks.create_task(callbacks.drain(), name=f"twilio-callbacks-{call.sid}")
            if await self._pacer.dispatch(call):
                self._count_live(call)
                await self._progress(call, party, callbacks, webhooks, tasks)
            if call.status not in ENDED:
                record_status(call, "completed")
            callbacks.emit("completed")
            callbacks.close()
            logger.info("call ended call_sid=%s status=%s", call.sid, call.status)

    def _count_live(self, dispatched: EmulatedCall) -> None:
        """Concurrency only grows at a dispatch: count the live calls there, by status."""
        live = {sid: c for sid, c in self._live.items() if c.status not in ENDED}
        live[dispatched.sid] = dispatched
        self._live = live
        self.max_concurrent = max(self.max_concurrent, len(live))

    async def _progress(
        self,
        call: EmulatedCall,
        party: Party,
        callbacks: StatusCallbacks,
        webhooks: WebhookSender,
        tasks: asyncio.TaskGroup,
    ) -> None:
        """From the dispatch to the end of the call's TwiML (the call may end on the way)."""
        callbacks.emit("initiated")
        if party.kind == "failed":
            advance(call, "failed")
            return
        if await ended_within(call, CALL_SETUP_S) or not advance(call, "ringing"):
            return
        callbacks.emit("ringing")
        timeout_s = float(call.params.get("Timeout", DEFAULT_TIMEOUT_S))
        ring_s, outcome = party.ring_ms / 1000, party.kind
        if outcome == "no-answer" or ring_s > timeout_s:  # Twilio stops ringing at Timeout
            ring_s, outcome = min(ring_s, timeout_s), "no-answer"
        if await ended_within(call, ring_s):
            return
        if outcome != "answer":
            advance(call, outcome)
            return
        if not advance(call, "in-progress"):
            return
        callbacks.emit("answered")
        logger.info("call answered call_sid=%s", call.sid)
        detection = call.params.get("MachineDetection")
        if detection in _AMD_MODES and call.params.get("AsyncAmd") == "true":
            tasks.create_task(self._post_amd(call, party, webhooks), name=f"twilio-amd-{call.sid}")
        elif detection in _AMD_MODES:  # synchronous: the TwiML waits for the verdict
            if await ended_within(call, party.amd_after_ms / 1000):
                return
            call.answered_by = party.answered_by
        await self._run_twiml(call, party, webhooks)
        advance(call, "completed")

    async def _post_amd(self, call: EmulatedCall, party: Party, webhooks: WebhookSender) -> None:
        if await ended_within(call, party.amd_after_ms / 1000):
            return
        call.answered_by = party.answered_by
        url = call.params.get("AsyncAmdStatusCallback")
        if url:
            params = {
                "AccountSid": self._account_sid, "AnsweredBy": party.answered_by,
                "CallSid": call.sid, "MachineDetectionDuration": str(party.amd_after_ms),
            }  # fmt: skip
            method = str(call.params.get("AsyncAmdStatusCallbackMethod", "POST"))
            await webhooks.send(call, "amd", str(url), params, method)

    async def _run_twiml(self, call: EmulatedCall, party: Party, webhooks: WebhookSender) -> None:
        """Run the call's TwiML, and each redirect's, until one ends the call."""
        index = 0
        while call.status not in ENDED:
            seen = len(call.redirects)
            document = await self._fetch_twiml(call, webhooks)
            if call.status in ENDED or len(call.redirects) != seen:
                continue  # ended, or redirected while the TwiML was on its way
            if document is None:
                return
            call.twiml_run.append(document)
            plan = plan_twiml(document)
            if plan.error is not None:
                call.errors.append(plan.error)
            if plan.unemulated:
                logger.info("TwiML not emulated call_sid=%s verbs=%s", call.sid, plan.unemulated)
                call.unemulated.append(document)
            if plan.stream is None:
                return
            target = StreamTarget(
                url=plan.stream.url, parameters=plan.stream.parameters, call_sid=call.sid,
                account_sid=self._account_sid,
                headers=MappingProxyType(
                    {"X-Twilio-Signature": sign(self._auth_token, plan.stream.url, {})}
                ),
                index=index, hangup=asyncio.Event(),
            )  # fmt: skip
            index += 1
            call.streams.append(target)
            call.stream_hangup = target.hangup  # no await since the check: no redirect lost
            await self._play(call, party, target)
            call.stream_hangup = None
            if len(call.redirects) == seen:
                return  # the callee hung up, or the app closed the stream

    async def _fetch_twiml(self, call: EmulatedCall, webhooks: WebhookSender) -> str | None:
        if call.twiml is not None:
            return call.twiml
        if call.url is None:  # ApplicationSid: no application to ask
            call.errors.append("21205 no Url or Twiml to run (applications are not emulated)")
            return None
        params = {
            "AccountSid": self._account_sid, "ApiVersion": "2010-04-01", "CallSid": call.sid,
            "CallStatus": "in-progress", "Called": call.to, "Caller": call.from_,
            "Direction": call.direction, "From": call.from_, "To": call.to,
        }  # fmt: skip
        if call.answered_by is not None:  # synchronous AMD only
            params["AnsweredBy"] = call.answered_by
        document = await webhooks.send(call, "twiml", call.url, params, call.method)
        if document is None:
            call.errors.append("11200 HTTP retrieval failure")
        return document

    async def _play(self, call: EmulatedCall, party: Party, target: StreamTarget) -> None:
        """Run the callee on ``target`` until it returns; when the call ends meanwhile, tell it
        to hang up and give it ``HANGUP_GRACE_S`` to do so."""
        session = self._session
        assert session is not None
        callee = party.callee or SilentCallee(session)
        playing = asyncio.create_task(
            _guarded(callee, target, call), name=f"twilio-callee-{call.sid}-{target.index}"
        )
        ending = asyncio.create_task(call.ended.wait(), name=f"twilio-ending-{call.sid}")
        try:
            await asyncio.wait({playing, ending}, return_when=asyncio.FIRST_COMPLETED)
            if not playing.done():
                target.hangup.set()
                await asyncio.wait({playing}, timeout=HANGUP_GRACE_S)
        finally:
            for task in (playing, ending):
                task.cancel()
            await asyncio.gather(playing, ending, return_exceptions=True)


async def _guarded(callee: Callee, target: StreamTarget, call: EmulatedCall) -> None:
    """The callee's failure (the app unreachable, a bug in a test's callee) is the call's
    error, as Twilio logs a stream that failed, and never the emulator's."""
    try:
        await callee(target)
    except Exception as exc:
        logger.warning("stream %d failed call_sid=%s: %r", target.index, call.sid, exc)
        call.errors.append(f"stream {target.index}: {exc!r}")
