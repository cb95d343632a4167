"""After the call: its outcome and summary into the call record, and the end-of-call webhook.

When a call's session is over (``SessionDeps.on_ended``, after the record's final write),
``CallEndReport`` asks ``agent.call.summary`` for the outcome and summary, puts them on the record
and, in one store transaction, on the call's row together with the webhook's job (the row's
id is the call sid: one webhook per call). From then on the job is the database's: a
``CallWebhookSender`` (started with the server, any number per database) claims due jobs and
POSTs them until the receiver answers 2xx, backing off between attempts (``first_retry_s``,
doubling, at most ``MAX_RETRY_S``) up to ``max_attempts``; a restart loses none.

The same sender delivers every event of that outbox (``agent.store.call_webhooks``): the
waitlist's ``waitlist.added`` (``agent.waitlist``) goes to the same URL the same way, with its
entry's id as the key.

The request (also in README, "End-of-call webhook")::

    POST <call_webhook.url>
    Content-Type: application/json
    Idempotency-Key: <call sid>            the same on every attempt: dedupe on it
    X-Slotline-Event: call.ended           (waitlist.added: Idempotency-Key is the entry's id)
    X-Slotline-Attempt: <1, 2, ...>
    X-Slotline-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

The body is the same bytes on every attempt; only the signature's time changes. It is signed
with ``SLOTLINE_WEBHOOK_SECRET`` (``providers.signing``, as custom actions are); with no secret
set the requests go unsigned and the server says so at start-up.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import orjson

from slotline.agent.call.calllog import CallRecord
from slotline.agent.call.summary import FlowShape, Summarizer, flow_shape
from slotline.agent.config_models import CallWebhookSettings
from slotline.agent.flow import Flow
from slotline.agent.store import Store, utc_now
from slotline.agent.store.call_webhooks import CallWebhookJob
from slotline.providers import signing
from slotline.providers.base import ResourceContext
from slotline.providers.telephony.twilio_media import Start

log = logging.getLogger(__name__)

EVENT = "call.ended"
OnEnded = Callable[[Start, CallRecord], Awaitable[None]]
# Back-off ceiling: a receiver down for a day still hears every call, an hour after it is back
# at worst, without a busy retry loop meanwhile.
MAX_RETRY_S = 3600.0
# Idle poll: new jobs of this process wake the sender at once; this only finds other processes'
# jobs and retries whose time came (the sender also sleeps just until the next retry is due).
DEFAULT_POLL_S = 15.0
BATCH_SIZE = 8  # sent concurrently; each waits at most timeout_s
# On shutdown, sends in flight may finish for this long; then they are cut off and their jobs
# handed back (due at once for the next server).
CLOSE_GRACE_S = 2.0
_ERROR_CHARS = 200


def fan_out(*hooks: OnEnded | None) -> OnEnded:
    """One ``on_ended`` calling each hook in turn; one failing does not skip the others."""
    present = tuple(hook for hook in hooks if hook is not None)

    async def each(start: Start, record: CallRecord) -> None:
        for hook in present:
            try:
                await hook(start, record)
            except Exception:
                log.exception("call-end hook failed call_sid=%s", record.call_sid)

    return each


def call_payload(
    record: CallRecord, bookings: list[dict[str, Any]], *, summary_by: str,
    recording_url: str | None = None,
) -> dict[str, Any]:
    """The webhook's body: the call record as a receiver wants it (README has the shape)."""
    started = datetime.fromisoformat(record.started_at)
    ended = datetime.fromisoformat(record.ended_at) if record.ended_at else None
    latencies = [turn.latency.turn_latency_ms for turn in record.turns
                 if turn.role == "agent" and turn.latency is not None]
    return {
        "event": EVENT,
        "call_sid": record.call_sid,
        "direction": record.direction,
        "flow": record.flow,
        "status": record.status,
        "outcome": record.outcome,
        "summary": record.call_summary,
        "summary_by": summary_by,
        "node": record.node,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "duration_s": round((ended - started).total_seconds(), 1) if ended else None,
        "campaign_id": record.campaign_id,
        "contact_id": record.contact_id,
        "transcript": [{"role": turn.role, "text": turn.text, "interrupted": turn.interrupted,
                        "started_at": turn.started_at} for turn in record.turns],
        "variables": dict(record.variables),
        "bookings": bookings,
        "errors": list(record.errors),
        "latency": {
            "turns": len(latencies),
            "turn_latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
            "turn_latency_ms_max": round(max(latencies), 1) if latencies else None,
        },
        "recording_url": recording_url or None,
    }


