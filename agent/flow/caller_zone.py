"""The caller's time zone at the start of a call, and when two zones keep different clocks.

Detection order (:func:`detect_zone`), first that gives a zone wins:

1. a ``user_timezone`` call parameter: Twilio's ``<Parameter>`` on an inbound stream, or the
   campaign contact's column of that name on an outbound one (``agent.dialer.twiml`` passes a
   contact's variables as parameters). An IANA name ("America/Chicago") or a spoken one
   ("Central", "London", "California": :mod:`providers.llm.rules.timezones`);
2. the caller's number (``user_phone``, E.164) through ``phonenumbers``' time-zone data — see
   :func:`zone_for_number` for numbers that map to several zones;
3. the flow's default (the flow's ``timezone``, else its calendar's).

Pure: the only clock is the ``at`` it is given.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import phonenumbers
from phonenumbers import timezone as number_zones

from slotline.agent.booking.zones import load_zone
from slotline.providers.llm.rules.region import region_for
from slotline.providers.llm.rules.timezones import zone_named

log = logging.getLogger(__name__)

PARAMETER = "user_timezone"
PHONE_PARAMETER = "user_phone"
_UNKNOWN = "Etc/Unknown"  # phonenumbers' answer for a number it cannot place
_WEEKS_CHECKED = 53  # a year of weekly samples: every DST rule changes at most twice a year
ZoneSource = Literal["parameter", "number", "default"]


@dataclass(frozen=True, slots=True)
class DetectedZone:
    zone: str
    source: ZoneSource


def detect_zone(parameters: Mapping[str, str], default: str, *, at: datetime) -> DetectedZone:
    """The caller's zone from the call's parameters (see the module docstring)."""
    given = parameters.get(PARAMETER, "").strip()
    if given:
        zone = parse_zone(given)
        if zone is not None:
            return DetectedZone(zone, "parameter")
        log.warning("unknown user_timezone parameter %r; trying the caller's number", given[:40])
    number = parameters.get(PHONE_PARAMETER, "")
    zone = zone_for_number(number, at=at) if number else None
    if zone is not None:
        return DetectedZone(zone, "number")
    return DetectedZone(default, "default")


def parse_zone(text: str) -> str | None:
    """An IANA name as given, else the zone a spoken name stands for; None when neither."""
    if "/" in text or text.upper() == "UTC":
        try:
            load_zone(text)
        except ValueError:
            return None
        return text
    return zone_named(text)


def zone_for_number(number: str, *, at: datetime) -> str | None:
    """The zone of an E.164 number, or None when it cannot be told.

    ``phonenumbers`` gives one zone for most fixed lines (``+44 20…`` London, ``+1 415…`` Los
    Angeles) and several for mobiles and toll-free numbers. Several are kept to those of the
    number's own country (a UK mobile lists Guernsey, Jersey and the Isle of Man too), and the
    rule for the rest: when they all keep the same clock all year round (the same UTC offset
    at every weekly sample of the year from ``at``: so also the same DST dates), the first of
    them; otherwise (an Australian or Russian mobile, a US toll-free number) None: the flow's
    default, and the caller may say their zone."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    zones = [z for z in number_zones.time_zones_for_number(parsed) if z != _UNKNOWN]
    if not zones:
        return None
    main = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
    countries = {phonenumbers.region_code_for_number(parsed) or main, main}
    own = [z for z in zones if region_for("", z) in countries]
    # the country code's main country first: a UK mobile is London's before Guernsey's
    candidates = sorted(own or zones, key=lambda z: region_for("", z) != main)
    if len(candidates) == 1 or _same_clock(candidates, at):
        return candidates[0]
    return None


def _same_clock(zones: list[str], at: datetime) -> bool:
    loaded = [load_zone(zone) for zone in zones]
    for week in range(_WEEKS_CHECKED):
        moment = at + timedelta(weeks=week)
        if len({moment.astimezone(zone).utcoffset() for zone in loaded}) > 1:
            return False
    return True

