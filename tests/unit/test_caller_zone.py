"""The caller's time zone, by tables: what a caller says (providers.llm.rules.timezones), what
the call starts with (agent.flow.caller_zone), and the business's clock named beside theirs on
both sides of the 2026 clock changes (agent.booking.speech)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from slotline.agent.booking.speech import (
    clocks_differ,
    speak_clock,
    speak_elsewhere,
    spoken_zone,
)
from slotline.agent.booking.zones import load_zone
from slotline.agent.dialer.contacts import Contact, parse_csv
from slotline.agent.dialer.twiml import stream_parameters
from slotline.agent.flow.caller_zone import detect_zone, parse_zone, zone_for_number
from slotline.agent.store.dialer_records import AttemptRow
from slotline.providers.llm import rules
from slotline.providers.llm.rules.timezones import ZONE_PHRASES, zone_named, zone_stated

LA, NY, CHI, DEN = "America/Los_Angeles", "America/New_York", "America/Chicago", "America/Denver"
LON, BER = "Europe/London", "Europe/Berlin"
DEC = datetime(2026, 12, 5, 12, tzinfo=UTC)


@pytest.mark.parametrize(("said", "zone", "asked", "rest"), [
    ("I'm in California", LA, False, ""),
    ("i am in california", LA, False, ""),
    ("Pacific time", LA, False, ""),
    ("London time", LON, False, ""),
    ("central time", CHI, False, ""),
    ("mountain standard time", DEN, False, ""),
    ("eastern time please", NY, False, ""),
    ("I'm in Berlin", BER, False, ""),
    ("I live in Texas", CHI, False, ""),
    ("we're in washington d c", NY, False, ""),
    ("I'm in Washington", LA, False, ""),
    ("i'm calling from new york city", NY, False, ""),
    ("my time zone is pacific", LA, False, ""),
    ("What time is that in Pacific?", LA, True, ""),
    ("what's that in london time", LON, True, ""),
    ("tomorrow at 2 pm pacific time", LA, False, "tomorrow at 2 pm"),
    ("next tuesday please, I'm in London", LON, False, "next tuesday please"),
    ("I'm in Paris", "Europe/Paris", False, ""),
    ("i'm in the u k", LON, False, ""),
])
def test_a_stated_zone_is_read_with_its_cue(said: str, zone: str, asked: bool, rest: str) -> None:
    heard = zone_stated(said)
    assert heard is not None, said
    assert (heard.zone, heard.asked, heard.rest) == (zone, asked, rest)


@pytest.mark.parametrize("said", [
    "my name is georgia",  # a name, not a state
    "phoenix",  # an answer to a choice
    "eastern",  # a bare zone word: only a zone question takes it (zone_named)
    "next tuesday at three",
    "the afternoon please",
    "what time is that",
    "john dot smith at example dot com",
    "i'm in a meeting until three",
    "yes that in berlin",  # "yes that is the one", misheard: a question's cue, no question
    "is that in london",
    "",
])
def test_no_zone_without_a_cue(said: str) -> None:
    assert zone_stated(said) is None


@pytest.mark.parametrize(("said", "zone"), [
    ("eastern", NY), ("Pacific", LA), ("the central one", CHI), ("California", LA),
    ("berlin", BER), ("London", LON), ("greenwich mean time", LON), ("arizona", "America/Phoenix"),
    ("hawaii", "Pacific/Honolulu"), ("sydney", "Australia/Sydney"), ("nothing here", None),
])
def test_a_zone_answer_needs_no_cue(said: str, zone: str | None) -> None:
    assert zone_named(said) == zone


def test_every_phrase_names_a_real_zone() -> None:
    for phrase, zone in ZONE_PHRASES.items():
        assert parse_zone(zone) == zone, phrase
        assert zone_named(phrase) == zone, phrase


@pytest.mark.parametrize(("parameters", "zone", "source"), [
    ({"user_timezone": "America/Chicago"}, CHI, "parameter"),
    ({"user_timezone": "Central", "user_phone": "+442079460000"}, CHI, "parameter"),
    ({"user_timezone": "London"}, LON, "parameter"),
    ({"user_timezone": "UTC"}, "UTC", "parameter"),
    ({"user_timezone": "Mars/Olympus", "user_phone": "+442079460000"}, LON, "number"),
    ({"user_phone": "+442079460000"}, LON, "number"),  # a London fixed line
    ({"user_phone": "+447911123456"}, LON, "number"),  # UK mobile: London, not Guernsey
    ({"user_phone": "+12135550123"}, LA, "number"),  # +1 213: Los Angeles
    ({"user_phone": "+4930901820"}, BER, "number"),
    ({"user_phone": "+61412345678"}, NY, "default"),  # Australian mobile: several clocks
    ({"user_phone": "+18005550123"}, NY, "default"),  # toll-free: the whole NANP
    ({"user_phone": "+447700900123"}, NY, "default"),  # a drama number: nowhere
    ({"user_phone": "5551234567"}, NY, "default"),  # not E.164
    ({}, NY, "default"),
])
def test_detection_order(parameters: dict[str, str], zone: str, source: str) -> None:
    found = detect_zone(parameters, NY, at=DEC)
    assert (found.zone, found.source) == (zone, source)


def test_several_zones_of_one_clock_give_the_country_s_own() -> None:
    # +44 7911 lists Guernsey, the Isle of Man, Jersey and London: one clock all year
    assert zone_for_number("+447911123456", at=datetime(2026, 7, 1, tzinfo=UTC)) == LON


# 15:00 for a London caller of a New York business, around the 2026 clock changes: US 8 March
# and 1 November, EU 29 March and 25 October. Between them the clocks are 4 hours apart.
@pytest.mark.parametrize(("utc", "london", "new_york"), [
    ("2026-03-06T15:00", "3 pm", "that's 10 am Eastern time"),  # both standard: 5 h
    ("2026-03-10T15:00", "3 pm", "that's 11 am Eastern time"),  # US on DST, UK not: 4 h
    ("2026-03-27T15:00", "3 pm", "that's 11 am Eastern time"),
    ("2026-03-31T14:00", "3 pm", "that's 10 am Eastern time"),  # both on DST: 5 h
    ("2026-10-23T14:00", "3 pm", "that's 10 am Eastern time"),
    ("2026-10-27T15:00", "3 pm", "that's 11 am Eastern time"),  # UK back, US not yet: 4 h
    ("2026-11-03T15:00", "3 pm", "that's 10 am Eastern time"),  # both standard again
    ("2026-03-08T12:00", "noon", "that's 8 am Eastern time"),  # the US change day itself
    ("2026-10-25T09:00", "9 am", "that's 5 am Eastern time"),  # the EU change day itself
    ("2026-11-02T03:30", "3:30 am", "that's 10:30 pm Eastern time on Sunday"),  # another day
])
def test_the_business_clock_beside_a_london_caller(utc: str, london: str, new_york: str) -> None:
    start = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert speak_clock(start.astimezone(load_zone(LON))) == london
    assert speak_elsewhere(start, LON, NY) == new_york


# Pacific and Eastern each change at 2 am local time, three hours apart: for those hours the
# clocks are 4 (March) or 2 (November) hours apart, and the caller hears exactly that.
@pytest.mark.parametrize(("utc", "los_angeles", "new_york"), [
    ("2026-03-08T06:30", "10:30 pm", "that's 1:30 am Eastern time on Sunday"),  # 3 h
    ("2026-03-08T07:30", "11:30 pm", "that's 3:30 am Eastern time on Sunday"),  # 4 h
    ("2026-03-08T10:30", "3:30 am", "that's 6:30 am Eastern time"),  # both on DST: 3 h
    ("2026-11-01T05:30", "10:30 pm", "that's 1:30 am Eastern time on Sunday"),  # first 1:30
    ("2026-11-01T06:30", "11:30 pm", "that's 1:30 am Eastern time on Sunday"),  # 2 h: again
    ("2026-07-01T18:00", "11 am", "that's 2 pm Eastern time"),
])
def test_pacific_beside_eastern_across_their_changes(
    utc: str, los_angeles: str, new_york: str
) -> None:
    start = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert speak_clock(start.astimezone(load_zone(LA))) == los_angeles
    assert speak_elsewhere(start, LA, NY) == new_york


def test_no_second_clock_when_both_read_alike() -> None:
    at = datetime(2026, 7, 1, 14, tzinfo=UTC)
    assert speak_elsewhere(at, "Europe/Guernsey", LON) == ""
    assert speak_elsewhere(at, NY, NY) == ""
    assert not clocks_differ("America/Detroit", NY, at)
    assert clocks_differ(LON, "Europe/Lisbon", at) is False  # same clock, other country
    assert [spoken_zone(z) for z in (NY, CHI, LA, LON, BER, "Asia/Tokyo")] == [
        "Eastern", "Central", "Pacific", "UK", "Berlin", "Tokyo"]


@pytest.mark.parametrize(("said", "zone"), [
    ("pacific", LA), ("I'm in Texas", CHI), ("central time please", CHI), ("berlin", BER),
    ("America/Chicago", CHI), ("UTC", "UTC"), ("Mars/Olympus", None), ("no idea", None),
])
def test_the_timezone_extractor_kind(said: str, zone: str | None) -> None:
    found = rules.extract("timezone", said, now=DEC, timezone=NY)
    assert (found.value if found is not None else None) == zone
    assert "i'm in california" in rules.hints("timezone").phrases


def attempt(contact: Contact) -> AttemptRow:
    return AttemptRow(
        id="AT1", call_sid=None, campaign_id="CP1", contact_id="CT1", number=1,
        phone=contact.phone, flow="demo_booking", variables=contact.variables, status="queued",
        answered_by="", machine_action="", events=(), duration_s=None, session_status="",
        outcome="", reason="", booking_id=None, worker="", started_at=DEC, answered_at=None,
        final_at=None, session_ended_at=None, settled_at=None,
    )  # fmt: skip


def test_a_campaign_contact_s_zone_reaches_the_call() -> None:
    """The dialer passes a contact's variables as the stream's <Parameter>s: its timezone column
    (else the zone of its number) is the call's ``user_timezone``."""
    contacts = parse_csv(
        b"phone,name,timezone\n+12125550100,Kim,Europe/London\n+442079460000,Ann,\n"
        b"+18005550123,Bo,\n", default_timezone=LA,
    ).contacts
    started = [detect_zone(stream_parameters(attempt(c)), NY, at=DEC) for c in contacts]
    assert [(z.zone, z.source) for z in started] == [
        (LON, "parameter"),  # the column, over the New York number
        (LON, "parameter"),  # the number's zone, as the contact list read it
        (LA, "parameter"),  # toll-free: the campaign's default zone
    ]
