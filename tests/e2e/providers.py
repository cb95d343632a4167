"""Vendor calendars on loopback, and the settings that point a Slotline calendar at each one.

``Vendors.start(provider, calendar)`` starts that vendor's emulator (Cal.com, GoHighLevel,
Google Calendar, Microsoft Graph, the webhook contract's reference server) or a fresh collection
on a real Radicale (CalDAV), and returns a ``VendorCalendar``: the environment
(``SLOTLINE_CALENDARS__<NAME>__...``) and secret environment (``CALCOM_API_KEY``, ...) that
point the named calendar at it, exactly as a user would configure it, and ``live()``: the
bookings the vendor itself holds (read from the emulator's state, or over CalDAV), so a test
can check the vendor's side, not just Slotline's.

Tests run on the real clock, so every vendor that applies its own rules (Cal.com's event type,
GHL's calendar) opens weekdays 09:00-17:00 America/New_York with no minimum notice: "next
Tuesday at 3 pm" is bookable whenever the tests run. ``booking_env`` gives the booking action
the same hours and a short notice for the busy-time vendors (Google, Graph, CalDAV, webhook),
whose slots Slotline's own rules derive. The same set-up serves the unit tests of the booking
service and ``bench.provider_requests`` (there through ``agent.server.calendars.build_calendars``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Self
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import aiohttp
import icalendar
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from slotline.providers.emulators._http import HttpEmulator
from slotline.providers.emulators.calcom import CalcomEmulator
from slotline.providers.emulators.calcom_rules import EventType
from slotline.providers.emulators.ghl import GhlCalendarRules, GhlEmulator
from slotline.providers.emulators.google_calendar import GoogleCalendarEmulator
from slotline.providers.emulators.graph import (
    CLIENT_ID,
    CLIENT_SECRET,
    MAILBOX,
    TENANT_ID,
    GraphEmulator,
)
from slotline.providers.emulators.webhook_calendar import WebhookCalendarEmulator
from tests.radicale_server import RadicaleServer

PROVIDERS = ("calcom", "ghl", "google", "outlook", "caldav", "webhook")
ZONE = "America/New_York"
NY = ZoneInfo(ZONE)
CALCOM_KEY = "cal_live_e2e"
CALCOM_EVENT_TYPE = 4201
GHL_TOKEN = "pit-e2e"
GHL_LOCATION = "loc-e2e"
GHL_CALENDAR = "cal-e2e"
GOOGLE_CALENDAR = "owner@example.com"
GOOGLE_ACCOUNT = "slotline@e2e.iam.gserviceaccount.com"
WEBHOOK_SECRET = "whsec_provider_e2e"
CALDAV_USER, CALDAV_PASSWORD = "slotline", "caldav-e2e"
CALDAV_USERS = {CALDAV_USER: CALDAV_PASSWORD}  # for ``running_radicale(users=...)``


@dataclass(frozen=True, slots=True)
class VendorEvent:
    """A live (not cancelled) booking as the vendor holds it; times in UTC."""

    id: str
    start: datetime
    end: datetime


@dataclass
class VendorCalendar:
    """One vendor calendar: how to point Slotline at it, and what it holds."""

    provider: str
    calendar: str  # the Slotline calendar name the env configures
    env: dict[str, str]
    secret_env: dict[str, str]
    live: Callable[[], Awaitable[list[VendorEvent]]]
    emulator: HttpEmulator | None = None  # None for CalDAV (a real Radicale)
    url: str = ""  # the base_url configured


@dataclass
class Vendors:
    """Starts vendor calendars into ``stack`` (closed with it). ``radicale``: a running server
    checking ``CALDAV_USERS``; ``key_dir``: where the Google service-account key is written."""

    stack: AsyncExitStack
    radicale: RadicaleServer
    key_dir: Path
    _google_key: tuple[Path, str] | None = field(default=None, init=False)

    async def start(
        self, provider: str, calendar: str = "main", *, latency_ms: float = 0.0
    ) -> VendorCalendar:
        starters: dict[str, Callable[[str, float], Awaitable[VendorCalendar]]] = {
            "calcom": self._calcom,
            "ghl": self._ghl,
            "google": self._google,
            "outlook": self._outlook,
            "caldav": self._caldav,
            "webhook": self._webhook,
        }
        return await starters[provider](calendar, latency_ms)

    async def _calcom(self, calendar: str, latency_ms: float) -> VendorCalendar:
        event = EventType(CALCOM_EVENT_TYPE, length_min=30, timezone=ZONE, slug="demo")
        emu = await self.stack.enter_async_context(
            CalcomEmulator(CALCOM_KEY, [event], latency_ms=latency_ms)
        )

        async def live() -> list[VendorEvent]:
            return [VendorEvent(b.uid, b.start, b.end) for b in emu.bookings.values() if b.live]

        env = _calendar_env(calendar, "calcom", emu.base_url, event_type_id=CALCOM_EVENT_TYPE)
        return VendorCalendar("calcom", calendar, env, {"CALCOM_API_KEY": CALCOM_KEY}, live, emu,
                              emu.base_url)

    async def _ghl(self, calendar: str, latency_ms: float) -> VendorCalendar:
        rules = GhlCalendarRules(GHL_CALENDAR, timezone=ZONE, slot_duration_min=30)
        emu = await self.stack.enter_async_context(GhlEmulator(
            token=GHL_TOKEN, location_id=GHL_LOCATION, calendars=(rules,), latency_ms=latency_ms,
        ))  # fmt: skip

        async def live() -> list[VendorEvent]:
            return [VendorEvent(a.id, a.start, a.end) for a in emu.appointments.values()
                    if a.status != "cancelled"]  # fmt: skip

        env = _calendar_env(calendar, "ghl", emu.base_url, calendar_id=GHL_CALENDAR,
                            location_id=GHL_LOCATION)
        return VendorCalendar("ghl", calendar, env, {"GHL_API_TOKEN": GHL_TOKEN}, live, emu,
                              emu.base_url)

    async def _google(self, calendar: str, latency_ms: float) -> VendorCalendar:
        key_file, public_pem = self._service_account()
        emu = await self.stack.enter_async_context(
            GoogleCalendarEmulator(calendars=(GOOGLE_CALENDAR,), latency_ms=latency_ms)
        )
        emu.add_service_account(GOOGLE_ACCOUNT, public_pem, key_id="e2e")

        async def live() -> list[VendorEvent]:
            return [VendorEvent(e["id"], _google_time(e["start"]), _google_time(e["end"]))
                    for e in emu.events(GOOGLE_CALENDAR)]  # fmt: skip

        env = _calendar_env(calendar, "google", emu.base_url, calendar_id=GOOGLE_CALENDAR,
                            token_url=emu.token_url, subject=GOOGLE_CALENDAR)
        secrets = {"GOOGLE_APPLICATION_CREDENTIALS": str(key_file)}
        return VendorCalendar("google", calendar, env, secrets, live, emu, emu.base_url)

    async def _outlook(self, calendar: str, latency_ms: float) -> VendorCalendar:
        emu = await self.stack.enter_async_context(GraphEmulator(latency_ms=latency_ms))

        async def live() -> list[VendorEvent]:
            return [VendorEvent(e["id"], _graph_time(e["start"]), _graph_time(e["end"]))
                    for e in emu.live_events(MAILBOX)]  # fmt: skip

        env = _calendar_env(calendar, "outlook", emu.base_url, token_url=emu.token_url,
                            tenant_id=TENANT_ID, client_id=CLIENT_ID, user=MAILBOX)
        return VendorCalendar("outlook", calendar, env, {"MS_CLIENT_SECRET": CLIENT_SECRET},
                              live, emu, emu.base_url)

    async def _caldav(self, calendar: str, latency_ms: float) -> VendorCalendar:
        url = self.radicale.make_calendar()  # a fresh collection: nothing from other tests

        async def live() -> list[VendorEvent]:
            return await caldav_events(url)

        env = _calendar_env(calendar, "caldav", url, username=CALDAV_USER)
        return VendorCalendar("caldav", calendar, env, {"CALDAV_PASSWORD": CALDAV_PASSWORD},
                              live, None, url)

    async def _webhook(self, calendar: str, latency_ms: float) -> VendorCalendar:
        emu = await self.stack.enter_async_context(
            WebhookCalendarEmulator(WEBHOOK_SECRET, latency_ms=latency_ms)
        )

        async def live() -> list[VendorEvent]:
            return [VendorEvent(b.id, b.start, b.end) for b in emu.bookings.values()
                    if b.status == "confirmed"]  # fmt: skip

        env = _calendar_env(calendar, "webhook", emu.base_url)
        return VendorCalendar("webhook", calendar, env, {"SLOTLINE_WEBHOOK_SECRET": WEBHOOK_SECRET},
                              live, emu, emu.base_url)

    def _service_account(self) -> tuple[Path, str]:
        """A throwaway service-account key file and its public key, made once per ``key_dir``
        (an RSA key takes a noticeable fraction of a second)."""
        if self._google_key is None:
            path, public = self.key_dir / "service-account.json", self.key_dir / "public.pem"
            if not public.exists():
                public.write_text(write_service_account(path)[1])
            self._google_key = (path, public.read_text())
        return self._google_key


class DavProxy:
    """A loopback HTTP proxy in front of Radicale, the CalDAV server having no emulator knobs:
    ``counts`` per method (``"PUT"``, ``"REPORT"``, ...) like the emulators' route counts, and
    ``drop_next_put()``: the next PUT is forwarded (the event is written), then the connection
    closes instead of answering (a lost answer)."""

    _HOP = frozenset({"host", "content-length", "transfer-encoding", "content-encoding",
                      "connection"})  # fmt: skip

    def __init__(self, upstream: str) -> None:
        self._upstream = upstream.rstrip("/")
        self._drops = 0
        self.dropped = 0
        self.counts: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.origin = ""

    def drop_next_put(self) -> None:
        self._drops += 1

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.origin = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        self.counts[request.method] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in self._HOP}
        async with self._session.request(
            request.method, self._upstream + request.path_qs, data=await request.read(),
            headers=headers,
        ) as answer:  # fmt: skip
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in self._HOP}
        if request.method == "PUT" and self._drops and request.transport is not None:
            self._drops -= 1
            self.dropped += 1
            request.transport.close()  # written upstream; this answer is never delivered
        return web.Response(body=body, status=answer.status, headers=kept)


def booking_env(
    calendars: tuple[str, ...] = ("main",), strategy: str = "first_available", action: str = "demo"
) -> dict[str, str]:
    """The booking action pooling ``calendars``: weekdays 09:00-17:00 in each calendar's zone
    (the default) with five minutes' notice."""
    prefix = f"SLOTLINE_BOOKING_ACTIONS__{action.upper()}__"
    return {
        prefix + "CALENDARS": ",".join(calendars),
        prefix + "STRATEGY": strategy,
        prefix + "MIN_NOTICE_MIN": "5",
        prefix + "DURATION_MIN": "30",
    }


