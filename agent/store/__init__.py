"""The persistent store: calls, bookings, slot holds, reminder jobs, round-robin counts.

SQLAlchemy 2 Core on SQLite (aiosqlite, the default) or PostgreSQL (asyncpg); the database itself
refuses double bookings. Start with ``open_store(url)``.
"""

from slotline.agent.store.bookings import BookingRepo, new_booking_id
from slotline.agent.store.calls import CallRepo
from slotline.agent.store.holds import HoldRepo
from slotline.agent.store.records import (
    BookingRecord,
    NewBooking,
    ReminderJob,
    SlotHold,
    StoredCall,
    email_key,
    phone_key,
)
from slotline.agent.store.reminders import ReminderRepo
from slotline.agent.store.round_robin import RoundRobinRepo
from slotline.agent.store.store import Store, open_store, utc_now

__all__ = [
    "BookingRecord",
    "BookingRepo",
    "CallRepo",
    "HoldRepo",
    "NewBooking",
    "ReminderJob",
    "ReminderRepo",
    "RoundRobinRepo",
    "SlotHold",
    "Store",
    "StoredCall",
    "email_key",
    "new_booking_id",
    "open_store",
    "phone_key",
    "utc_now",
]
