"""CalDAV calendars (RFC 4791): Nextcloud, Radicale, Fastmail, iCloud, Baïkal, SOGo, ...

``base_url`` is the calendar collection URL; the booking id is the event UID, and Slotline's
events live at ``<collection>/<uid>.ics``.

caldav 3.x ships an asyncio client (``AsyncDAVClient`` on niquests' ``AsyncSession``), so every
call runs on the event loop; no thread hop. Its typed protocol-level methods
(``calendar_query``, ``put``, ``delete``, ``request``) are used, not its dual-mode domain
objects (they return "a value or a coroutine", which the types cannot tell apart). Events are
read and written with ``icalendar`` by the pure helpers at the bottom.

- busy: a calendar-query REPORT with the server expanding recurrences; an event blocks unless
  it is CANCELLED or TRANSPARENT. Not the free-busy REPORT: a server reads floating times and
  all-day dates in UTC unless the collection carries a calendar-timezone (Radicale's test
  collection reads 9:00 floating as 9:00 UTC), while the business means its own zone. So the
  query window is widened by the largest UTC offsets and the times are read here, in the
  calendar's zone; busy time and the write guard below share that one rule.
- create is write-once even with concurrent writers, although CalDAV allows overlaps:
  1. UID = a hash of the idempotency key. Query the slot: our UID there → return it (a
     retry); another blocking event → ``SlotTaken``.
  2. PUT ``<uid>.ics`` with ``If-None-Match: *``; 412 = the UID exists (a concurrent retry of
     the same key): return that event. An answer lost to a dropped connection or a timeout:
     GET the UID; there with our key → it was written, go on; else the error stands.
  3. Settle: query the slot again and let ``race.settle`` decide, waiting for rivals. The
     rank is when an event came to occupy its time: X-SLOTLINE-SLOT-SINCE (Slotline stamps it
     on a move), else CREATED, else DTSTAMP (none: first); ties by UID. These are writers'
     clocks, so a writer ranked first may have listed before a rival's PUT landed: a rival
     ranked first → delete ours, ``SlotTaken``; ours ranked first → wait up to
     ``rival_grace_s`` for the rivals to withdraw (a rival that saw ours deletes its own right
     away); one that stays had confirmed without seeing ours, so ours is withdrawn. Two
     Slotline writers, in any interleaving, end with exactly one event (if a loser dies before
     its DELETE, its event is the one left, with no booking).
- the caller is an ATTENDEE (``mailto:``, CN = their name, ROLE=REQ-PARTICIPANT) when an
  e-mail is known; ``update_attendee`` rewrites it (and the description) on an event already
  written, with the same ``If-Match`` guard as every edit. Whether the server then e-mails an
  invitation is its own scheduling (RFC 6638) setting.
- cancel sets STATUS:CANCELLED (the history stays in the calendar). reschedule checks the new
  time is free, moves DTSTART/DTEND (stamping X-SLOTLINE-SLOT-SINCE: the moved event ranks by
  its move, not its creation), then settles like a create; a lost move puts the old times back
  and raises ``SlotTaken``. So a create racing a move onto the same time ends with one event
  whichever finished its check first. Edits PUT with ``If-Match`` on the ETag just read, so a
  concurrent edit is never overwritten.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slotline.providers.base import ResourceContext
from slotline.providers.calendars import caldav_find, race
from slotline.providers.calendars.base import (
    Attendee,
    BookingRequest,
    BookingStatus,
    BusyInterval,
    ProviderBooking,
    VendorBooking,
)
from slotline.providers.errors import (
    ConfigError,
    ProviderAuthError,
    ProviderError,
    ProviderTimeout,
    SlotTaken,
)
from slotline.providers.extras import missing

try:
    import icalendar
    from caldav.async_davclient import AsyncDAVClient
    from caldav.lib.error import AuthorizationError, DAVError
    from caldav.response import CalendarQueryResult, DAVResponse
except ModuleNotFoundError as exc:
    raise missing(exc, "caldav", "calendar provider caldav") from None

logger = logging.getLogger(__name__)

PROVIDER = "caldav"
KEY_PROPERTY = "X-SLOTLINE-IDEMPOTENCY-KEY"
# When the event came to occupy its current time (UTC, written on a move): CREATED would rank a
# moved event by its creation, ahead of a booking that was in the slot first.
SINCE_PROPERTY = "X-SLOTLINE-SLOT-SINCE"
_PRODID = "-//Slotline//CalDAV calendar//EN"
_ICS = {"Content-Type": "text/calendar; charset=utf-8"}
# A rival that saw our event deletes its own with one DELETE right after its own check; 2 s
# covers a slow server. Poll often: the caller is on the phone, waiting.
_RIVAL_GRACE_S = 2.0
_RIVAL_POLL_S = 0.05
_EARLIEST = datetime.min.replace(tzinfo=UTC)  # an event with no stamps ranks first: we yield
# What a lost move puts back: the old times, their rank and the comments.
_MOVED_PROPERTIES = ("DTSTART", "DTEND", "DURATION", SINCE_PROPERTY, "COMMENT")
# Floating times and dates mean the calendar's zone, which the server may not know: ask for
# everything within the widest UTC offsets (-12 h .. +14 h) and filter here.
_FLOATING_MARGIN = timedelta(hours=14)
_ICAL_UTC = "%Y%m%dT%H%M%SZ"  # RFC 5545 UTC date-time, as CREATED and DTSTAMP are written


@dataclass(frozen=True, slots=True)
class _Event:
    """One VEVENT as the adapter needs it (times in UTC)."""

    uid: str
    start: datetime
    end: datetime
    cancelled: bool
    blocks: bool  # opaque and not cancelled: it makes the time busy
    since: datetime  # when it came to occupy its time (the module doc's rank)
    key: str  # our idempotency key property, "" on others' events

    def claim(self) -> race.Claim:
        return race.Claim(self.uid, self.since, self.blocks)


class CaldavCalendar(ResourceContext):
    """``CalendarProvider`` + ``Rescheduler`` over one CalDAV calendar collection.

    ``timezone`` (IANA) is the calendar's zone: floating times and all-day events of other
    clients are read in it. Slotline writes its own events in UTC.
    """

    def __init__(
        self,
        url: str,
        username: str | None,
        password: str | None,
        timezone: str,
        *,
        timeout_s: float = 5.0,
        rival_grace_s: float = _RIVAL_GRACE_S,
    ) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self._username = username
        self._password = password
        try:
            self._zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError("calendars", "timezone", f"unknown IANA zone {timezone!r}") from None
        self._timeout_s = timeout_s
        self._rival_grace_s = rival_grace_s
        self._client: AsyncDAVClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # ---- CalendarProvider -------------------------------------------------------------------

    async def busy(self, start: datetime, end: datetime) -> Sequence[BusyInterval]:
        events = await self._query(start, end)
        return [BusyInterval(event.start, event.end) for event in events if event.blocks]

    async def create(self, request: BookingRequest) -> ProviderBooking:
        uid = uid_for(request.idempotency_key)
        mine = await self._overlapping(request.start, request.end, uid, request.idempotency_key)
        if mine is not None:
            return _booking(mine)  # a retry: the booking is already made
        href = self._href(uid)
        body = _new_event(uid, request, datetime.now(UTC))
        try:
            async with self._dav("PUT"):
                response = await self._dav_client().put(
                    href, body, {**_ICS, "If-None-Match": "*"}
                )
        except ProviderError as lost:  # a dropped connection or a timeout: maybe written
            if not lost.retryable or not await self._written(uid, request.idempotency_key):
                raise
        else:
            if response.status == 412:  # the UID exists: the same key, written concurrently
                existing = await self._load(uid)
                if existing is None or existing[0].key != request.idempotency_key:
                    raise ProviderError(PROVIDER, f"event {uid} exists but is not this booking")
                return _booking(existing[0])
            _check(response, "PUT", href)
        if not await self._keeps_slot(uid, request.start, request.end):
            async with self._dav("DELETE"):
                response = await self._dav_client().delete(href)
            _check(response, "DELETE", href, missing_ok=True)
            logger.info("caldav: another booking took %s meanwhile; withdrew %s",
                        request.start, uid)  # fmt: skip
            raise SlotTaken(PROVIDER, f"{_ical_utc(request.start)} was booked meanwhile")
        return ProviderBooking(uid, request.start, request.end, "confirmed")

    async def get(self, provider_booking_id: str) -> ProviderBooking | None:
        loaded = await self._load(provider_booking_id)
        return None if loaded is None else _booking(loaded[0])

    async def cancel(self, provider_booking_id: str, reason: str = "") -> ProviderBooking:
        event, text, etag = await self._must_load(provider_booking_id)
        if event.cancelled:
            return _booking(event)

        def cancelled(component: icalendar.Component) -> None:
            component["STATUS"] = "CANCELLED"
            if reason:
                component.add("COMMENT", f"Cancelled: {reason}")

        return _booking(await self._edit(provider_booking_id, text, etag, cancelled))

    # ---- AttendeeUpdater ----------------------------------------------------------------------

    async def update_attendee(self, provider_booking_id: str, attendee: Attendee) -> None:
        event, text, etag = await self._must_load(provider_booking_id)
        if event.cancelled:
            raise ProviderError(PROVIDER, f"booking {provider_booking_id} is cancelled")

        def updated(component: icalendar.Component) -> None:
            set_attendee(component, attendee)

        await self._edit(provider_booking_id, text, etag, updated)

    # ---- Rescheduler ------------------------------------------------------------------------

    async def reschedule(
        self, provider_booking_id: str, request: BookingRequest, reason: str = ""
    ) -> ProviderBooking:
        event, text, etag = await self._must_load(provider_booking_id)
        if event.cancelled:
            raise ProviderError(PROVIDER, f"booking {provider_booking_id} is cancelled")
        listed = await self._query(request.start, request.end)
        if race.rivals(provider_booking_id, (other.claim() for other in listed)):
            raise SlotTaken(PROVIDER, f"{_ical_utc(request.start)} is busy")

        def moved(component: icalendar.Component) -> None:
            for name, value in (("DTSTART", request.start), ("DTEND", request.end)):
                component.pop(name, None)
                component.add(name, value.astimezone(UTC))
            component.pop("DURATION", None)
            component.pop(SINCE_PROPERTY, None)
            component.add(SINCE_PROPERTY, _ical_utc(datetime.now(UTC)))
            if reason:
                component.add("COMMENT", f"Rescheduled: {reason}")

        result = await self._edit(provider_booking_id, text, etag, moved)
        if not await self._keeps_slot(provider_booking_id, request.start, request.end):
            await self._move_back(provider_booking_id, text)
            logger.info("caldav: another booking took %s meanwhile; moved %s back",
                        request.start, provider_booking_id)  # fmt: skip
            raise SlotTaken(PROVIDER, f"{_ical_utc(request.start)} was booked meanwhile")
        return _booking(result)

    # ---- the write guard --------------------------------------------------------------------

    async def _overlapping(
        self, start: datetime, end: datetime, uid: str, key: str
    ) -> _Event | None:
        """Our own event if it is already there; ``SlotTaken`` if another one blocks."""
        events = await self._query(start, end)
        for event in events:
            if event.uid == uid:
                if event.key != key:
                    raise ProviderError(PROVIDER, f"event {uid} exists but is not this booking")
                return event
        if any(event.blocks for event in events):
            raise SlotTaken(PROVIDER, f"{_ical_utc(start)} is busy")
        return None

    async def _written(self, uid: str, key: str) -> bool:
        """After a PUT whose answer was lost: is our event there? (a failed look says no)"""
        try:
            loaded = await self._load(uid)
        except ProviderError:
            return False
        return loaded is not None and loaded[0].key == key

    async def _keeps_slot(self, uid: str, start: datetime, end: datetime) -> bool:
        """Step 3 of the module doc, after writing ``uid`` into [start, end): may we keep it?
        Ours missing from the listing counts as lost (no rank to hold the slot with)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._rival_grace_s
        while True:
            listed = (event.claim() for event in await self._query(start, end))
            verdict = race.settle(uid, listed, wait_for_rivals=True)
            if verdict is not race.Verdict.WAIT:
                return verdict is race.Verdict.WON
            if loop.time() >= deadline:
                return False  # a rival stayed: it confirmed without seeing ours
            await asyncio.sleep(_RIVAL_POLL_S)

    async def _move_back(self, uid: str, original: str) -> None:
        """Undo a lost move: the old times, rank and comments of ``original`` on the event."""
        _, text, etag = await self._must_load(uid)
        before = next(
            component
            for component in icalendar.Calendar.from_ical(original).walk("VEVENT")
            if str(component.get("UID", "")) == uid and "RECURRENCE-ID" not in component
        )

        def restored(component: icalendar.Component) -> None:
            for name in _MOVED_PROPERTIES:
                component.pop(name, None)
                if name in before:
                    component[name] = before[name]

        await self._edit(uid, text, etag, restored)

    # ---- BookingFinder: a caller's events, whoever wrote them (caldav_find) -------------------

    async def find_bookings(
        self, start: datetime, end: datetime, *, phone: str = "", email: str = ""
    ) -> list[VendorBooking]:
        found: dict[str, VendorBooking] = {}
        headers = {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"}
        for body in caldav_find.query_bodies(start, end, phone=phone, email=email):
            async with self._dav("calendar-query REPORT"):
                response = await self._dav_client().request(self.url, "REPORT", body, headers)
            _check(response, "calendar-query REPORT", self.url)
            for result in response.parse_calendar_query() if response.status == 207 else []:
                if isinstance(result, CalendarQueryResult) and result.calendar_data:
                    for booking in caldav_find.matching(result.calendar_data, start, self._zone,
                                                        phone=phone, email=email):
                        found[booking.provider_booking_id] = booking
        return sorted(found.values(), key=lambda booking: booking.start)

    # ---- reading and editing ----------------------------------------------------------------

    async def _query(self, start: datetime, end: datetime) -> list[_Event]:
        """Every event overlapping [start, end), recurrences expanded by the server, sorted."""
        wide_start = (start - _FLOATING_MARGIN).astimezone(UTC)
        wide_end = (end + _FLOATING_MARGIN).astimezone(UTC)
        async with self._dav("calendar-query REPORT"):
            response = await self._dav_client().calendar_query(
                self.url, wide_start, wide_end, event=True, expand=True
            )
        _check(response, "calendar-query REPORT", self.url)
        events: list[_Event] = []
        for result in response.results or []:
            if isinstance(result, CalendarQueryResult) and result.calendar_data:
                events.extend(_events(result.calendar_data, self._zone))
        overlapping = [event for event in events if event.start < end and event.end > start]
        return sorted(overlapping, key=lambda event: (event.start, event.uid))

    async def _load(self, uid: str) -> tuple[_Event, str, str] | None:
        """Our event ``uid``: parsed, its iCalendar text and its ETag; None if there is none."""
        href = self._href(uid)
        async with self._dav("GET"):
            response = await self._dav_client().request(href, "GET")
        if response.status == 404:
            return None
        _check(response, "GET", href)
        text = str(response.raw)
        master = [event for event in _events(text, self._zone) if event.uid == uid]
        if not master:
            return None
        return master[0], text, str(response.headers.get("ETag") or "")

    async def _must_load(self, uid: str) -> tuple[_Event, str, str]:
        loaded = await self._load(uid)
        if loaded is None:
            raise ProviderError(PROVIDER, f"no booking {uid} in {self.url}")
        return loaded

    async def _edit(
        self, uid: str, text: str, etag: str, change: Callable[[icalendar.Component], None]
    ) -> _Event:
        """Apply ``change`` to the master VEVENT and PUT it back if it is still that version."""
        calendar = icalendar.Calendar.from_ical(text)
        for component in calendar.walk("VEVENT"):
            if str(component.get("UID", "")) == uid and "RECURRENCE-ID" not in component:
                change(component)
                component["SEQUENCE"] = int(component.get("SEQUENCE", 0)) + 1  # RFC 5545 3.8.7.4
                component.pop("DTSTAMP", None)
                component.add("DTSTAMP", datetime.now(UTC))
        new_text = calendar.to_ical().decode()
        href = self._href(uid)
        headers = {**_ICS, "If-Match": etag} if etag else dict(_ICS)
        async with self._dav("PUT"):
            response = await self._dav_client().put(href, new_text, headers)
        if response.status == 412:
            raise ProviderError(PROVIDER, f"event {uid} changed meanwhile", retryable=True)
        _check(response, "PUT", href)
        return next(event for event in _events(new_text, self._zone) if event.uid == uid)

    # ---- the DAV boundary -------------------------------------------------------------------

    def _href(self, uid: str) -> str:
        return f"{self.url}{uid}.ics"

    def _dav_client(self) -> AsyncDAVClient:
        if self._client is None:
            self._client = AsyncDAVClient(
                url=self.url,
                username=self._username,
                password=self._password,
                timeout=int(self._timeout_s) + 1,  # ours (below) fires first
                enable_rfc6764=False,  # the URL is given: no DNS discovery
                rate_limit_handle=False,  # no sleeping inside a caller's turn
            )
        return self._client

    @asynccontextmanager
    async def _dav(self, what: str) -> AsyncIterator[None]:
        """One request: the time budget, and the client's errors mapped to Slotline's."""
        try:
            async with asyncio.timeout(self._timeout_s):
                yield
        except TimeoutError:
            raise ProviderTimeout(
                PROVIDER, f"{what}: no answer within {self._timeout_s:.1f} s"
            ) from None
        except AuthorizationError as exc:
            raise ProviderAuthError(
                PROVIDER, f"{what} → {exc.status or 401}: check the username and CALDAV_PASSWORD"
            ) from None
        except DAVError as exc:
            retryable = exc.status is None or exc.status >= 500 or exc.status == 429
            raise ProviderError(PROVIDER, f"{what}: {exc.reason}", retryable=retryable) from None
        except OSError as exc:  # niquests' connection errors are OSErrors
            raise ProviderError(
                PROVIDER, f"{what}: {type(exc).__name__}: {exc}", retryable=True
            ) from None


def uid_for(idempotency_key: str) -> str:
    """The event UID for a booking request: stable per key, safe in a URL."""
    return "slotline-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def _check(response: DAVResponse, what: str, url: str, *, missing_ok: bool = False) -> None:
    status = response.status
    if status < 400 or (missing_ok and status == 404):
        return
    if status == 404:
        raise ProviderError(PROVIDER, f"{what} → 404: nothing at {url} (check base_url)")
    retryable = status >= 500 or status == 429
    raise ProviderError(
        PROVIDER, f"{what} → {status} {response.reason}".rstrip(), retryable=retryable
    )


def _booking(event: _Event) -> ProviderBooking:
    status: BookingStatus = "cancelled" if event.cancelled else "confirmed"
    return ProviderBooking(event.uid, event.start, event.end, status)


def _ical_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_ICAL_UTC)


