"""agent.booking.proposal and agent.booking.speech: what is offered, and how it is said."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from slotline.agent.booking import (
    Slot,
    TimeOfDay,
    part_of_day,
    propose,
    speak_clock,
    speak_slots,
    speak_times,
    spoken_start,
)
from slotline.agent.booking.speech import NOTHING_AVAILABLE, ordinal

NY = "America/New_York"
LA = "America/Los_Angeles"
TUE, WED, THU = date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)
DAY_NAMES = {TUE: "Tue", WED: "Wed", THU: "Thu"}


def ny_slot(day: date, hh_mm: str, minutes: int = 30) -> Slot:
    hour, minute = map(int, hh_mm.split(":"))
    start = datetime.combine(day, time(hour, minute), ZoneInfo(NY)).astimezone(UTC)
    return Slot(start, start + timedelta(minutes=minutes))


def half_hours(day: date, first: str = "09:00", last: str = "16:30") -> list[Slot]:
    h1, m1 = map(int, first.split(":"))
    h2, m2 = map(int, last.split(":"))
    return [
        ny_slot(day, f"{m // 60:02d}:{m % 60:02d}")
        for m in range(h1 * 60 + m1, h2 * 60 + m2 + 1, 30)
    ]


def label(slots: Iterable[Slot], tz: str = NY) -> list[str]:
    out = []
    for slot in slots:
        local = slot.start.astimezone(ZoneInfo(tz))
        out.append(f"{DAY_NAMES.get(local.date(), local.date().isoformat())} {local:%H:%M}")
    return out


def without(slots: list[Slot], *gone: Slot) -> list[Slot]:
    return [slot for slot in slots if slot not in gone]


WEEK = half_hours(TUE) + half_hours(WED) + half_hours(THU)
WITH_EVENING = WEEK + [ny_slot(THU, "18:00")]
WED_NO_2PM = without(WEEK, ny_slot(WED, "14:00"))
WED_CLOSED = [slot for slot in WEEK if slot.start.astimezone(ZoneInfo(NY)).date() != WED]
TUE_MORNING_ONLY = half_hours(TUE, "09:00", "11:30") + half_hours(WED) + half_hours(THU)


@pytest.mark.parametrize(
    ("slots", "prefs", "expected"),
    [
        # No preference: the earliest, then spread over that day (not 09:00 09:30 10:00).
        (WEEK, {}, ["Tue 09:00", "Tue 12:30", "Tue 16:30"]),
        # A specific date and time: nearest first, consecutive times are right here.
        (
            WEEK,
            {"preferred_date": WED, "preferred_time": time(14)},
            ["Wed 14:00", "Wed 13:30", "Wed 14:30"],
        ),
        (
            WED_NO_2PM,
            {"preferred_date": WED, "preferred_time": time(14)},
            ["Wed 13:30", "Wed 14:30", "Wed 13:00"],
        ),
        (
            WEEK,
            {"preferred_date": WED, "preferred_time": time(14, 10)},
            ["Wed 14:00", "Wed 14:30", "Wed 13:30"],
        ),
        # A date and part of day: spread inside the part.
        (
            WEEK,
            {"preferred_date": WED, "time_of_day": "morning"},
            ["Wed 09:00", "Wed 10:00", "Wed 11:30"],
        ),
        (
            WEEK,
            {"preferred_date": WED, "time_of_day": "afternoon"},
            ["Wed 12:00", "Wed 14:00", "Wed 16:30"],
        ),
        # Just a date: spread over it.
        (WEEK, {"preferred_date": THU}, ["Thu 09:00", "Thu 12:30", "Thu 16:30"]),
        # Nothing in that part on that date: the same date first, nearest to the part.
        (
            WITH_EVENING,
            {"preferred_date": WED, "time_of_day": "evening"},
            ["Wed 16:30", "Wed 16:00", "Wed 15:30"],
        ),
        # Only a part: the first date that has it, then that date's nearest others.
        (WITH_EVENING, {"time_of_day": "evening"}, ["Thu 18:00", "Thu 16:30", "Thu 16:00"]),
        (TUE_MORNING_ONLY, {"time_of_day": "afternoon"}, ["Wed 12:00", "Wed 14:00", "Wed 16:30"]),
        # Only a time: the first date with slots in that part of the day, nearest to the time.
        (WEEK, {"preferred_time": time(15)}, ["Tue 15:00", "Tue 14:30", "Tue 15:30"]),
        (TUE_MORNING_ONLY, {"preferred_time": time(15)}, ["Wed 15:00", "Wed 14:30", "Wed 15:30"]),
        # The asked date is full: the next date before the previous one, at the asked time.
        (
            WED_CLOSED,
            {"preferred_date": WED, "preferred_time": time(10)},
            ["Thu 10:00", "Thu 09:30", "Thu 10:30"],
        ),
        # A date with a single match fills from the nearest other dates.
        (
            [
                ny_slot(TUE, "10:00"),
                ny_slot(WED, "15:00"),
                ny_slot(THU, "10:00"),
                ny_slot(THU, "11:00"),
            ],
            {"preferred_date": WED, "preferred_time": time(11)},
            ["Wed 15:00", "Thu 11:00", "Thu 10:00"],
        ),
        (
            [ny_slot(TUE, "10:00"), ny_slot(WED, "10:00"), ny_slot(THU, "17:30")],
            {"preferred_date": WED, "time_of_day": "morning"},
            ["Wed 10:00", "Tue 10:00", "Thu 17:30"],  # in-part on other dates beats out-of-part
        ),
        # Fewer slots than the limit: all of them.
        ([ny_slot(THU, "10:00"), ny_slot(TUE, "09:00")], {}, ["Tue 09:00", "Thu 10:00"]),
        ([], {"preferred_date": WED}, []),
    ],
)
def test_proposals(slots: list[Slot], prefs: dict[str, Any], expected: list[str]) -> None:
    prefs = {"preferred_date": None, "preferred_time": None, "time_of_day": None, **prefs}
    assert label(propose(slots, tz=NY, **prefs)) == expected


def test_preferences_are_read_in_the_callers_zone() -> None:
    # 09:00-16:30 New York is 06:00-13:30 Los Angeles: the LA afternoon is 12:00-13:30.
    picked = propose(WEEK, preferred_date=WED, preferred_time=None, time_of_day="afternoon", tz=LA)
    assert label(picked, LA) == ["Wed 12:00", "Wed 12:30", "Wed 13:30"]
    # A Tokyo caller's Wednesday starts at 10:00 New York time on Tuesday.
    tokyo = propose(
        WEEK, preferred_date=WED, preferred_time=time(0, 30), time_of_day=None, tz="Asia/Tokyo"
    )
    assert label(tokyo) == ["Tue 10:30", "Tue 10:00", "Tue 11:00"]


@pytest.mark.parametrize("limit", [0, 1, 2, 5])
def test_limit(limit: int) -> None:
    picked = propose(
        WEEK, preferred_date=None, preferred_time=None, time_of_day=None, tz=NY, limit=limit
    )
    assert len(picked) == limit
    if limit:
        assert picked[0] == ny_slot(TUE, "09:00")  # the earliest comes first
    assert len(set(picked)) == limit


def test_bad_arguments() -> None:
    bogus: Any = "night"
    with pytest.raises(ValueError, match="time_of_day 'night'"):
        propose(WEEK, preferred_date=None, preferred_time=None, time_of_day=bogus, tz=NY)
    with pytest.raises(ValueError, match="limit must be at least 0"):
        propose(WEEK, preferred_date=None, preferred_time=None, time_of_day=None, tz=NY, limit=-1)
    with pytest.raises(ValueError, match="unknown time zone 'Nowhere/Land'"):
        propose(WEEK, preferred_date=None, preferred_time=None, time_of_day=None, tz="Nowhere/Land")


@pytest.mark.parametrize(
    ("minute", "part"),
    [(0, "morning"), (11 * 60 + 59, "morning"), (12 * 60, "afternoon"), (16 * 60 + 59, "afternoon"),
     (17 * 60, "evening"), (23 * 60 + 59, "evening")],
)  # fmt: skip
def test_parts_of_day(minute: int, part: TimeOfDay) -> None:
    assert part_of_day(minute) == part


# -- speech ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hh_mm", "spoken"),
    [("09:00", "9 am"), ("10:30", "10:30 am"), ("12:00", "noon"), ("00:00", "midnight"),
     ("12:15", "12:15 pm"), ("16:00", "4 pm"), ("00:30", "12:30 am"), ("23:05", "11:05 pm")],
)  # fmt: skip
def test_speak_clock(hh_mm: str, spoken: str) -> None:
    hour, minute = map(int, hh_mm.split(":"))
    assert speak_clock(datetime(2026, 12, 1, hour, minute)) == spoken


@pytest.mark.parametrize(
    ("number", "spoken"),
    [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th"),
     (21, "21st"), (22, "22nd"), (23, "23rd"), (30, "30th"), (31, "31st")],
)  # fmt: skip
def test_ordinals(number: int, spoken: str) -> None:
    assert ordinal(number) == spoken


NOV_25 = datetime(2026, 11, 25, 15, tzinfo=UTC)
TUE_10_2_4 = [ny_slot(TUE, "16:00"), ny_slot(TUE, "10:00"), ny_slot(TUE, "14:00")]


@pytest.mark.parametrize(
    ("slots", "tz", "now", "sentence"),
    [
        (TUE_10_2_4, NY, NOV_25, "I have 10 am, 2 pm and 4 pm on Tuesday, December 1st"),
        (TUE_10_2_4, NY, None, "I have 10 am, 2 pm and 4 pm on Tuesday, December 1st"),
        (
            TUE_10_2_4,
            NY,
            datetime(2026, 12, 1, 13, tzinfo=UTC),
            "I have 10 am, 2 pm and 4 pm today",
        ),
        # 03:00Z on December 1st is still November 30th in New York.
        (
            TUE_10_2_4,
            NY,
            datetime(2026, 12, 1, 3, tzinfo=UTC),
            "I have 10 am, 2 pm and 4 pm tomorrow",
        ),
        (TUE_10_2_4, LA, NOV_25, "I have 7 am, 11 am and 1 pm on Tuesday, December 1st"),
        ([ny_slot(TUE, "12:00")], NY, NOV_25, "I have noon on Tuesday, December 1st"),
        (
            [ny_slot(WED, "09:00"), ny_slot(TUE, "14:00"), ny_slot(TUE, "10:30")],
            NY,
            NOV_25,
            "I have 10:30 am and 2 pm on Tuesday, December 1st, or 9 am on Wednesday, December 2nd",
        ),
        (
            [ny_slot(TUE, "09:00"), ny_slot(WED, "10:00"), ny_slot(THU, "14:00")],
            NY,
            datetime(2026, 12, 1, 12, tzinfo=UTC),
            "I have 9 am today, 10 am tomorrow, or 2 pm on Thursday, December 3rd",
        ),
        ([], NY, NOV_25, NOTHING_AVAILABLE),
    ],
)
def test_speak_slots(slots: list[Slot], tz: str, now: datetime | None, sentence: str) -> None:
    assert speak_slots(slots, tz, now) == sentence


@pytest.mark.parametrize(
    ("slot", "tz", "now", "spoken"),
    [
        (ny_slot(TUE, "14:00"), NY, NOV_25, ("Tuesday, December 1st", "2 pm")),
        (ny_slot(TUE, "10:30"), NY, datetime(2026, 12, 1, 12, tzinfo=UTC), ("today", "10:30 am")),
        (ny_slot(WED, "12:00"), NY, datetime(2026, 12, 1, 12, tzinfo=UTC), ("tomorrow", "noon")),
        (ny_slot(WED, "12:00"), "Europe/Berlin", NOV_25, ("Wednesday, December 2nd", "6 pm")),
        (ny_slot(date(2026, 12, 22), "09:00"), NY, None, ("Tuesday, December 22nd", "9 am")),
    ],
)
def test_spoken_start(slot: Slot, tz: str, now: datetime | None, spoken: tuple[str, str]) -> None:
    assert spoken_start(slot.start, tz, now) == spoken


def test_speak_times_keeps_the_order_given() -> None:
    """The flow says its offers in its own order; only ``speak_slots`` sorts."""
    times = [("tomorrow", "2 pm"), ("Friday, December 4th", "9 am"), ("tomorrow", "10 am")]
    assert speak_times(times) == "I have 2 pm and 10 am tomorrow, or 9 am on Friday, December 4th"
    assert speak_times([]) == NOTHING_AVAILABLE


def test_fall_back_day_is_spoken_in_local_time() -> None:
    first_one_am = Slot(
        datetime(2026, 11, 1, 5, tzinfo=UTC), datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    )
    nine_am = Slot(datetime(2026, 11, 1, 14, tzinfo=UTC), datetime(2026, 11, 1, 14, 30, tzinfo=UTC))
    assert (
        speak_slots([nine_am, first_one_am], NY) == "I have 1 am and 9 am on Sunday, November 1st"
    )
