"""The booking service: availability over a pool of calendars, then booking exactly once.

Availability: every pooled calendar is asked for its busy time at the same time, each under its
own timeout (``asyncio.timeout``), so the look-up costs the slowest calendar's answer or its
timeout, never the sum. A failing calendar is reported and left out, or fails the look-up
(``ActionConfig.skip_failed_calendars``; always fatal for ``collective``, which needs everyone).
Busy time, other callers' live holds and daily-limit counts feed ``available_slots`` per
calendar, then ``pool`` (round-robin counts from the store), then ``propose``.

Booking: the idempotency key is a hash of (call, slot start, action), plus the calendar, so a
retried request finds the booking already made. The time is held in the store, written at the
calendar (the ``local`` one is the store's guarded insert), and recorded in the bookings table.
If the calendar says the time is gone, the next free calendar of the pool is tried; if none is
left, nothing was booked and fresh alternatives come back (``SlotUnavailable``). Rescheduling
books the new time before cancelling the old (or moves it in one write where the calendar can),
so a confirmed booking is never lost.
"""

from __future__ import annotations

import asyncio
import logging
import time as monotonic
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from slotline.agent import tracing
from slotline.agent.booking import attendees, finding
from slotline.agent.booking.availability import available_slots
from slotline.agent.booking.finding import FoundBooking
from slotline.agent.booking.intervals import Interval, Slot
from slotline.agent.booking.local_calendar import LocalCalendar
from slotline.agent.booking.pool import PackedSlots, PooledSlot, pool
from slotline.agent.booking.proposal import propose
from slotline.agent.booking.service_book import Booker, idempotency_key
from slotline.agent.booking.service_types import (
    ActionConfig,
    Availability,
    BookingDetails,
    BookingOutcome,
    CalendarFailure,
    CalendarHandle,
    Preference,
    SlotUnavailable,
)
from slotline.agent.booking.vendor_rules import vendor_slots_under_rules
from slotline.agent.booking.zones import load_zone
from slotline.agent.config_models import Settings
from slotline.agent.server.metrics import Metrics
from slotline.agent.store import BookingRecord, Store, utc_now
from slotline.providers.calendars.base import CalendarProvider, Rescheduler, SlotSource
from slotline.providers.errors import ConfigError, ProviderError, ProviderTimeout

logger = logging.getLogger(__name__)

_UPDATE_TIMEOUT_S = 10.0  # a booking whose action is no longer configured: a write's default

ANY_TIME = Preference()  # no preference: the earliest times, spread over the first open day


@dataclass(frozen=True, slots=True)
class _Busy:
    calendar: str
    intervals: tuple[Interval, ...]
    vendor_slots: tuple[Slot, ...] | None = None  # a ``SlotSource`` calendar's own slots