def _new_event(uid: str, request: BookingRequest, now: datetime) -> str:
    attendee = request.attendee
    lines = [f"Booked by Slotline for {attendee.name or 'a caller'}"]
    lines += [
        f"{label}: {value}"
        for label, value in (
            ("Email", attendee.email), ("Phone", attendee.phone), ("Time zone", attendee.timezone)
        )
        if value
    ]
    lines += [f"{name}: {value}" for name, value in request.fields.items()]
    event = icalendar.Event()
    event.add("UID", uid)
    event.add("DTSTAMP", now)
    event.add("CREATED", now)
    event.add("DTSTART", request.start.astimezone(UTC))
    event.add("DTEND", request.end.astimezone(UTC))
    event.add("SUMMARY", request.title or f"Appointment with {attendee.name or 'a caller'}")
    event.add("DESCRIPTION", "\n".join(lines))
    if attendee.email:
        event.add("ATTENDEE", _attendee_address(attendee))
    event.add("STATUS", "CONFIRMED")
    event.add("TRANSP", "OPAQUE")
    event.add("SEQUENCE", 0)
    event.add(KEY_PROPERTY, request.idempotency_key)
    calendar = icalendar.Calendar()
    calendar.add("PRODID", _PRODID)
    calendar.add("VERSION", "2.0")
    calendar.add_component(event)
    return str(calendar.to_ical().decode())


