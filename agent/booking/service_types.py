"""What the booking service is configured with and what it answers: frozen, typed values.

``ActionConfig`` carries a booking action's rules. ``BookingActionSettings`` holds only the
calendars, the strategy and the duration today; everything else here has a sensible default
(business hours Mon-Fri 09:00-17:00 in each calendar's zone, slots every ``duration_min``,
60 minutes' notice, 30 days ahead) until the settings grow the matching keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from types import MappingProxyType

from slotline.agent.booking.intervals import Slot
from slotline.agent.booking.pool import STRATEGIES, PackedSlots, PooledSlot, Strategy
from slotline.agent.booking.proposal import PARTS_OF_DAY, TimeOfDay
from slotline.agent.booking.rules import BookingRules, DayHours
from slotline.agent.booking.zones import load_zone
from slotline.agent.config_models import BookingActionSettings
from slotline.agent.store import BookingRecord
from slotline.providers.calendars.base import Attendee, CalendarProvider
from slotline.providers.errors import ProviderError


def _office_hours() -> Mapping[int, DayHours]:
    return {weekday: (("09:00", "17:00"),) for weekday in range(5)}


@dataclass(frozen=True, slots=True)
class ActionConfig:
    """One booking action: the calendars it pools, how, and its scheduling rules."""

    name: str
    calendars: tuple[str, ...]
    strategy: Strategy = "first_available"
    duration_min: int = 30
    slot_interval_min: int | None = None  # None = duration_min
    buffer_before_min: int = 0
    buffer_after_min: int = 0
    min_notice_min: int = 60
    max_days_ahead: int = 30
    daily_limit: int | None = None
    weekly_hours: Mapping[int, DayHours] = field(default_factory=_office_hours)
    date_overrides: Mapping[date, DayHours] = field(default_factory=dict)
    # False when the settings left business_hours at their default: a vendor-computed calendar
    # (Cal.com, GHL) then keeps the hours set at the vendor (agent.booking.vendor_rules)
    hours_configured: bool = True
    # How long one calendar may take to answer a busy-time query; a slow calendar costs this,
    # never more, because the pool's calendars are asked at the same time.
    calendar_timeout_s: float = 3.0
    # A create is a write at the vendor; give it longer than a read, but never hang the call.
    write_timeout_s: float = 10.0
    # True: a failing calendar is reported and left out of the pool; False: the lookup fails.
    skip_failed_calendars: bool = True
    proposal_limit: int = 3
    lookahead_days: int = 14  # how far a look-up searches (around the preferred date, if any)
    hold_ttl_s: float = 300.0  # a hold outlives a slow confirmation, not a crashed process
    # Undoing the part of a multi-calendar booking already made when the rest failed: each
    # cancel is tried this many times, waiting the back-off, then twice that, ... A vendor's
    # hiccup passes within a second or two; one that is down is reported, not waited out while
    # the caller listens (3 tries, 0.5 s + 1 s between them).
    undo_attempts: int = 3
    undo_backoff_s: float = 0.5
    title: str = ""  # the event title written to calendars ("" = the action's name)

    def __post_init__(self) -> None:
        if not self.calendars:
            raise ValueError(f"booking action {self.name!r} pools no calendars")
        if len(set(self.calendars)) != len(self.calendars):
            raise ValueError(f"booking action {self.name!r} lists a calendar twice")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"booking action {self.name!r}: unknown strategy {self.strategy!r}")
        for name in ("calendar_timeout_s", "write_timeout_s", "hold_ttl_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"booking action {self.name!r}: {name} must be positive")
        if self.undo_backoff_s < 0:
            raise ValueError(f"booking action {self.name!r}: undo_backoff_s must not be negative")
        for name in ("proposal_limit", "lookahead_days", "undo_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"booking action {self.name!r}: {name} must be at least 1")
        object.__setattr__(self, "weekly_hours", MappingProxyType(dict(self.weekly_hours)))
        object.__setattr__(self, "date_overrides", MappingProxyType(dict(self.date_overrides)))
        self.rules("UTC")  # fail now, naming the bad rule, rather than on the first call

    @classmethod
    def from_settings(cls, name: str, settings: BookingActionSettings) -> ActionConfig:
        days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        return cls(
            name=name,
            calendars=tuple(settings.calendars),
            strategy=settings.strategy,
            duration_min=settings.duration_min,
            slot_interval_min=settings.slot_interval_min,
            buffer_before_min=settings.buffer_before_min,
            buffer_after_min=settings.buffer_after_min,
            min_notice_min=settings.min_notice_min,
            max_days_ahead=settings.max_days_ahead,
            daily_limit=settings.daily_limit,
            weekly_hours={
                days.index(day): tuple(tuple(r.split("-")) for r in ranges)
                for day, ranges in settings.business_hours.items()
            },
            date_overrides={
                date.fromisoformat(day): tuple(tuple(r.split("-")) for r in ranges)
                for day, ranges in settings.date_overrides.items()
            },
            hours_configured="business_hours" in settings.model_fields_set,
            calendar_timeout_s=settings.calendar_timeout_s,
            skip_failed_calendars=settings.on_calendar_error == "skip",
        )

    def rules(self, timezone: str, *, vendor_slots: bool = False) -> BookingRules:
        """The scheduling rules for one pooled calendar, in that calendar's zone. On a calendar
        whose vendor computes the slots, hours nobody configured here open the whole day (the
        vendor's own hours apply): the office-hours default must not hide a vendor's weekend."""
        weekly_hours = self.weekly_hours
        if vendor_slots and not self.hours_configured:
            weekly_hours = {day: (("00:00", "24:00"),) for day in range(7)}
        return BookingRules(
            timezone=timezone,
            duration_min=self.duration_min,
            slot_interval_min=self.slot_interval_min,
            buffer_before_min=self.buffer_before_min,
            buffer_after_min=self.buffer_after_min,
            min_notice_min=self.min_notice_min,
            max_days_ahead=self.max_days_ahead,
            daily_limit=self.daily_limit,
            weekly_hours=weekly_hours,
            date_overrides=self.date_overrides,
        )


@dataclass(frozen=True, slots=True)
class CalendarHandle:
    """A configured calendar: its adapter, its provider kind ("local", "calcom", ...), its zone."""

    name: str
    provider: CalendarProvider
    kind: str
    timezone: str

    def __post_init__(self) -> None:
        load_zone(self.timezone)


@dataclass(frozen=True, slots=True)
class Preference:
    """What the caller asked for; ``timezone`` is theirs ("" = the first pooled calendar's)."""

    preferred_date: date | None = None
    preferred_time: time | None = None
    time_of_day: TimeOfDay | None = None
    timezone: str = ""

    def __post_init__(self) -> None:
        if self.time_of_day is not None and self.time_of_day not in PARTS_OF_DAY:
            choices = ", ".join(PARTS_OF_DAY)
            raise ValueError(f"time_of_day {self.time_of_day!r}: use one of {choices}")
        if self.timezone:
            load_zone(self.timezone)


@dataclass(frozen=True, slots=True)
class BookingDetails:
    """Who the booking is for and what the flow collected (stored with the booking)."""

    attendee: Attendee
    call_sid: str
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CalendarFailure:
    """A pooled calendar that did not answer (timeout) or answered with an error."""

    calendar: str
    error: ProviderError
    elapsed_ms: float


@dataclass(frozen=True, slots=True)
class Availability:
    """The answer to "when can I come?" for one action. Saying it is the flow's: the runner
    (``agent.booking.runner``) turns proposals into offers in the caller's zone."""

    action: str
    timezone: str  # the caller's zone the proposals were chosen in
    proposals: tuple[PooledSlot, ...]  # the times to offer, best first
    offered: PackedSlots  # every bookable slot in the window, by start
    failures: tuple[CalendarFailure, ...]  # calendars left out (reported, skipped)
    elapsed_ms: float  # booking_ms: the look-up, all calendars

    def at(self, start: datetime) -> PooledSlot | None:
        """The offered slot starting at ``start`` (the caller picked a time not proposed)."""
        return self.offered.starting_at(start)


@dataclass(frozen=True, slots=True)
class Booked:
    """Success: one booking per booked calendar (several for ``collective``). What the caller
    hears and the node's outputs (``booking_success`` = "yes", ``booked_date``, ...) are the
    flow's (``agent.flow.booking_steps``), from the runner's ``BookingFinished``."""

    bookings: tuple[BookingRecord, ...]
    timezone: str  # the caller's zone

    @property
    def booking_id(self) -> str:
        return self.bookings[0].id

    @property
    def slot(self) -> Slot:
        return Slot(self.bookings[0].start, self.bookings[0].end)


@dataclass(frozen=True, slots=True)
class SlotUnavailable:
    """The chosen time was taken meanwhile (nothing was booked); here are the next options."""

    slot: Slot
    alternatives: Availability


BookingOutcome = Booked | SlotUnavailable
