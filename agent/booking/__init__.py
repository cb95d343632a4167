"""The pure heart of the booking engine: rules, availability, pooling, proposals, speech.

No I/O here: calendar adapters fetch busy time, the session speaks, the store persists.
"""

from slotline.agent.booking.availability import available_slots
from slotline.agent.booking.intervals import Interval, Slot, merge_intervals, subtract_intervals
from slotline.agent.booking.pool import STRATEGIES, PooledSlot, Strategy, pool
from slotline.agent.booking.proposal import PARTS_OF_DAY, TimeOfDay, part_of_day, propose
from slotline.agent.booking.rules import BookingRules
from slotline.agent.booking.speech import speak_clock, speak_date, speak_slot, speak_slots

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
    "speak_slot",
    "speak_slots",
    "subtract_intervals",
]