def _attendee_address(attendee: Attendee) -> icalendar.vCalAddress:
    address = icalendar.vCalAddress(f"mailto:{attendee.email}")
    address.params["ROLE"] = "REQ-PARTICIPANT"
    address.params["PARTSTAT"] = "NEEDS-ACTION"
    if attendee.name:
        address.params["CN"] = attendee.name
    return address


def set_attendee(component: icalendar.Component, attendee: Attendee) -> None:
    """Make the VEVENT carry ``attendee``: their ATTENDEE (replacing one with the same
    address), the name on the description's first line, the address on its own line."""
    lines = str(component.get("DESCRIPTION", "")).split("\n")
    if attendee.name and lines and lines[0].startswith("Booked by Slotline for "):
        lines[0] = f"Booked by Slotline for {attendee.name}"
    if attendee.email and f"Email: {attendee.email}" not in lines:
        lines.insert(1, f"Email: {attendee.email}")
    component.pop("DESCRIPTION", None)
    component.add("DESCRIPTION", "\n".join(lines))
    if not attendee.email:
        return
    found = component.get("ATTENDEE", [])
    wanted = f"mailto:{attendee.email}".lower()
    kept = [a for a in (found if isinstance(found, list) else [found]) if str(a).lower() != wanted]
    component.pop("ATTENDEE", None)
    for address in (*kept, _attendee_address(attendee)):
        component.add("ATTENDEE", address)


