"""Slotline's own booking rules on a calendar whose vendor computes the slots (Cal.com, GHL).

The vendor's slots already follow the vendor's rules. A booking action's rules are not ignored
there; each is either applied on top (a slot must pass both) or refused at start-up:

- applied on top: business hours when the booking action sets them (left at the default,
  the vendor's hours stand alone) and date overrides (the slot must lie inside an opening
  range of its local day, in the calendar's zone), minimum notice, the booking window
  (``max_days_ahead``) and the daily limit (bookings Slotline made on that local day, as on
  every calendar), plus other callers' live holds and our own bookings;
- refused at start-up (``refusals``), because Slotline cannot enforce them against bookings
  made at the vendor: buffers before/after and a slot interval. Set them on the vendor's event
  type or calendar instead; the message says so;
- the slot length is the vendor's (Cal.com event type, GHL calendar); a booking action's
  ``duration_min`` that differs is reported at start-up and the vendor's length is used. Where
  the vendor offers several lengths (a Cal.com variable-length event type, ``LengthChooser``),
  ``duration_min`` picks one: a length it does not offer is refused at start-up, naming the
  lengths it does (guessing another length for the caller would book the wrong service).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime

from slotline.agent.booking.intervals import Interval, Slot, to_epoch_s, to_epoch_s_ceil
from slotline.agent.booking.rules import BookingRules
from slotline.agent.booking.zones import day_ranges_to_epoch_s
from slotline.agent.config_models import Settings
from slotline.providers.calendars.base import SlotSource
from slotline.providers.calendars.vendor import LengthChooser, VendorSettingsReader

_SECONDS_PER_MINUTE = 60
_SECONDS_PER_DAY = 86_400


def vendor_slots_under_rules(
    rules: BookingRules,
    slots: Iterable[Slot],
    blocked: Sequence[Interval],
    *,
    window_start: datetime,
    window_end: datetime,
    now: datetime,
    existing_bookings_per_day: Mapping[date, int],
) -> list[Slot]:
    """The vendor's ``slots`` that Slotline's ``rules`` also allow, sorted (module doc)."""
    zone = rules.zone
    earliest_s = max(to_epoch_s_ceil(window_start),
                     to_epoch_s_ceil(now) + rules.min_notice_min * _SECONDS_PER_MINUTE)
    latest_s = to_epoch_s_ceil(now) + rules.max_days_ahead * _SECONDS_PER_DAY
    end_s = to_epoch_s(window_end)
    open_spans: dict[date, tuple[tuple[int, int], ...]] = {}
    kept: list[Slot] = []
    for slot in sorted(set(slots)):
        start_s, stop_s = to_epoch_s(slot.start), to_epoch_s_ceil(slot.end)
        if not earliest_s <= start_s < end_s or start_s > latest_s:
            continue
        day = slot.start.astimezone(zone).date()
        limit = rules.daily_limit
        if limit is not None and existing_bookings_per_day.get(day, 0) >= limit:
            continue
        spans = open_spans.get(day)
        if spans is None:
            spans = open_spans[day] = day_ranges_to_epoch_s(day, rules.open_minutes(day), zone)
        if not any(a <= start_s and stop_s <= b for a, b in spans):
            continue
        if any(slot.as_interval().overlaps(item) for item in blocked):
            continue
        kept.append(slot)
    return kept


def refusals(settings: Settings, adapters: Mapping[str, object]) -> list[str]:
    """Rules a booking action sets that its vendor-computed calendars cannot honour."""
    problems: list[str] = []
    for name, action in settings.booking_actions.items():
        vendor = [c for c in action.calendars if isinstance(adapters.get(c), SlotSource)]
        if not vendor:
            continue
        where = f"booking_actions.{name}"
        calendars = ", ".join(vendor)
        if action.buffer_before_min or action.buffer_after_min:
            problems.append(
                f"{where}: buffer_before_min/buffer_after_min cannot apply to {calendars}, whose "
                "vendor computes the slots (it knows bookings Slotline does not): set the buffers "
                "on the vendor's event type or calendar and remove them here"
            )
        if action.slot_interval_min is not None:
            problems.append(
                f"{where}: slot_interval_min cannot apply to {calendars}, whose vendor spaces "
                "the slots: set the interval at the vendor and remove it here"
            )
        for calendar in vendor:
            options = _length_options(adapters.get(calendar))
            if options and action.duration_min not in options:
                listed = ", ".join(str(item) for item in options)
                problems.append(
                    f"{where}: duration_min is {action.duration_min} but calendar {calendar!r} "
                    f"offers {listed} min at its vendor: set duration_min to one of them"
                )
    return problems


def _length_options(adapter: object) -> tuple[int, ...]:
    return adapter.length_options_min if isinstance(adapter, LengthChooser) else ()


def length_notes(settings: Settings, adapters: Mapping[str, object]) -> list[str]:
    """A booking action's ``duration_min`` that differs from a vendor's own slot length."""
    notes: list[str] = []
    for name, action in settings.booking_actions.items():
        for calendar in action.calendars:
            adapter = adapters.get(calendar)
            if not isinstance(adapter, VendorSettingsReader) or _length_options(adapter):
                continue  # a vendor offering several lengths books the one asked (refusals)
            length = adapter.length_min
            if length is not None and length != action.duration_min:
                notes.append(
                    f"booking_actions.{name}.duration_min is {action.duration_min} but calendar "
                    f"{calendar!r} books {length} min at its vendor: {length} min it is"
                )
    return notes
