"""Booking confirmations and reminders by SMS and e-mail, sent once each, surviving restarts.

``Notifier.confirm`` right after a booking (and again after it moved); ``ReminderScheduler``
running in the server for everything due later. See ``agent.notify.jobs`` for how the
guarantees come out of the store's ``reminder_jobs`` table.
"""

from slotline.agent.notify.jobs import CHANNELS, Channel, JobKind
from slotline.agent.notify.notifier import ConfirmResult, Delivery, Notifier, Outcome, PolicyLookup
from slotline.agent.notify.policy import DEFAULT_REMINDERS, VARIABLES, NotificationPolicy, Reminder
from slotline.agent.notify.scheduler import ReminderScheduler

__all__ = [
    "CHANNELS",
    "DEFAULT_REMINDERS",
    "VARIABLES",
    "Channel",
    "ConfirmResult",
    "Delivery",
    "JobKind",
    "NotificationPolicy",
    "Notifier",
    "Outcome",
    "PolicyLookup",
    "Reminder",
    "ReminderScheduler",
]