def _events(text: str, zone: ZoneInfo) -> list[_Event]:
    events: list[_Event] = []
    for component in icalendar.Calendar.from_ical(text).walk("VEVENT"):
        if "DTSTART" not in component:
            continue
        raw_start = component.get("DTSTART").dt
        start = _utc(raw_start, zone)
        if "DTEND" in component:
            end = _utc(component.get("DTEND").dt, zone)
        elif "DURATION" in component:
            end = start + component.get("DURATION").dt
        elif isinstance(raw_start, datetime):  # RFC 5545 3.6.1: a date-time alone is an instant
            end = start
        else:  # and a date alone lasts the day
            end = start + timedelta(days=1)
        cancelled = str(component.get("STATUS", "")).upper() == "CANCELLED"
        transparent = str(component.get("TRANSP", "")).upper() == "TRANSPARENT"
        uid, key = str(component.get("UID", "")), str(component.get(KEY_PROPERTY, ""))
        blocks = not (cancelled or transparent)
        events.append(_Event(uid, start, end, cancelled, blocks, _since(component, zone), key))
    return events


def _since(component: icalendar.Component, zone: ZoneInfo) -> datetime:
    """CalDAV's ranking: when the event came to occupy its time (module doc, step 3)."""
    moved = component.get(SINCE_PROPERTY)
    if moved is not None:
        try:  # written by _ical_utc; an X- property reads back as text
            return datetime.strptime(str(moved), _ICAL_UTC).replace(tzinfo=UTC)
        except ValueError:
            pass  # not ours after all: rank by the standard stamps
    stamp = component.get("CREATED") or component.get("DTSTAMP")
    return _utc(stamp.dt, zone) if stamp is not None else _EARLIEST


def _utc(value: date | datetime, zone: ZoneInfo) -> datetime:
    """An iCalendar time in UTC: floating times and dates are the calendar's local time."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)
