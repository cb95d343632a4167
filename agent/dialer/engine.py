"""The dialer: places the calls of running campaigns, and settles what Twilio tells of them.

Every server process runs one ``Dialer`` (an ``AsyncResource`` started with the app). It:

- claims contacts (``CampaignRepo.claim``: pacing, concurrency, calling windows and the
  do-not-call list are decided there, in the database, so any number of workers and servers
  sharing it dial as one) and places each call through Twilio's REST API with async AMD and
  status callbacks pointing back at ``/twilio/*``;
- hears those callbacks (``on_status``, ``on_amd`` — from any process: whichever worker the
  callback reaches acts on the store) and the end of each call's media session
  (``on_session_ended``), and settles attempts (``AttemptRepo.settle``);
- on a machine verdict hangs up or redirects the call to the voicemail stream;
- reconciles: attempts a killed process left behind (no status for a while) are looked up with
  ``GET Calls/{sid}`` and settled from Twilio's answer; an attempt claimed but never confirmed
  by Twilio is counted as failed (so a contact is never dialled more often than it is allowed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from slotline.agent.call.calllog import CallRecord
from slotline.agent.dialer.outcomes import FINAL_STATUSES, is_machine
from slotline.agent.dialer.spec import CampaignSpec
from slotline.agent.dialer.twiml import voicemail_text, voicemail_twiml
from slotline.agent.logs import mask
from slotline.agent.server.stream_token import StreamTokens
from slotline.agent.store import Store
from slotline.agent.store.dialer_records import AttemptRow, Claimed, Settled, Wait
from slotline.providers.errors import ProviderError
from slotline.providers.telephony.twilio_media import Start
from slotline.providers.telephony.twilio_rest import TwilioRest

log = logging.getLogger(__name__)

# How often a dialer looks for work when nothing says sooner: a resumed or new campaign made
# by another process is picked up within this.
_POLL_S: Final = 1.0
_RECONCILE_EVERY_S: Final = 10.0
# An attempt whose row has not moved for this long is asked about (GET Calls/{sid}).
_IDLE_S: Final = 20.0
# A claim whose create request never came back (the process died mid-request) after this.
_UNCONFIRMED_S: Final = 60.0
_STATUS_EVENTS: Final = ("initiated", "ringing", "answered", "completed")
# Claim this long before a pacing slot opens (at most half the gap between dials), and dial
# at the slot: the claim's database round trip (~10 ms, more with several workers contending
# for the campaign's row) then no longer stretches every gap (bench/campaign.py).
_CLAIM_LEAD_S: Final = 0.05


@dataclass(frozen=True, slots=True)
class DialerConfig:
    from_number: str
    callback_base: str  # http(s)://host[:port] Twilio reaches us at ("" = set when serving)
    worker: str = f"{socket.gethostname()}:{os.getpid()}"
    # the voicemail stream's token (agent.server.stream_token); None: the server checks no tokens
    stream_tokens: StreamTokens | None = None


def utc_now() -> datetime:
    return datetime.now(UTC)


class Dialer:
    def __init__(
        self,
        store: Store,
        rest: TwilioRest | None,
        config: DialerConfig,
        *,
        clock: Callable[[], datetime] = utc_now,
        on_settled: Callable[[Settled], None] | None = None,
        flow_exists: Callable[[str], bool] = lambda name: True,
    ) -> None:
        self.flow_exists = flow_exists  # a campaign's flow name, checked before it is created
        self._store = store
        self._rest = rest
        self._config = config
        self._clock = clock
        self._callback_base = config.callback_base.rstrip("/")
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._on_settled = on_settled

    # ---- where Twilio reaches us ---------------------------------------------------------

    @property
    def callback_base(self) -> str:
        return self._callback_base

    def serving_at(self, base_url: str) -> None:
        """The server's own address, once bound, when no public URL was configured."""
        if not self._callback_base:
            self._callback_base = base_url.rstrip("/")

    def url(self, path: str) -> str:
        return f"{self._callback_base}{path}"

    def stream_url(self) -> str:
        base = self._callback_base
        scheme = "wss" if base.startswith("https://") else "ws"
        return f"{scheme}://{base.partition('://')[2]}/twilio/media"

    @property
    def can_dial(self) -> bool:
        return self._rest is not None and bool(self._config.from_number)

    def why_not(self) -> str:
        if self._rest is None:
            return "outbound calls need TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
        return "outbound calls need twilio.from_number (the number calls come from)"

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self.can_dial:
            self._loop_task = asyncio.create_task(self._run(), name="dialer")

    async def aclose(self) -> None:
        tasks = [t for t in (self._loop_task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Look for work now (a campaign was created or resumed)."""
        self._wake.set()

    # ---- dialling ---------------------------------------------------------------------------

    async def _run(self) -> None:
        next_reconcile = 0.0
        loop = asyncio.get_running_loop()
        while True:
            if loop.time() >= next_reconcile:
                await self._guarded(self.reconcile())
                next_reconcile = loop.time() + _RECONCILE_EVERY_S
            delay_s = _POLL_S
            try:
                delay_s = min(delay_s, await self._dial_due())
            except Exception:  # a database hiccup: log, wait, try again
                log.exception("dialer: claiming failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(delay_s, 0.005))

    async def _dial_due(self) -> float:
        """Dial every contact due now; seconds until something may be due next."""
        delay_s = _POLL_S
        for campaign in await self._store.campaigns.all(("running",)):
            spec = CampaignSpec.model_validate(dict(campaign.settings))
            window = spec.window.window()
            while True:
                claim = await self._store.campaigns.claim(
                    campaign.id, worker=self._config.worker, next_open=window.next_open,
                    lead_s=min(_CLAIM_LEAD_S, 0.5 / spec.cps),
                )
                if isinstance(claim, Wait):
                    if claim.until is not None:
                        wait_s = (claim.until - self._clock()).total_seconds()
                        delay_s = min(delay_s, max(wait_s, 0.0))
                    break
                self._spawn(self._dial(claim, spec))
        return delay_s

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name="dial")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dial(self, claim: Claimed, spec: CampaignSpec) -> None:
        attempt = claim.attempt
        early_s = (claim.dial_at - self._clock()).total_seconds()
        if early_s > 0:  # claimed ahead of its pacing slot
            await asyncio.sleep(early_s)
        log.info("dialing %s campaign=%s attempt=%s (#%d)", mask(attempt.phone),
                 attempt.campaign_id, attempt.id, attempt.number)
        await self._guarded(self.place(attempt, ring_timeout_s=spec.ring_timeout_s))

    async def place(self, attempt: AttemptRow, *, ring_timeout_s: int = 30) -> str | None:
        """Create the attempt's call at Twilio; its sid, or None when the create failed (the
        attempt is then settled as failed, and retried if its contact may be)."""
        assert self._rest is not None
        try:
            sid = await self._rest.create_call(
                attempt.phone,
                self._config.from_number,
                self.url(f"/twilio/voice?attempt={attempt.id}"),
                status_callback=self.url("/twilio/status"),
                status_callback_events=_STATUS_EVENTS,
                machine_detection="DetectMessageEnd",
                async_amd=True,
                async_amd_status_callback=self.url("/twilio/amd"),
                timeout_s=ring_timeout_s,
            )
        except ProviderError as exc:
            log.warning("dial failed attempt=%s: %s", attempt.id, exc)
            await self._settled(await self._store.attempts.settle(
                attempt.id, dial_error=f"Twilio refused the call: {exc}"[:300]))
            return None
        await self._store.attempts.dialed(attempt.id, sid)
        return sid

    # ---- what Twilio and the sessions say ---------------------------------------------------

    async def on_status(self, params: Mapping[str, str]) -> None:
        """A ``/twilio/status`` callback (already signature-checked)."""
        call_sid, status = params.get("CallSid", ""), params.get("CallStatus", "")
        if not call_sid or not status:
            return
        event = {k: params[k] for k in ("CallStatus", "SequenceNumber", "Timestamp",
                                        "CallDuration") if k in params}
        duration = params.get("CallDuration", "")
        attempt = await self._store.attempts.record_status(
            call_sid, status, event=event,
            duration_s=int(duration) if duration.isdigit() else None,
        )
        if attempt is not None and status in FINAL_STATUSES:
            await self._settled(await self._store.attempts.settle(attempt.id))

    async def on_amd(self, params: Mapping[str, str]) -> None:
        """The async AMD verdict: a machine gets the campaign's choice, a person nothing."""
        call_sid, answered_by = params.get("CallSid", ""), params.get("AnsweredBy", "")
        if not call_sid or not answered_by:
            return
        attempt = await self._store.attempts.record_answered_by(call_sid, answered_by)
        if attempt is None or not is_machine(answered_by) or attempt.settled_at is not None:
            return
        spec = await self._spec_of(attempt)
        message = voicemail_text(spec.voicemail_message, attempt.variables) if spec else ""
        leave_message = (spec is not None and spec.machine == "voicemail" and bool(message)
                         and answered_by.startswith("machine_end"))
        action = "voicemail" if leave_message else "hangup"
        await self._store.attempts.record_machine_action(attempt.id, action)
        log.info("call_sid=%s answered by %s: %s", call_sid, answered_by, action)
        if self._rest is None:
            return
        try:
            if leave_message:
                tokens = self._config.stream_tokens
                token = tokens.issue(call_sid) if tokens is not None else ""
                await self._rest.redirect(call_sid, voicemail_twiml(
                    self.stream_url(), attempt, message, token=token))
            else:
                await self._rest.hangup(call_sid)
        except ProviderError as exc:
            log.warning("call_sid=%s could not %s: %s", call_sid, action, exc)

    async def on_session_ended(self, start: Start, record: CallRecord) -> None:
        """A media session of an outbound call is over (``SessionDeps.on_ended``)."""
        attempt_id = start.custom_parameters.get("attempt", "")
        if not attempt_id:
            return
        await self._store.attempts.session_ended(attempt_id, record.status)
        await self._settled(await self._store.attempts.settle(attempt_id))

    async def _spec_of(self, attempt: AttemptRow) -> CampaignSpec | None:
        if not attempt.campaign_id:
            return None
        campaign = await self._store.campaigns.get(attempt.campaign_id)
        return None if campaign is None else CampaignSpec.model_validate(dict(campaign.settings))

    async def _settled(self, settled: Settled | None) -> None:
        if settled is None:
            return
        attempt = settled.attempt
        log.info("attempt %s settled: %s%s%s", attempt.id, settled.outcome,
                 f" ({settled.reason})" if settled.reason else "",
                 f"; retry at {settled.retry_at.isoformat()}" if settled.retry_at else "")
        if self._on_settled is not None:
            self._on_settled(settled)
        self.wake()  # a slot is free

    # ---- reconciling ------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Settle what callbacks left undone (see the module doc)."""
        now = self._clock()
        for attempt in await self._store.attempts.unsettled(idle_s=_IDLE_S):
            if attempt.call_sid is None:
                if now - attempt.started_at >= timedelta(seconds=_UNCONFIRMED_S):
                    await self._settled(await self._store.attempts.settle(
                        attempt.id,
                        dial_error="the dialer stopped before Twilio confirmed the call"))
                continue
            if attempt.final_at is None and self._rest is not None:
                try:
                    state = await self._rest.fetch_call(attempt.call_sid)
                except ProviderError as exc:
                    log.warning("reconcile: GET call %s failed: %s", attempt.call_sid, exc)
                    continue
                if state.answered_by and not attempt.answered_by:
                    await self._store.attempts.record_answered_by(attempt.call_sid,
                                                                  state.answered_by)
                await self._store.attempts.record_status(
                    attempt.call_sid, state.status,
                    event={"CallStatus": state.status, "source": "fetched"},
                    duration_s=state.duration_s,
                )
            await self._settled(await self._store.attempts.settle(attempt.id))

    async def _guarded(self, work: Awaitable[object]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dialer step failed")
