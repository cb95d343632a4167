"""Spoken numbers, addresses and numeric dates read by the book: phone numbers in E.164 through
``phonenumbers`` in the caller's region, e-mail addresses through ``email-validator`` with their
letters kept, numeric dates in the region's order. And where the region comes from: the flow,
else the ``region`` setting, else the country of the flow's zone.

`now` is Tuesday 2026-11-24 10:00 local throughout.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from slotline.agent.call.responder import CallerSaid, CallStarted
from slotline.agent.config_models import Settings
from slotline.agent.flow import FlowEngine, parse_flow
from slotline.providers.llm.rules import Extraction, extract
from slotline.providers.llm.rules.region import date_order, region_for

NOW = datetime(2026, 11, 24, 10, 0)
LONDON, NEW_YORK = "Europe/London", "America/New_York"


def read(kind: str, text: str, timezone: str, region: str = "") -> Extraction | None:
    return extract(kind, text, now=NOW, timezone=timezone, region=region)


# --- phone numbers -----------------------------------------------------------------------------

PHONES = [  # (said, zone, region setting, E.164)
    ("oh seven seven oh oh nine oh oh one two three", LONDON, "", "+447700900123"),
    ("07700 900123", LONDON, "", "+447700900123"),
    ("it's oh two oh, seven nine four six, oh nine five eight", LONDON, "", "+442079460958"),
    ("double oh four four seven seven oh oh nine oh oh one two three", LONDON, "",
     "+447700900123"),
    ("four four seven seven oh oh nine oh oh one two three", LONDON, "", "+447700900123"),
    ("oh seven seven oh oh nine oh oh one two three", NEW_YORK, "GB", "+447700900123"),
    ("two one two five five five oh one two three", NEW_YORK, "", "+12125550123"),
    ("my cell's two one two, five five five, oh one two three", NEW_YORK, "", "+12125550123"),
    ("two one two five five five oh one two three", LONDON, "US", "+12125550123"),
    ("plus one two one two five five five oh one two three", LONDON, "", "+12125550123"),
    ("oh three one two three four five six seven eight", "Europe/Paris", "", "+33312345678"),
    ("oh one five one one two three four five six seven", "Europe/Berlin", "",
     "+491511234567"),
]


@pytest.mark.parametrize(("said", "zone", "region", "e164"), PHONES)
def test_a_phone_number_is_read_in_the_callers_region(
    said: str, zone: str, region: str, e164: str
) -> None:
    found = read("phone", said, zone, region)
    assert found is not None and found.value == e164
    assert found.confidence >= 0.8


def test_a_uk_mobile_said_in_new_york_is_not_a_us_number() -> None:
    """Eleven digits with a leading 0 are no North American number: without a region that
    reads them, they stay a low-confidence guess, never a wrong +1 number."""
    found = read("phone", "oh seven seven oh oh nine oh oh one two three", NEW_YORK)
    assert found is not None and not found.value.startswith("+1") and found.confidence <= 0.6


def test_a_valid_number_is_surer_than_a_merely_possible_one() -> None:
    valid = read("phone", "oh two oh seven nine four six oh nine five eight", LONDON)
    drama_range = read("phone", "oh seven seven oh oh nine oh oh one two three", LONDON)
    assert valid is not None and drama_range is not None
    assert valid.confidence > drama_range.confidence


@pytest.mark.parametrize("said", ["plus four four one two three", "plus nine nine nine one "
                                  "two three four five six seven eight nine"])
def test_an_international_number_that_cannot_exist_is_not_a_phone(said: str) -> None:
    assert read("phone", said, LONDON) is None


# --- e-mail addresses ----------------------------------------------------------------------------

EMAILS = [  # (said or written, address)
    ("zoë dot bär at gmail dot com", "zoë.bär@gmail.com"),
    ("it's josé at example dot org thanks", "josé@example.org"),
    ("françois@exemple.fr", "françois@exemple.fr"),
    ("write to jürgen at müller dot de please", "jürgen@müller.de"),
    ("Ana.Lucía@Example.ES", "ana.lucía@example.es"),
    ("the address is priya dot n at mail dot co dot in", "priya.n@mail.co.in"),
]


@pytest.mark.parametrize(("said", "address"), EMAILS)
def test_an_email_keeps_every_letter(said: str, address: str) -> None:
    found = read("email", said, LONDON)
    assert found is not None and found.value == address


NOT_EMAILS = [
    "zoë dot at gmail dot com",  # two dots in a row
    "josé at localhost",  # no domain
    "josé at example dot test",  # a special-use name, never deliverable
    "josé at example dot one two three",  # a numeric top-level domain
    "zoë at exam_ple dot com",  # an underscore in a domain name
]


@pytest.mark.parametrize("said", NOT_EMAILS)
def test_an_address_email_validator_refuses_is_not_an_email(said: str) -> None:
    assert read("email", said, LONDON) is None


# --- numeric dates -------------------------------------------------------------------------------

DATES = [  # (said, zone, region setting, ISO date)
    ("5/1", LONDON, "", "2027-01-05"),
    ("5/1", NEW_YORK, "", "2027-05-01"),
    ("can we do 5/1 please", LONDON, "", "2027-01-05"),
    ("5/1", NEW_YORK, "GB", "2027-01-05"),
    ("5/1", LONDON, "US", "2027-05-01"),
    ("13/12", "Australia/Sydney", "", "2026-12-13"),
    ("12/13", "America/Chicago", "", "2026-12-13"),
    ("3/2/2027", "Europe/Dublin", "", "2027-02-03"),
    ("3/2/2027", "America/Los_Angeles", "", "2027-03-02"),
    ("2027/1/5", "Asia/Tokyo", "", "2027-01-05"),
]


@pytest.mark.parametrize(("said", "zone", "region", "iso"), DATES)
def test_a_numeric_date_is_read_in_the_regions_order(
    said: str, zone: str, region: str, iso: str
) -> None:
    found = read("date", said, zone, region)
    assert found is not None and found.value == iso


def test_a_month_first_date_that_cannot_be_day_first_is_no_date_in_london() -> None:
    assert read("date", "12/13", LONDON) is None


# --- where the region comes from -----------------------------------------------------------------

REGIONS = [  # (setting, zone, region)
    ("", LONDON, "GB"), ("", NEW_YORK, "US"), ("", "Australia/Sydney", "AU"),
    ("", "Asia/Kolkata", "IN"), ("", "UTC", "US"), ("gb", NEW_YORK, "GB"), ("DE", LONDON, "DE"),
]


@pytest.mark.parametrize(("setting", "zone", "region"), REGIONS)
def test_the_region_is_the_setting_else_the_zones_country(
    setting: str, zone: str, region: str
) -> None:
    assert region_for(setting, zone) == region


@pytest.mark.parametrize(("region", "order"), [
    ("GB", "DMY"), ("US", "MDY"), ("PH", "MDY"), ("AU", "DMY"), ("JP", "YMD"), ("DE", "DMY"),
])
def test_date_order_by_region(region: str, order: str) -> None:
    assert date_order(region) == order


def _phone_flow(**header: Any) -> FlowEngine:
    document = {
        "name": "t", "start": "ask", "timezone": NEW_YORK, **header,
        "nodes": {
            "ask": {"type": "conversation", "say": "Your number?", "collect": "user_phone",
                    "extractor": "phone", "next": "bye"},
            "bye": {"type": "end_call", "say": "Bye."},
        },
    }
    region = header.pop("engine_region", "")
    document.pop("engine_region", None)
    return FlowEngine(parse_flow(document, source="test"), now=lambda: NOW, region=region)


@pytest.mark.parametrize(("header", "e164"), [
    ({}, "07700900123"),  # New York, no region anywhere: no +1 invented
    ({"engine_region": "GB"}, "+447700900123"),  # the setting
    ({"region": "GB"}, "+447700900123"),  # the flow
    ({"region": "GB", "engine_region": "US"}, "+447700900123"),  # the flow wins
])
def test_the_engine_reads_numbers_in_the_flows_or_the_settings_region(
    header: dict[str, str], e164: str
) -> None:
    engine = _phone_flow(**header)
    engine.handle(CallStarted("CA1"))
    engine.handle(CallerSaid("oh seven seven oh oh nine oh oh one two three"))
    assert engine.variables["user_phone"] == e164


def test_the_region_setting_is_two_capital_letters() -> None:
    assert Settings(region="GB").region == "GB"
    with pytest.raises(ValueError):
        Settings(region="Britain")
