"""Confirmation e-mails carry a calendar invitation: a booking made on the Cal.com emulator (an
event type with a meeting link) through the booking service, confirmed through a real SMTP
server (aiosmtpd on 127.0.0.1), parsed back with ``icalendar``: METHOD:REQUEST, the booking's
UTC times, ORGANIZER and ATTENDEE, the meeting link, a UID stable per booking with a SEQUENCE
that grows when the booking moves. On GoHighLevel (its emulator over 127.0.0.1) the meeting link
is the appointment's documented ``address``, when that is a link."""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import aiohttp
import icalendar
import pytest
from aiosmtpd.smtp import SMTP
from pydantic import SecretStr

from slotline.agent.booking.service import BookingService
from slotline.agent.booking.service_types import Booked, BookingDetails, Preference
from slotline.agent.config_models import Secrets, Settings
from slotline.agent.notify.notifier import Notifier
from slotline.agent.notify.policy import NotificationPolicy
from slotline.agent.server.calendars import build_calendars
from slotline.agent.store import open_store
from slotline.providers.calendars.base import Attendee
from slotline.providers.calendars.ghl_wire import booking_of
from slotline.providers.emulators.calcom import CalcomEmulator
from slotline.providers.emulators.calcom_rules import EventType
from slotline.providers.emulators.ghl import GhlCalendarRules, GhlEmulator
from slotline.providers.notify.email import SmtpEmail
from slotline.providers.notify.ics import Invitation, render

KEY = "cal_live_invite_0123456789"
NY = "America/New_York"
EVENT = 1010
LINK = "https://meet.example.com/clinic-intake"
SENDER = "bookings@clinic.example"
ANA = Attendee("Ana Díaz", "ana.diaz@patients.example", "+15550102030", "Europe/London")
POLICY = NotificationPolicy(sms=False, email=True, reminders=(), timezone=NY,
                            business="Clinic, Main St")


@dataclass
class Clock:
    now: datetime = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # Monday 09:00 in New York

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Mailbox:
    received: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        self.received.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[Mailbox, int]]:
    box = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(box, hostname="mx.test"), "127.0.0.1", 0)
    yield box, int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


