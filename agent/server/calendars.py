"""Settings → calendar adapters: the one place that knows which module serves which provider.

``local`` calendars are left to the booking service (they live in the store). A provider name
that is not built in is a plug-in (``agent.server.registry``): its factory builds the calendar,
closed with the server if it has ``aclose()``. Every other calendar gets its vendor adapter with its
``base_url`` (the vendor's public root when empty) and its secret from the environment; a
missing secret or key is a ``ConfigError`` at start-up naming the calendar. Adapters share the
server's HTTP session and close with it.

When the server starts (``CalendarAdapters.start``), each adapter that follows settings held at
its vendor (``VendorSettingsReader``: a Cal.com event type, a GHL calendar) reads them, and the
flows are checked against the fields the vendor requires (``agent.booking.vendor_fields``), and
the booking actions against what a vendor-computed calendar can honour
(``agent.booking.vendor_rules``): a wrong id or token, a required field no flow variable fills,
or a buffer or slot interval on such a calendar stops start-up with the reason.
A vendor that cannot be reached then is logged and read again on the first booking.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import aiohttp
from pydantic import SecretStr

from slotline.agent.config_models import CalendarSettings, Secrets, Settings
from slotline.agent.flow.model import Flow
from slotline.agent.server.registry import CALENDARS, ProviderContext
from slotline.providers.calendars.base import CalendarProvider
from slotline.providers.calendars.vendor import VendorSettingsReader
from slotline.providers.errors import ConfigError, ProviderError

_SOURCE = "settings"
GHL_BASE_URL = "https://services.leadconnectorhq.com"
logger = logging.getLogger(__name__)


class _Closable(Protocol):
    async def aclose(self) -> None: ...


@dataclass
class CalendarAdapters:
    """The vendor calendars by name, and what to close when the server stops."""

    by_name: dict[str, CalendarProvider] = field(default_factory=dict)
    closables: list[_Closable] = field(default_factory=list)
    settings: Settings | None = None
    flows: Sequence[Flow] = ()  # checked against the vendors' required fields at start

    async def start(self) -> None:
        """Read the vendors' own settings, then check the flows against them (module doc)."""
        for name, adapter in self.by_name.items():
            if not isinstance(adapter, VendorSettingsReader):
                continue
            try:
                await adapter.prepare()
            except ProviderError as failed:
                if not failed.retryable:
                    raise ConfigError(f"calendar {name}", "vendor settings", str(failed)) from None
                logger.warning("calendar %s: its vendor's settings are unread (%s); read again "
                               "on the first booking", name, failed)
        if self.settings is not None:
            from slotline.agent.booking import vendor_rules
            from slotline.agent.booking.vendor_fields import check_flows

            refused = vendor_rules.refusals(self.settings, self.by_name)
            if refused:
                raise ConfigError(_SOURCE, "booking_actions", "; ".join(refused))
            for note in vendor_rules.length_notes(self.settings, self.by_name):
                logger.warning("%s", note)
            check_flows(self.flows, self.settings, self.by_name)

    async def aclose(self) -> None:
        for item in reversed(self.closables):
            await item.aclose()
        self.closables.clear()


def _secret(value: SecretStr | None, env_name: str, calendar: str) -> str:
    if value is None or not value.get_secret_value():
        raise ConfigError(
            "environment", env_name, f"not set, and calendar {calendar!r} needs it"
        )
    return value.get_secret_value()


def _required(value: Any, calendar: str, key: str) -> Any:
    if value in (None, ""):
        raise ConfigError(_SOURCE, f"calendars.{calendar}.{key}", "required for this provider")
    return value


Builder = Callable[[str, CalendarSettings, Secrets, aiohttp.ClientSession, CalendarAdapters],
                   CalendarProvider]


def _calcom(name: str, cal: CalendarSettings, secrets: Secrets,
            session: aiohttp.ClientSession, out: CalendarAdapters) -> CalendarProvider:
    from slotline.providers.calendars.calcom import DEFAULT_BASE_URL, CalcomCalendar

    adapter = CalcomCalendar(
        cal.base_url or DEFAULT_BASE_URL,
        _secret(secrets.calcom_api_key, "CALCOM_API_KEY", name),
        int(_required(cal.event_type_id, name, "event_type_id")),
        session=session,
        fields=cal.fields,
    )
    out.closables.append(adapter)
    return adapter


def _ghl(name: str, cal: CalendarSettings, secrets: Secrets,
         session: aiohttp.ClientSession, out: CalendarAdapters) -> CalendarProvider:
    from slotline.providers.calendars.ghl import GhlCalendar
    from slotline.providers.calendars.ghl_settings import BookingOptions

    adapter = GhlCalendar(
        cal.base_url or GHL_BASE_URL,
        _secret(secrets.ghl_api_token, "GHL_API_TOKEN", name),
        str(_required(cal.calendar_id, name, "calendar_id")),
        str(_required(cal.location_id, name, "location_id")),
        session=session,
        timezone=cal.timezone,
        booking=BookingOptions(cal.auto_confirm, cal.title, tuple(cal.tags), dict(cal.fields)),
    )
    out.closables.append(adapter)
    return adapter