class BookingService:
    """Availability, booking, cancelling and rescheduling for the configured booking actions."""

    def __init__(
        self,
        store: Store,
        calendars: Mapping[str, CalendarHandle],
        actions: Mapping[str, ActionConfig],
        *,
        clock: Callable[[], datetime] = utc_now,
        metrics: Metrics | None = None,
    ) -> None:
        for action in actions.values():
            missing = [name for name in action.calendars if name not in calendars]
            if missing:
                raise ValueError(f"booking action {action.name!r}: no calendar {missing[0]!r}")
        self._store = store
        self._calendars = dict(calendars)
        self._actions = dict(actions)
        self._clock = clock
        self._metrics = metrics
        self._booker = Booker(store, self._calendars, clock, metrics)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: Store,
        adapters: Mapping[str, CalendarProvider] | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        metrics: Metrics | None = None,
    ) -> BookingService:
        """The service for ``settings``: ``adapters`` by calendar name; ``local`` calendars
        that have none get a ``LocalCalendar`` on ``store``."""
        handles: dict[str, CalendarHandle] = {}
        for name, calendar in settings.calendars.items():
            provider = (adapters or {}).get(name)
            if provider is None:
                if calendar.provider != "local":
                    raise ConfigError(
                        "settings", f"calendars.{name}.provider",
                        f"no {calendar.provider} adapter was given for this calendar",
                    )  # fmt: skip
                provider = LocalCalendar(store, name)
            handles[name] = CalendarHandle(name, provider, calendar.provider, calendar.timezone)
        actions = {
            name: ActionConfig.from_settings(name, action)
            for name, action in settings.booking_actions.items()
        }
        return cls(store, handles, actions, clock=clock, metrics=metrics)

    def action(self, name: str) -> ActionConfig:
        try:
            return self._actions[name]
        except KeyError:
            raise ValueError(f"no booking action {name!r}") from None

    # -- availability ----------------------------------------------------------------------------

    async def availability(
        self,
        action: str,
        preference: Preference = ANY_TIME,
        *,
        call_sid: str = "",
        ignore: BookingRecord | None = None,
    ) -> Availability:
        """Slots to offer for ``action``, nearest the caller's preference. ``call_sid``'s own
        holds do not block it; ``ignore`` (a booking being rescheduled) frees its own time."""
        began = monotonic.perf_counter()
        config = self.action(action)
        caller_tz = preference.timezone or self._calendars[config.calendars[0]].timezone
        now = self._clock()
        window_start, window_end = _window(config, preference, now, caller_tz)
        fetch_start = window_start - timedelta(minutes=config.buffer_before_min)
        fetch_end = window_end + timedelta(minutes=config.buffer_after_min)

        with tracing.availability(action) as span:
            async with asyncio.TaskGroup() as group:  # the calendars and our records at once
                fetched = group.create_task(self._fetch_busy(config, fetch_start, fetch_end))
                ours = group.create_task(self._store_view(config, fetch_start, fetch_end, call_sid))
            span.set_attribute("slotline.calendars_failed", len(fetched.result()[1]))
        busy, failures = fetched.result()
        holds, counts, assigned = ours.result()
        if failures and (
            not config.skip_failed_calendars or config.strategy == "collective" or not busy
        ):
            raise failures[0].error
        free_by_calendar: dict[str, list[Slot]] = {}
        for calendar in config.calendars:  # pool order
            if calendar not in busy:
                continue
            blocked = list(busy[calendar].intervals) + holds[calendar]
            if ignore is not None and ignore.calendar == calendar:
                own = Interval(ignore.start, ignore.end)
                blocked = [item for item in blocked if item != own]
            vendor_slots = busy[calendar].vendor_slots
            if vendor_slots is not None:  # the vendor's rules, then ours (vendor_rules)
                free_by_calendar[calendar] = vendor_slots_under_rules(
                    config.rules(self._calendars[calendar].timezone, vendor_slots=True),
                    vendor_slots,
                    blocked,
                    window_start=window_start,
                    window_end=window_end,
                    now=now,
                    existing_bookings_per_day=counts[calendar],
                )
                continue
            free_by_calendar[calendar] = available_slots(
                config.rules(self._calendars[calendar].timezone),
                window_start=window_start,
                window_end=window_end,
                now=now,
                busy=blocked,
                existing_bookings_per_day=counts[calendar],
            )
        offered = pool(config.strategy, free_by_calendar, assigned)
        by_slot = {item.slot: item for item in offered}
        chosen = propose(
            by_slot,
            preferred_date=preference.preferred_date,
            preferred_time=preference.preferred_time,
            time_of_day=preference.time_of_day,
            tz=caller_tz,
            limit=config.proposal_limit,
        )
        proposals = tuple(by_slot[slot] for slot in chosen)
        elapsed_ms = (monotonic.perf_counter() - began) * 1000.0
        if self._metrics is not None:
            self._metrics.observe_stage("booking", elapsed_ms / 1000.0)
        logger.info(
            "availability %s: %d slots, %d proposed, %d calendars failed, %.1f ms",
            action,
            len(offered),
            len(proposals),
            len(failures),
            elapsed_ms,
        )
        return Availability(
            action=action,
            timezone=caller_tz,
            proposals=proposals,
            offered=PackedSlots(offered),
            failures=tuple(failures),
            elapsed_ms=elapsed_ms,
        )

    async def _fetch_busy(
        self, config: ActionConfig, start: datetime, end: datetime
    ) -> tuple[dict[str, _Busy], list[CalendarFailure]]:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(
                    self._busy_of(
                        self._calendars[name], start, end, config.calendar_timeout_s,
                        config.duration_min,
                    ),
                    name=f"busy:{config.name}:{name}",
                )
                for name in config.calendars
            ]
        busy: dict[str, _Busy] = {}
        failures: list[CalendarFailure] = []
        for task in tasks:
            result = task.result()
            if isinstance(result, CalendarFailure):
                failures.append(result)
            else:
                busy[result.calendar] = result
        return busy, failures

    async def _busy_of(
        self,
        handle: CalendarHandle,
        start: datetime,
        end: datetime,
        timeout_s: float,
        duration_min: int,
    ) -> _Busy | CalendarFailure:
        began = monotonic.perf_counter()
        error: ProviderError
        provider = handle.provider
        try:
            async with asyncio.timeout(timeout_s):
                if isinstance(provider, SlotSource):
                    with tracing.calendar("free_slots", handle.name, handle.kind):
                        offered = await provider.free_slots(
                            start, end, duration_min, handle.timezone
                        )
                    slots = tuple(Slot(item.start, item.end) for item in offered)
                    return _Busy(handle.name, (), slots)
                with tracing.calendar("busy", handle.name, handle.kind):
                    answer = await provider.busy(start, end)
            return _Busy(handle.name, tuple(Interval(item.start, item.end) for item in answer))
        except TimeoutError:
            error = ProviderTimeout(
                handle.kind, f"calendar {handle.name}: no answer in {timeout_s} s"
            )
        except ValueError as bad:  # an interval the adapter should not have produced
            error = ProviderError(handle.kind, f"calendar {handle.name}: bad busy time ({bad})")
        except ProviderError as failed:
            error = failed
        elapsed_ms = (monotonic.perf_counter() - began) * 1000.0
        logger.warning("calendar %s (%s) left out: %s", handle.name, handle.kind, error)
        if self._metrics is not None:
            self._metrics.provider_errors.inc(handle.kind)
        return CalendarFailure(handle.name, error, elapsed_ms)

    async def _store_view(
        self,
        config: ActionConfig,
        start: datetime,
        end: datetime,
        call_sid: str,
    ) -> tuple[dict[str, list[Interval]], dict[str, Counter[date]], dict[str, int]]:
        """Other callers' live holds and booking counts per local day (our own records)."""
        names = config.calendars
        async with asyncio.TaskGroup() as group:
            holds_task = group.create_task(
                self._store.holds.live_on(names, start, end, exclude_owner=call_sid)
            )
            if config.daily_limit is not None:
                booked_task = group.create_task(
                    self._store.bookings.confirmed_on(names, start, end)
                )
            # the assignment counts order only a round robin's calendars: no read for the rest
            counts_task = (group.create_task(self._store.round_robin.counts(config.name))
                           if config.strategy == "round_robin" and len(names) > 1 else None)
        holds: dict[str, list[Interval]] = {name: [] for name in names}
        for hold in holds_task.result():
            holds[hold.calendar].append(Interval(hold.start, hold.end))
        counts: dict[str, Counter[date]] = {name: Counter() for name in names}
        if config.daily_limit is not None:
            for booking in booked_task.result():
                zone = load_zone(self._calendars[booking.calendar].timezone)
                counts[booking.calendar][booking.start.astimezone(zone).date()] += 1
        return holds, counts, {} if counts_task is None else counts_task.result()

    # -- booking ---------------------------------------------------------------------------------

    async def hold(self, action: str, choice: PooledSlot, *, call_sid: str) -> bool:
        """Hold an offered time for ``call_sid`` while the caller confirms (``book`` holds it
        anyway); False when another caller holds it."""
        return await self._booker.hold(self.action(action), choice, call_sid)

    async def book(
        self,
        action: str,
        choice: PooledSlot,
        details: BookingDetails,
        *,
        preference: Preference = ANY_TIME,
    ) -> BookingOutcome:
        """Book the chosen time once. If it was taken meanwhile, nothing is booked and the next
        alternatives (nearest the chosen time, in ``preference.timezone``) come back."""
        config = self.action(action)
        caller_tz = preference.timezone or self._calendars[config.calendars[0]].timezone
        with tracing.booking(action, config.strategy) as span:
            booked = await self._booker.book(config, choice, details, caller_tz)
            span.set_attribute(tracing.OUTCOME, "slot_taken" if booked is None else "booked")
        if booked is not None:
            return booked
        return await self._unavailable(config, choice.slot, preference, caller_tz, details.call_sid)

    async def _unavailable(
        self,
        config: ActionConfig,
        slot: Slot,
        preference: Preference,
        caller_tz: str,
        call_sid: str,
        ignore: BookingRecord | None = None,
    ) -> SlotUnavailable:
        local = slot.start.astimezone(load_zone(caller_tz))
        near = replace(
            preference, preferred_date=local.date(), preferred_time=local.time(), timezone=caller_tz
        )
        alternatives = await self.availability(config.name, near, call_sid=call_sid, ignore=ignore)
        kept = tuple(item for item in alternatives.proposals if item.slot != slot)
        alternatives = replace(
            alternatives,
            proposals=kept,
            offered=PackedSlots(item for item in alternatives.offered if item.slot != slot),
        )
        if self._metrics is not None:
            self._metrics.bookings.inc("slot_taken")
        return SlotUnavailable(slot, alternatives)

    # -- cancel and reschedule -------------------------------------------------------------------

    async def get_booking(self, booking_id: str) -> BookingRecord | None:
        """A booking by its id (the reference a caller reads back)."""
        return await self._store.bookings.get(booking_id)

    async def find_for_caller(
        self, *, phone: str, email: str,
        on_error: Callable[[ProviderError], None] | None = None,
    ) -> list[FoundBooking]:
        """The caller's bookings to come wherever they were made (``agent.booking.finding``):
        the store's and every vendor calendar's, each once, soonest first."""
        timeout_s = max((a.calendar_timeout_s for a in self._actions.values()), default=3.0)
        return await finding.find_bookings(
            self._store, self._calendars, self._clock(), phone=phone, email=email,
            timeout_s=timeout_s, on_error=on_error,
        )

    async def adopt(self, found: FoundBooking) -> BookingRecord:
        """The store's record of a found booking (written now if only the vendor had it), for
        ``cancel`` and ``reschedule`` to act on."""
        return await finding.adopt(self._store, found, tuple(self._actions.values()))

    async def upcoming_for_phone(self, phone: str, *, action: str = "") -> list[BookingRecord]:
        """The caller's confirmed bookings to come (of ``action``, if given), soonest first."""
        found = await self._store.bookings.for_phone(phone, ending_after=self._clock())
        return [item for item in found if not action or item.action == action]

    async def update_attendee(
        self, booking_id: str, *, name: str = "", email: str = ""
    ) -> BookingRecord | None:
        """A name or e-mail the caller gave after booking: onto the stored booking, then the
        vendor's where it allows (``agent.booking.attendees``); None when there is no such
        confirmed booking. A vendor's refusal raises its ``ProviderError`` (the store keeps
        the change)."""
        record = await self._store.bookings.get(booking_id)
        if record is None:
            return None
        action = self._actions.get(record.action)
        timeout_s = action.write_timeout_s if action is not None else _UPDATE_TIMEOUT_S
        attendee = attendees.merged(record.attendee, name=name, email=email)
        return await attendees.update_attendee(
            self._store, self._calendars.get(record.calendar), record, attendee, timeout_s
        )

    async def cancel(self, booking_id: str, reason: str = "") -> BookingRecord | None:
        """Cancel at the calendar and in the store (pending reminders dropped); None when there
        is no such booking. Cancelling twice is harmless."""
        return await self._booker.cancel(booking_id, reason)

    async def cancel_by_phone(
        self, phone: str, *, action: str = "", reason: str = ""
    ) -> BookingRecord | None:
        """Cancel the caller's next booking; None when they have none."""
        upcoming = await self.upcoming_for_phone(phone, action=action)
        return None if not upcoming else await self.cancel(upcoming[0].id, reason)

    async def reschedule(
        self,
        booking_id: str,
        choice: PooledSlot,
        *,
        call_sid: str,
        preference: Preference = ANY_TIME,
    ) -> BookingOutcome:
        """Move a booking to ``choice`` (offered by ``availability(..., ignore=booking)``).
        The old booking stays confirmed unless the new time is booked."""
        old = await self._store.bookings.get(booking_id)
        if old is None or old.status != "confirmed":
            raise ValueError(f"no confirmed booking {booking_id!r} to reschedule")
        config = self.action(old.action)
        caller_tz = (
            preference.timezone
            or old.attendee.timezone
            or self._calendars[config.calendars[0]].timezone
        )
        handle = self._calendars.get(old.calendar)
        if (
            handle is not None
            and choice.calendars == (old.calendar,)
            and isinstance(handle.provider, Rescheduler)
        ):
            moved = await self._booker.move(config, old, handle, choice.slot, call_sid, caller_tz)
        else:
            details = BookingDetails(
                old.attendee, call_sid, {**old.fields, "rescheduled_from": old.id}
            )
            moved = await self._booker.book(config, choice, details, caller_tz)
            if moved is not None:
                try:
                    await self.cancel(old.id, reason=f"rescheduled to {moved.booking_id}")
                except ProviderError as error:  # the new booking stands; the old one needs a hand
                    logger.error("rescheduled %s to %s but could not cancel the old one: %s",
                                 old.id, moved.booking_id, error)  # fmt: skip
        if moved is not None:
            return moved
        return await self._unavailable(config, choice.slot, preference, caller_tz, call_sid, old)


def _window(
    config: ActionConfig, preference: Preference, now: datetime, caller_tz: str
) -> tuple[datetime, datetime]:
    """The span to search: ``lookahead_days`` from now, or around the preferred date, within
    the action's horizon."""
    horizon = now + timedelta(days=config.max_days_ahead)
    span = timedelta(days=config.lookahead_days)
    if preference.preferred_date is None:
        return now, min(horizon, now + span)
    day_start = datetime.combine(
        preference.preferred_date, datetime.min.time(), load_zone(caller_tz)
    )
    start = max(now, day_start - span / 2)
    end = min(horizon, day_start + timedelta(days=1) + span / 2)
    if end > start:
        return start, end
    if day_start >= horizon:  # asked beyond the horizon: the last stretch before it
        return max(now, horizon - span), horizon
    return now, min(horizon, now + span)  # asked for the past


__all__ = ["ANY_TIME", "BookingService", "idempotency_key"]