def calendar_part(message: Message) -> icalendar.Calendar:
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1 and parts[0].get_param("method") == "REQUEST"
    payload = parts[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    attached = [p for p in message.walk() if p.get_filename() == "invite.ics"]
    assert len(attached) == 1 and attached[0].get_payload(decode=True) == payload
    return icalendar.Calendar.from_ical(payload)


def text_part(message: Message) -> str:
    [part] = [p for p in message.walk() if p.get_content_type() == "text/plain"]
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode("utf-8")


async def test_the_confirmation_carries_the_invitation_and_the_meeting_link(
    smtp: tuple[Mailbox, int], tmp_path: Path
) -> None:
    box, port = smtp
    clock = Clock()
    event = EventType(EVENT, 30, NY, meeting_link=LINK)
    conf = Settings.model_validate({
        "calendars": {"cal": {"provider": "calcom", "timezone": NY, "event_type_id": EVENT}},
        "booking_actions": {"intake": {"calendars": ["cal"], "min_notice_min": 0}},
    })
    async with (
        CalcomEmulator(KEY, [event], clock=clock) as calcom,
        aiohttp.ClientSession() as http,
        open_store(f"sqlite:///{tmp_path}/s.db", clock=clock) as store,
    ):
        conf = conf.model_copy(update={"calendars": {"cal": conf.calendars["cal"].model_copy(
            update={"base_url": calcom.base_url})}})
        adapters = build_calendars(conf, Secrets(calcom_api_key=SecretStr(KEY)), http)
        await adapters.start()
        service = BookingService.from_settings(conf, store, adapters.by_name, clock=clock)
        found = await service.availability("intake", Preference(clock.now.date(), time(15),
                                                                timezone=NY))
        booked = await service.book("intake", found.proposals[0], BookingDetails(ANA, "CA1"))
        assert isinstance(booked, Booked)
        [record] = booked.bookings
        assert record.fields["meeting_url"] == LINK  # the vendor's link, kept with the booking

        notifier = Notifier(store, None, SmtpEmail("127.0.0.1", port, SENDER), clock)
        assert (await notifier.confirm(record.id, POLICY)).sent == ("email",)
        [message] = box.received
        assert LINK in text_part(message)
        calendar = calendar_part(message)
        assert str(calendar["METHOD"]) == "REQUEST"
        [vevent] = calendar.walk("VEVENT")
        assert vevent.decoded("DTSTART") == record.start
        assert vevent.decoded("DTEND") == record.end
        assert str(vevent["UID"]) == f"{record.id}@slotline"
        assert int(vevent["SEQUENCE"]) == 0
        assert str(vevent["ORGANIZER"]) == f"mailto:{SENDER}"
        assert vevent["ORGANIZER"].params["CN"] == "Clinic, Main St"
        assert str(vevent["ATTENDEE"]) == f"mailto:{ANA.email}"
        assert vevent["ATTENDEE"].params["CN"] == "Ana Díaz"
        assert (str(vevent["LOCATION"]), str(vevent["URL"])) == (LINK, LINK)
        assert str(vevent["SUMMARY"]) == "Appointment with Clinic, Main St"

        clock.now += timedelta(minutes=5)  # the caller moves it: same UID, a larger SEQUENCE
        later = await service.availability("intake", Preference(clock.now.date(), time(16),
                                                                timezone=NY), ignore=record)
        moved = await service.reschedule(record.id, later.proposals[0], call_sid="CA2",
                                         preference=Preference(timezone=NY))
        assert isinstance(moved, Booked) and moved.booking_id == record.id
        assert (await notifier.rescheduled(record.id, POLICY)).sent == ("email",)
        moved_event = calendar_part(box.received[-1]).walk("VEVENT")[0]
        assert str(moved_event["UID"]) == str(vevent["UID"])
        assert int(moved_event["SEQUENCE"]) > 0
        assert moved_event.decoded("DTSTART") == moved.bookings[0].start != record.start
        await adapters.aclose()


async def test_a_ghl_appointments_meeting_link_reaches_the_invitation(
    smtp: tuple[Mailbox, int], tmp_path: Path
) -> None:
    box, port = smtp
    clock = Clock()
    link = "https://meet.google.com/abc-defg-hij"
    rules = GhlCalendarRules("ghl-intake", NY, 30, meeting_link=link)
    async with (
        GhlEmulator(token="pit-invite", location_id="loc-invite", calendars=(rules,),
                    clock=clock) as ghl,
        aiohttp.ClientSession() as http,
        open_store(f"sqlite:///{tmp_path}/g.db", clock=clock) as store,
    ):
        conf = Settings.model_validate({
            "calendars": {"cal": {"provider": "ghl", "timezone": NY, "base_url": ghl.base_url,
                                  "calendar_id": "ghl-intake", "location_id": "loc-invite"}},
            "booking_actions": {"intake": {"calendars": ["cal"], "min_notice_min": 0}},
        })
        adapters = build_calendars(conf, Secrets(ghl_api_token=SecretStr("pit-invite")), http)
        await adapters.start()
        service = BookingService.from_settings(conf, store, adapters.by_name, clock=clock)
        found = await service.availability("intake", Preference(clock.now.date(), time(15),
                                                                timezone=NY))
        booked = await service.book("intake", found.proposals[0], BookingDetails(ANA, "CA3"))
        assert isinstance(booked, Booked)
        [record] = booked.bookings
        [stored] = ghl.appointments.values()
        assert (stored.address, stored.location_type) == (link, "custom")
        assert record.fields["meeting_url"] == link

        notifier = Notifier(store, None, SmtpEmail("127.0.0.1", port, SENDER), clock)
        assert (await notifier.confirm(record.id, POLICY)).sent == ("email",)
        [message] = box.received
        assert link in text_part(message)
        [vevent] = calendar_part(message).walk("VEVENT")
        assert (str(vevent["LOCATION"]), str(vevent["URL"])) == (link, link)
        await adapters.aclose()


@pytest.mark.parametrize(("address", "link"), [
    ("https://zoom.us/j/123456789", "https://zoom.us/j/123456789"),
    ("Zoom", ""), ("12 Main St, Springfield", ""), ("+14455550132", ""), (None, ""),
])
def test_only_a_web_address_of_a_ghl_appointment_is_a_meeting_link(
    address: str | None, link: str
) -> None:
    appointment = {"id": "apt-1", "startTime": "2026-12-01T10:00:00-05:00",
                   "endTime": "2026-12-01T10:30:00-05:00", "appointmentStatus": "confirmed",
                   "address": address}
    assert booking_of(appointment).meeting_url == link


def test_text_is_escaped_and_long_lines_fold_without_splitting_a_letter() -> None:
    start = datetime(2026, 12, 1, 15, tzinfo=UTC)
    text = render(Invitation(
        "b-1@slotline", 2, start, start + timedelta(minutes=45), "Café; à la carte, é" * 6,
        "Line one\nLine two; three, four", "ana@example.com", 'Ana "AJ" Díaz', "Clinic",
        stamp=start,
    ), SENDER)
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    parsed = icalendar.Calendar.from_ical(text)
    [vevent] = parsed.walk("VEVENT")
    assert str(vevent["SUMMARY"]) == "Café; à la carte, é" * 6
    assert str(vevent["DESCRIPTION"]) == "Line one\nLine two; three, four"
    assert vevent.decoded("DTEND") - vevent.decoded("DTSTART") == timedelta(minutes=45)
    assert "LOCATION" not in vevent  # no link given, none invented
