"""Booking: which times to offer a caller, and writing the booking they choose.

Two layers. The pure one, exported here, does no I/O and is tested without a socket: rules,
business hours and zones (``rules``, ``zones``), free time (``intervals``, ``availability``),
pooling calendars (``pool``), choosing the few times to offer (``proposal``) and saying them
(``speech``). The service layer awaits calendars and the store around it: ``service`` and
``service_book`` (availability over a pool, booking exactly once), ``runner`` (the flow
engine's booking protocol for one call), ``local_calendar``, ``finding``, ``caller_bookings``
and ``attendees`` (bookings made elsewhere, details given later). ``vendor_rules`` and
``vendor_fields`` check at start-up what a vendor's own calendar settings allow.
"""

from slotline.agent.booking.availability import available_slots
from slotline.agent.booking.intervals import Interval, Slot, merge_intervals, subtract_intervals
from slotline.agent.booking.pool import STRATEGIES, PooledSlot, Strategy, pool
from slotline.agent.booking.proposal import PARTS_OF_DAY, TimeOfDay, part_of_day, propose
from slotline.agent.booking.rules import BookingRules
from slotline.agent.booking.speech import (
    speak_clock,
    speak_date,
    speak_slots,
    speak_times,
    spoken_start,
)

__all__ = [
    "PARTS_OF_DAY",
    "STRATEGIES",
    "BookingRules",
    "Interval",
    "PooledSlot",
    "Slot",
    "Strategy",
    "TimeOfDay",
    "available_slots",
    "merge_intervals",
    "part_of_day",
    "pool",
    "propose",
    "speak_clock",
    "speak_date",
    "speak_slots",
    "speak_times",
    "spoken_start",
    "subtract_intervals",
]