def merged(*vendors: VendorCalendar) -> tuple[dict[str, str], dict[str, str]]:
    """(env, secret_env) of several calendars together."""
    env: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for vendor in vendors:
        env.update(vendor.env)
        secrets.update(vendor.secret_env)
    return env, secrets


def next_tuesday(at: time = time(15), today: date | None = None) -> datetime:
    """What "next tuesday" means to the flow (the first Tuesday after today, New York), at
    ``at`` New York time."""
    day = today or datetime.now(NY).date()
    ahead = (1 - day.weekday()) % 7 or 7
    return datetime.combine(day + timedelta(days=ahead), at, NY)


def write_service_account(path: Path, key_id: str = "e2e") -> tuple[Path, str]:
    """A throwaway Google service-account key file; returns it and its public key (PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()  # fmt: skip
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "slotline-e2e", "private_key_id": key_id,
        "private_key": private_pem, "client_email": GOOGLE_ACCOUNT, "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }))  # fmt: skip
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return path, public_pem


async def caldav_events(collection_url: str) -> list[VendorEvent]:
    """The collection's events that are not cancelled: a Depth 1 PROPFIND, then a GET each."""
    origin = "/".join(collection_url.split("/")[:3])
    found: list[VendorEvent] = []
    auth = {"Authorization": aiohttp.encode_basic_auth(CALDAV_USER, CALDAV_PASSWORD)}
    async with aiohttp.ClientSession(headers=auth) as session:
        async with session.request("PROPFIND", collection_url, headers={"Depth": "1"}) as answer:
            assert answer.status == 207, await answer.text()
            listing = ElementTree.fromstring(await answer.read())
        for href in listing.iter("{DAV:}href"):
            path = href.text or ""
            if not path.endswith(".ics"):
                continue  # the collection itself
            async with session.get(origin + path) as answer:
                text = await answer.text()
            for event in icalendar.Calendar.from_ical(text).walk("VEVENT"):
                if str(event.get("STATUS", "")).upper() == "CANCELLED":
                    continue
                assert isinstance(event, icalendar.Event)
                start, end = event.start, event.end
                assert isinstance(start, datetime) and isinstance(end, datetime), text
                found.append(VendorEvent(str(event["UID"]), start.astimezone(UTC),
                                         end.astimezone(UTC)))  # fmt: skip
    return sorted(found, key=lambda item: item.start)


def _calendar_env(calendar: str, provider: str, base_url: str, **keys: Any) -> dict[str, str]:
    prefix = f"SLOTLINE_CALENDARS__{calendar.upper()}__"
    env = {prefix + "PROVIDER": provider, prefix + "TIMEZONE": ZONE, prefix + "BASE_URL": base_url}
    env.update({prefix + key.upper(): str(value) for key, value in keys.items()})
    return env


def _google_time(value: Mapping[str, str]) -> datetime:
    return datetime.fromisoformat(value["dateTime"]).astimezone(UTC)


def _graph_time(value: Mapping[str, str]) -> datetime:
    """Graph's ``dateTimeTimeZone`` (7 fractional digits) in UTC, as the emulator renders it."""
    assert value["timeZone"] == "UTC", value
    return datetime.fromisoformat(value["dateTime"][:19]).replace(tzinfo=UTC)