class CallEndReport:
    """The ``on_ended`` hook: outcome and summary into the record and the store; the webhook's
    job enqueued in the same transaction (module doc)."""

    def __init__(
        self,
        store: Store,
        summarizer: Summarizer,
        shape_of: Callable[[str], FlowShape | None],
        sender: CallWebhookSender | None,
        recordings_at: str | None = None,
    ) -> None:
        self._store = store
        self._recordings_at = recordings_at
        self._summarizer = summarizer
        self._shape_of = shape_of
        self._sender = sender

    async def __call__(self, start: Start, record: CallRecord) -> None:
        result = await self._summarizer.summarize(record, self._shape_of(record.flow))
        record.outcome, record.call_summary = result.outcome, result.summary
        payload = None
        if self._sender is not None:
            bookings = []
            for booking_id in record.bookings:
                found = await self._store.bookings.get(booking_id)
                bookings.append(found.as_json() if found is not None else {"id": booking_id})
            body = call_payload(record, bookings, summary_by=result.by,
                                recording_url=self._recording_url(record.call_sid))
            payload = orjson.dumps(body).decode()
        added = await self._store.call_webhooks.record_outcome(
            record.call_sid, outcome=result.outcome, summary=result.summary, payload=payload
        )
        log.info("call_sid=%s outcome=%s (summary by %s)%s", record.call_sid, result.outcome,
                 result.by, "; webhook queued" if added else "")
        if added and self._sender is not None:
            self._sender.wake()


    def _recording_url(self, call_sid: str) -> str | None:
        """Where the API serves the call's WAV (``agent.server.recording_store`` writes it just
        after the call; a call too short to record answers 404 there)."""
        if self._recordings_at is None:
            return None
        return f"{self._recordings_at}/api/calls/{call_sid}/recording"


def retry_after_s(attempts: int, first_retry_s: float) -> float:
    """The wait after the ``attempts``-th failed attempt: doubling from ``first_retry_s``."""
    return min(first_retry_s * 2.0 ** max(attempts - 1, 0), MAX_RETRY_S)