def _google(name: str, cal: CalendarSettings, secrets: Secrets,
            session: aiohttp.ClientSession, out: CalendarAdapters) -> CalendarProvider:
    from slotline.providers.calendars.google import DEFAULT_BASE_URL, GoogleCalendar
    from slotline.providers.calendars.google_auth import (
        GOOGLE_TOKEN_URL,
        RefreshTokenAuth,
        ServiceAccountAuth,
    )
    from slotline.providers.http import AuthSource

    auth: AuthSource
    if secrets.google_application_credentials is not None:
        service_account = ServiceAccountAuth(
            secrets.google_application_credentials.get_secret_value(),
            cal.token_url or None,
            subject=cal.subject or None,
            session=session,
        )
        out.closables.append(service_account)
        auth = service_account
    elif secrets.google_oauth_refresh_token is not None:
        refresh = RefreshTokenAuth(
            str(_required(cal.client_id, name, "client_id")),
            _secret(secrets.google_oauth_client_secret, "GOOGLE_OAUTH_CLIENT_SECRET", name),
            secrets.google_oauth_refresh_token.get_secret_value(),
            cal.token_url or GOOGLE_TOKEN_URL,
            session=session,
        )
        out.closables.append(refresh)
        auth = refresh
    else:
        raise ConfigError(
            "environment", "GOOGLE_APPLICATION_CREDENTIALS",
            f"not set (nor GOOGLE_OAUTH_REFRESH_TOKEN), and calendar {name!r} needs one",
        )
    adapter = GoogleCalendar(
        cal.base_url or DEFAULT_BASE_URL,
        str(_required(cal.calendar_id, name, "calendar_id")),
        auth,
        cal.timezone,
        session=session,
        invite_attendees=cal.invite_attendees,
    )
    out.closables.append(adapter)
    return adapter


def _outlook(name: str, cal: CalendarSettings, secrets: Secrets,
             session: aiohttp.ClientSession, out: CalendarAdapters) -> CalendarProvider:
    from slotline.providers.calendars.ms_auth import ClientCredentialsAuth, default_token_url
    from slotline.providers.calendars.outlook import DEFAULT_BASE_URL, OutlookCalendar

    tenant = str(_required(cal.tenant_id, name, "tenant_id"))
    auth = ClientCredentialsAuth(
        cal.token_url or default_token_url(tenant),
        str(_required(cal.client_id, name, "client_id")),
        _secret(secrets.ms_client_secret, "MS_CLIENT_SECRET", name),
        session=session,
    )
    adapter = OutlookCalendar(
        cal.base_url or DEFAULT_BASE_URL,
        str(_required(cal.user, name, "user")),
        auth,
        cal.timezone,
        session=session,
    )
    out.closables.extend((auth, adapter))
    return adapter


def _caldav(name: str, cal: CalendarSettings, secrets: Secrets,
            session: aiohttp.ClientSession, out: CalendarAdapters) -> CalendarProvider:
    from slotline.providers.calendars.caldav import CaldavCalendar

    password = secrets.caldav_password.get_secret_value() if secrets.caldav_password else None
    adapter = CaldavCalendar(
        str(_required(cal.base_url, name, "base_url")), cal.username or None, password,
        cal.timezone,
    )
    out.closables.append(adapter)
    return adapter


def _webhook(name: str, cal: CalendarSettings, secrets: Secrets,
             session: aiohttp.ClientSession, out: CalendarAdapters) -> CalendarProvider:
    from slotline.providers.calendars.webhook import WebhookCalendar

    adapter = WebhookCalendar(
        str(_required(cal.base_url, name, "base_url")),
        _secret(secrets.slotline_webhook_secret, "SLOTLINE_WEBHOOK_SECRET", name),
        session=session,
    )
    out.closables.append(adapter)
    return adapter


def _plugin(name: str, cal: CalendarSettings, secrets: Secrets,
            session: aiohttp.ClientSession, out: CalendarAdapters) -> CalendarProvider:
    context = ProviderContext(cal.provider, cal, secrets, session, calendar=name)
    adapter = CALENDARS.build(context, f"calendars.{name}.provider")
    close = getattr(adapter, "aclose", None)
    if callable(close):
        out.closables.append(cast(_Closable, adapter))
    return adapter


_BUILDERS: Mapping[str, Builder] = {
    "calcom": _calcom,
    "ghl": _ghl,
    "google": _google,
    "outlook": _outlook,
    "caldav": _caldav,
    "webhook": _webhook,
}


def build_calendars(
    settings: Settings,
    secrets: Secrets,
    session: aiohttp.ClientSession,
    *,
    flows: Sequence[Flow] = (),
) -> CalendarAdapters:
    """An adapter for every non-``local`` calendar in ``settings``; ``flows`` are checked
    against the vendors' required fields when the adapters start."""
    adapters = CalendarAdapters(settings=settings, flows=tuple(flows))
    try:
        for name, calendar in settings.calendars.items():
            if calendar.provider not in CALENDARS.builtin:
                adapters.by_name[name] = _plugin(name, calendar, secrets, session, adapters)
                continue
            builder = _BUILDERS.get(calendar.provider)
            if builder is not None:
                adapters.by_name[name] = builder(name, calendar, secrets, session, adapters)
    except ValueError as exc:  # an adapter refusing a malformed value (a URL, a zone)
        raise ConfigError(_SOURCE, "calendars", str(exc)) from exc
    return adapters
