"""``slotline calendars list``: the ids to configure, as the vendor knows them.

- GoHighLevel (default): the calendars of a location (``GET /calendars/?locationId=``,
  ``GHL_API_TOKEN``). The locations asked are ``--location`` if given, else those of the
  configured ``ghl`` calendars (with their ``base_url``). Each prints as ``id  name  slot length
  type``.
- Cal.com (``--provider calcom``): the API key owner's event types (``GET /v2/event-types``,
  ``CALCOM_API_KEY``), each as ``id  title  length  required questions``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slotline.agent.config_models import Secrets, Settings
from slotline.agent.server.calendars import GHL_BASE_URL
from slotline.providers.calendars import ghl_settings
from slotline.providers.calendars.ghl_wire import CALENDARS_VERSION, error_text
from slotline.providers.errors import ProviderError
from slotline.providers.http import JsonHttpClient, StaticAuth, vendor_message


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    calendars = sub.add_parser("calendars", help="look up calendars at a vendor")
    commands = calendars.add_subparsers(dest="calendars_command", required=True)
    listing = commands.add_parser(
        "list", help="the calendars of a GoHighLevel location (their ids, names, slot lengths)"
    )
    listing.add_argument("--config", type=Path, help="settings naming ghl calendars")
    listing.add_argument("--location", help="a GHL location id (default: the configured ones)")
    listing.add_argument("--base-url", help="the vendor's API root (default: its public one)")
    listing.add_argument("--provider", choices=("ghl", "calcom"), default="ghl")


def locations(settings: Settings, location: str | None, base_url: str | None) -> list[
    tuple[str, str]
]:
    """(API root, location id) pairs to list, without repeats."""
    if location:
        return [((base_url or GHL_BASE_URL).rstrip("/"), location)]
    found: list[tuple[str, str]] = []
    for calendar in settings.calendars.values():
        if calendar.provider == "ghl" and calendar.location_id:
            pair = ((base_url or calendar.base_url or GHL_BASE_URL).rstrip("/"),
                    calendar.location_id)
            if pair not in found:
                found.append(pair)
    return found


async def list_command(settings: Settings, secrets: Secrets, args: argparse.Namespace) -> int:
    if args.provider == "calcom":
        return await _calcom_event_types(settings, secrets, args.base_url)
    asked = locations(settings, args.location, args.base_url)
    if not asked:
        print("slotline: no GoHighLevel location: pass --location ID or configure a ghl "
              "calendar with location_id", file=sys.stderr)
        return 2
    if secrets.ghl_api_token is None:
        print("slotline: GHL_API_TOKEN is not set", file=sys.stderr)
        return 2
    token = secrets.ghl_api_token.get_secret_value()
    failed = False
    for root, location in asked:
        client = JsonHttpClient(ghl_settings.PROVIDER, root, auth=StaticAuth(f"Bearer {token}"))
        try:
            response = await client.request(
                "GET", "/calendars/", params={"locationId": location},
                headers={"Version": CALENDARS_VERSION, "Accept": "application/json"},
            )
            if response.status != 200:
                raise ProviderError(ghl_settings.PROVIDER, f"{response.status}: "
                                    f"{error_text(response.body, response.text)}")
            found = ghl_settings.parse_calendars(response.body)
        except ProviderError as error:
            print(f"slotline: location {location}: {error}", file=sys.stderr)
            failed = True
            continue
        finally:
            await client.aclose()
        print(f"location {location}: {len(found)} calendar(s)")
        for line in ghl_settings.describe(found):
            print(f"  {line}")
    return 1 if failed else 0


async def _calcom_event_types(settings: Settings, secrets: Secrets, base_url: str | None) -> int:
    from slotline.providers.calendars import calcom_fields
    from slotline.providers.calendars.calcom import DEFAULT_BASE_URL

    if secrets.calcom_api_key is None:
        print("slotline: CALCOM_API_KEY is not set", file=sys.stderr)
        return 2
    configured = [c.base_url for c in settings.calendars.values()
                  if c.provider == "calcom" and c.base_url]
    root = (base_url or (configured[0] if configured else "") or DEFAULT_BASE_URL).rstrip("/")
    key = secrets.calcom_api_key.get_secret_value()
    client = JsonHttpClient(calcom_fields.PROVIDER, root, auth=StaticAuth(f"Bearer {key}"))
    try:
        response = await client.request(
            "GET", "/v2/event-types",
            headers={"cal-api-version": calcom_fields.EVENT_TYPES_VERSION},
        )
        if response.status != 200:
            raise ProviderError(calcom_fields.PROVIDER, f"{response.status}: "
                                f"{vendor_message(response.body, response.text)}")
        found = calcom_fields.parse_event_types(response.body)
    except ProviderError as error:
        print(f"slotline: Cal.com event types: {error}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()
    print(f"Cal.com: {len(found)} event type(s)")
    for item in found:
        asks = ", ".join(item.required_slugs)
        line = f"{item.event_type_id}  {item.title or '(no title)'}  {item.length_min} min"
        if item.length_options_min:  # a variable length: duration_min picks one
            line += f" (lengths {', '.join(str(m) for m in item.length_options_min)})"
        print(f"  {line}  asks: {asks}" if asks else f"  {line}")
    return 0