class CallWebhookSender(ResourceContext):
    """Claims and POSTs due webhook jobs until closed (module doc)."""

    def __init__(
        self,
        store: Store,
        settings: CallWebhookSettings,
        *,
        secret: str | None,
        session: Callable[[], aiohttp.ClientSession],
        worker_id: str = "",
        poll_s: float = DEFAULT_POLL_S,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if not settings.url:
            raise ValueError("call_webhook.url is not set")
        self._store = store
        self._settings = settings
        self._secret = secret
        self._session = session
        self.worker_id = worker_id or f"call-webhook-{uuid.uuid4().hex[:12]}"
        self._poll_s = poll_s
        self._clock = clock
        # a claim outlasts the POST it covers many times over
        self._lease_s = max(60.0, 4 * settings.timeout_s)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the call webhook sender is already running")
        if not self._secret:
            log.warning("call_webhook: SLOTLINE_WEBHOOK_SECRET is not set; webhooks go unsigned")
        self._stopping = False
        self._unlisten = self._store.call_webhooks.on_queued(self.wake)
        self._task = asyncio.create_task(self._run(), name=f"{self.worker_id}")

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        self._stopping = True
        self._wake.set()
        done, _ = await asyncio.wait({task}, timeout=CLOSE_GRACE_S)
        if not done:
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            log.error("call webhook sender stopped on %r", task.exception())

    async def run_once(self) -> int:
        """Claim one batch of due jobs and send them; how many were claimed."""
        jobs = await self._store.call_webhooks.claim_due(
            self.worker_id, limit=BATCH_SIZE, lease_s=self._lease_s
        )
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(self._send(job), name=f"webhook-{job.event}-{job.id}")
        return len(jobs)

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                claimed = await self.run_once()
                idle_s = 0.0 if claimed == BATCH_SIZE else await self._idle_s()
            except Exception as exc:  # the store is unreachable: try again at the next poll
                log.warning("call webhook sender: %s", type(exc).__name__)
                idle_s = self._poll_s
            if idle_s > 0 and not self._stopping:
                try:
                    await asyncio.wait_for(self._wake.wait(), idle_s)
                except TimeoutError:
                    pass

    async def _idle_s(self) -> float:
        """Until the next retry falls due, at most ``poll_s``."""
        due = await self._store.call_webhooks.next_due_at()
        if due is None:
            return self._poll_s
        return min(max((due - self._clock()).total_seconds(), 0.01), self._poll_s)

    async def _send(self, job: CallWebhookJob) -> None:
        repo = self._store.call_webhooks
        what = _subject(job)
        try:
            error = await self._post(job)
        except asyncio.CancelledError:  # shutting down mid-POST: hand the job back untried
            await asyncio.shield(repo.release(job.id, self.worker_id))
            raise
        if error is None:
            await repo.mark_delivered(job.id, self.worker_id)
            log.info("%s webhook delivered (attempt %d)", what, job.attempts)
        elif job.attempts >= self._settings.max_attempts:
            await repo.give_up(job.id, self.worker_id, error)
            log.error("%s webhook given up after %d attempts: %s", what, job.attempts, error)
        else:
            wait_s = retry_after_s(job.attempts, self._settings.first_retry_s)
            await repo.retry_later(job.id, self.worker_id,
                                   at=self._clock() + timedelta(seconds=wait_s), error=error)
            log.warning("%s webhook attempt %d failed (%s); retry in %.0f s",
                        what, job.attempts, error, wait_s)

    async def _post(self, job: CallWebhookJob) -> str | None:
        """One attempt; None when the receiver acknowledged it (2xx), else what went wrong."""
        body = job.payload.encode()
        headers = self._headers(job, body)
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout_s)
        try:
            async with self._session().post(self._settings.url, data=body, headers=headers,
                                            timeout=timeout, allow_redirects=False) as response:
                await response.read()
                status = response.status
        except TimeoutError:
            return f"no answer in {self._settings.timeout_s:g} s"
        except aiohttp.ClientError as exc:
            return f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
        return None if 200 <= status < 300 else f"HTTP {status}"

    def _headers(self, job: CallWebhookJob, body: bytes) -> Mapping[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": job.id,
            "X-Slotline-Event": job.event,
            "X-Slotline-Attempt": str(job.attempts),
        }
        if self._secret:
            headers[signing.HEADER] = signing.signature(self._secret, body)
        return headers


def _subject(job: CallWebhookJob) -> str:
    """A job in a log line: a call's by its sid, as every line of a call is."""
    return f"call_sid={job.id} call" if job.event == EVENT else f"{job.event} {job.id}"


def build_call_end(
    store: Store,
    settings: CallWebhookSettings,
    summarizer: Summarizer,
    flows: Mapping[str, Flow],
    *,
    secret: str | None,
    session: Callable[[], aiohttp.ClientSession],
    recordings_at: str | None = None,
) -> tuple[CallEndReport, CallWebhookSender | None]:
    """The server's ``on_ended`` part and its sender (None: no ``call_webhook.url``).
    ``recordings_at``: the API's base URL when calls are recorded ("": a path only; None: not
    recorded), for the payload's ``recording_url``.
    ``flows``: the flows loaded so far by file name (the lookup is by the flow's own name, as
    the call record has it; a flow not among them is summarised without its shape)."""
    sender = (CallWebhookSender(store, settings, secret=secret, session=session)
              if settings.url else None)
    shapes: dict[str, FlowShape] = {}

    def shape_of(name: str) -> FlowShape | None:
        if name not in shapes:
            flow = next((f for f in list(flows.values()) if f.name == name), None)
            if flow is None:
                return None
            shapes[name] = flow_shape(flow)
        return shapes[name]

    return CallEndReport(store, summarizer, shape_of, sender, recordings_at), sender
