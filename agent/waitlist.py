"""The waitlist: a caller no offered time suits is kept, and the business is told.

Three doors, one rule (``Waitlist.add``):

- a flow, with the built-in action ``waitlist`` (a ``webhook`` node answered in-process by
  ``WaitlistAction``, as ``find_booking`` is): it sends ``user_name``, ``user_phone`` (empty:
  the number the call came from), ``user_email``, ``user_timezone``, ``booking_action`` and
  ``waitlist_preference`` (what the caller asked for, e.g. "Tuesday afternoon"; else
  ``preferred_date`` / ``preferred_time`` / ``time_of_day`` joined) and receives
  ``waitlist_id``. Typically a booking node's ``failure`` edge (nothing free) leads there::

      book:  {type: booking, action: demo, success: booked, failure: offer}
      offer: {type: conversation, say: "Shall I put you on our waitlist?", collect: join,
              extractor: yes_no, next: decide}
      decide: {type: branch, conditions: [{variable: join, equals: "yes", goto: add}],
               default: bye}
      add:   {type: webhook, webhook: waitlist, send: [user_name], receive: [waitlist_id],
              success: listed, failure: bye}

- the API: ``GET/POST /api/waitlist``, ``DELETE /api/waitlist/{id}``
(``agent.server.waitlist_api``);
- each new entry is POSTed as the event ``waitlist.added`` to ``call_webhook.url`` (the receiver
  of ``call.ended``): ``X-Slotline-Event: waitlist.added``, ``Idempotency-Key: <entry id>``,
  ``X-Slotline-Attempt``, signed with ``SLOTLINE_WEBHOOK_SECRET`` as every Slotline webhook;
  body ``{"event": "waitlist.added", "entry": {...}}``. Durable as ``call.ended`` is: the event
  is queued in the store with the entry (one transaction) and the call webhook's sender
  (``agent.call.webhook``, one per server process, any number per database) claims it, POSTs it
  and backs off between failed tries up to ``call_webhook.max_attempts``; a restart or a
  receiver down for hours loses none, and a delivered event is not sent again. Each entry shows
  where its event stands (``webhook_status``: ``pending``, ``sent``, ``failed: <reason>``, or
  ``off`` with no URL; ``webhook``: attempts, next attempt, last error).

Only a person's name, number and e-mail are kept; logs mask them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
from sqlalchemy.exc import SQLAlchemyError

from slotline.agent.config_models import Secrets, Settings
from slotline.agent.flow.messages import CallWebhook, WebhookFinished
from slotline.agent.flow.responder import WebhookRunner
from slotline.agent.logs import mask
from slotline.agent.store import Store
from slotline.agent.store.waitlist import NewWaitlistEntry, WaitlistEntry

logger = logging.getLogger(__name__)

ACTION = "waitlist"  # the built-in flow action's name
EVENT = "waitlist.added"
_PREFERENCE_PARTS = ("preferred_date", "time_of_day", "preferred_time")


def event_payload(entry: WaitlistEntry) -> str:
    """The event's body, the same bytes on every attempt."""
    return orjson.dumps({"event": EVENT, "entry": entry.details()}).decode()


class WaitlistEvents:
    """Whether ``waitlist.added`` is sent: ``url`` "" = off. The call webhook's sender sends
    it (to ``call_webhook.url``, signed with its secret)."""

    def __init__(self, url: str) -> None:
        self.on = bool(url)

    @classmethod
    def from_settings(cls, settings: Settings, secrets: Secrets | None = None) -> WaitlistEvents:
        """``secrets``: unused here (the sender signs with ``SLOTLINE_WEBHOOK_SECRET``)."""
        return cls(str(settings.call_webhook.url or ""))


class Waitlist:
    def __init__(self, store: Store, events: WaitlistEvents) -> None:
        self._store = store
        self._events = events

    async def add(self, new: NewWaitlistEntry) -> tuple[WaitlistEntry, bool]:
        """Keep the entry (once per call and action), its event queued with a new one; this
        process's sender is woken for it (another process's finds it at its next poll)."""
        event = (EVENT, event_payload) if self._events.on else None
        entry, created = await self._store.waitlist.add(new, event=event)
        if created:
            if event is not None:
                self._store.call_webhooks.queued()
            logger.info("waitlist: %s added (%s, %s) for %r; event %s", entry.id,
                        mask(entry.phone), mask(entry.email), entry.action, entry.webhook_status)
        return entry, created


def preference_of(variables: Mapping[str, str]) -> str:
    said = variables.get("waitlist_preference", "").strip()
    if said:
        return said
    return " ".join(v for k in _PREFERENCE_PARTS if (v := variables.get(k, "").strip()))


class WaitlistAction:
    """The call's ``WebhookRunner``: ``waitlist`` answered here, every other action by
    ``others``."""

    def __init__(self, waitlist: Waitlist, others: WebhookRunner, *, call_sid: str,
                 caller_phone: str = "") -> None:
        self._waitlist = waitlist
        self._others = others
        self._call_sid = call_sid
        self._caller_phone = caller_phone

    async def call(self, request: CallWebhook) -> WebhookFinished:
        if request.webhook != ACTION:
            return await self._others.call(request)
        values = request.variables
        new = NewWaitlistEntry(
            action=values.get("booking_action", ""),
            name=values.get("user_name", ""),
            phone=values.get("user_phone", "") or self._caller_phone,
            email=values.get("user_email", ""),
            timezone=values.get("user_timezone", ""),
            preference=preference_of(values),
            notes=values.get("notes", ""),
            source="voice",
            call_sid=self._call_sid,
        )
        if not (new.phone or new.email):
            return WebhookFinished(request.node_id, False,
                                   reason="no phone number or e-mail to reach the caller by")
        try:
            entry, _ = await self._waitlist.add(new)
        except SQLAlchemyError as failed:  # the flow takes its failure edge; the call goes on
            logger.error("call_sid=%s waitlist: could not add: %s", self._call_sid,
                         type(failed).__name__)
            return WebhookFinished(request.node_id, False, reason="the waitlist is unavailable")
        return WebhookFinished(request.node_id, True, {"waitlist_id": entry.id})
