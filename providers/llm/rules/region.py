"""The country the caller's numbers and numeric dates are read in.

A phone number said without its country code ("oh seven seven oh oh, nine oh oh one two
three") and a numeric date ("5/1") mean different things in different countries: the first is
``+447700900123`` in the United Kingdom, the second is the 5th of January there and May 1st in
the United States. The region is an ISO 3166-1 alpha-2 code: the flow's ``region``, else the
``region`` setting, else the country of the flow's time zone (tzdata's ``zone.tab``), else
``US``.

    >>> region_for("", "Europe/London")
    'GB'
    >>> date_order("GB"), date_order("US"), date_order("JP")
    ('DMY', 'MDY', 'YMD')
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import Literal

DEFAULT_REGION = "US"  # a zone without a country (UTC, Etc/GMT+5): the project's first market
DateOrder = Literal["DMY", "MDY", "YMD"]

# Where a numeric date is written month first (CLDR's short date patterns for these countries'
# main locales); the United States' territories and freely associated states follow it.
_MONTH_FIRST = frozenset(("US", "PR", "GU", "VI", "AS", "MP", "UM", "FM", "MH", "PW", "PH"))
# Where it is written year first ("2026/12/1"); "5/1" then still reads month/day.
_YEAR_FIRST = frozenset(("CN", "JP", "KR", "KP", "TW", "HU", "LT", "MN", "IR"))


def region_for(configured: str, timezone: str) -> str:
    """``configured`` (upper-cased) when given, else the country of ``timezone``."""
    if configured:
        return configured.upper()
    return _zone_countries().get(timezone, DEFAULT_REGION)


def date_order(region: str) -> DateOrder:
    """The order a numeric date is written in ``region`` (dateparser's ``DATE_ORDER``)."""
    if region in _MONTH_FIRST:
        return "MDY"
    if region in _YEAR_FIRST:
        return "YMD"
    return "DMY"


@functools.cache
def _zone_countries() -> dict[str, str]:
    """IANA zone name -> ISO country, from the ``zone.tab`` the tzdata package ships."""
    text = importlib.resources.files("tzdata").joinpath("zoneinfo/zone.tab").read_text()
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        country, _coordinates, zone, *_comment = line.split("\t")
        found[zone] = country
    return found
