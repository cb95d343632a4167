"""``slotline calendars list``: the calendars of a GoHighLevel location, so a user can find the
``calendar_id`` to configure (``GET /calendars/?locationId=``, ``GHL_API_TOKEN``).

The locations asked are ``--location`` if given, else those of the configured ``ghl`` calendars
(with their ``base_url``). Each calendar prints as ``id  name  slot length  type``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slotline.agent.calendars import GHL_BASE_URL
from slotline.agent.config_models import Secrets, Settings
from slotline.providers.calendars import ghl_settings
from slotline.providers.calendars.ghl_wire import CALENDARS_VERSION, error_text
from slotline.providers.errors import ProviderError
from slotline.providers.http import JsonHttpClient, StaticAuth


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    calendars = sub.add_parser("calendars", help="look up calendars at a vendor")
    commands = calendars.add_subparsers(dest="calendars_command", required=True)
    listing = commands.add_parser(
        "list", help="the calendars of a GoHighLevel location (their ids, names, slot lengths)"
    )
    listing.add_argument("--config", type=Path, help="settings naming ghl calendars")
    listing.add_argument("--location", help="a GHL location id (default: the configured ones)")
    listing.add_argument("--base-url", help=f"the GHL API root (default: {GHL_BASE_URL})")


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
