"""agent.booking rules, intervals and available_slots: explicit tables, DST days, a brute-force
reference on a random busy calendar."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from slotline.agent.booking import (
    BookingRules,
    Interval,
    Slot,
    available_slots,
    merge_intervals,
    subtract_intervals,
)
from slotline.agent.booking.rules import HoursRange
from slotline.agent.booking.zones import wall_clock_to_epoch_s

NY = "America/New_York"
BERLIN = "Europe/Berlin"
EVERY_DAY = range(7)


def at(tz: str, y: int, mo: int, d: int, h: int = 0, mi: int = 0, fold: int = 0) -> datetime:
    """The instant of a local wall-clock reading, as UTC."""
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(tz), fold=fold).astimezone(UTC)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def local_hm(slots: Sequence[Slot], tz: str) -> list[str]:
    return [slot.start.astimezone(ZoneInfo(tz)).strftime("%H:%M") for slot in slots]


def hours(*ranges: HoursRange, days: range = EVERY_DAY) -> dict[int, tuple[HoursRange, ...]]:
    return {weekday: ranges for weekday in days}


def slots_on(
    day: date,
    *,
    tz: str = NY,
    busy: Sequence[Interval] = (),
    now: datetime | None = None,
    counts: Mapping[date, int] | None = None,
    **rule_fields: Any,
) -> list[Slot]:
    """Slots of one local day (the window is that day, ``now`` a month before unless given)."""
    rule_fields.setdefault("weekly_hours", hours(("09:00", "17:00")))
    rules = BookingRules(timezone=tz, **rule_fields)
    start = at(tz, day.year, day.month, day.day)
    following = day + timedelta(days=1)
    return available_slots(
        rules,
        window_start=start,
        window_end=at(tz, following.year, following.month, following.day),
        now=now or start - timedelta(days=30),
        busy=busy,
        existing_bookings_per_day=counts or {},
    )


TUESDAY = date(2026, 12, 1)


# -- rules validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "unknown time zone 'Mars/Olympus_Mons'"),
        ({"timezone": "../etc/passwd"}, "unknown time zone"),
        ({"weekly_hours": {0: (("17:00", "09:00"),)}}, "(Monday): range 17:00-09:00 must end"),
        ({"weekly_hours": {2: (("09:00", "09:00"),)}}, "(Wednesday): range 09:00-09:00 must end"),
        (
            {"weekly_hours": {4: (("13:00", "17:00"), ("09:00", "13:30"))}},
            "weekly_hours[4] (Friday): ranges 09:00-13:30 and 13:00-17:00 overlap",
        ),
        ({"weekly_hours": {7: (("09:00", "17:00"),)}}, "weekday 7 must be 0 (Monday) .. 6"),
        ({"weekly_hours": {0: (("9am", "17:00"),)}}, "'9am' is not a clock time"),
        ({"weekly_hours": {0: (("24:00", "24:00"),)}}, '\'24:00\' is outside "00:00".."23:59"'),
        ({"weekly_hours": {0: (("09:00", "24:30"),)}}, "'24:30' is outside"),
        ({"weekly_hours": {0: ("09:00", "17:00")}}, 'must be a ("HH:MM", "HH:MM") pair'),
        (
            {"date_overrides": {date(2026, 12, 24): (("12:00", "10:00"),)}},
            "date_overrides[2026-12-24]: range 12:00-10:00 must end after it starts",
        ),
        ({"date_overrides": {"2026-12-24": ()}}, "key '2026-12-24' must be a datetime.date"),
        ({"duration_min": 0}, "duration_min must be at least 1"),
        ({"slot_interval_min": 0}, "slot_interval_min must be at least 1"),
        ({"buffer_before_min": -5}, "buffer_before_min must be at least 0"),
        ({"min_notice_min": 1.5}, "min_notice_min must be a whole number"),
        ({"max_days_ahead": 0}, "max_days_ahead must be at least 1"),
        ({"daily_limit": 0}, "daily_limit must be at least 1"),
    ],
)
def test_invalid_rules_are_rejected_with_the_field_named(
    fields: dict[str, Any], message: str
) -> None:
    fields.setdefault("timezone", NY)
    with pytest.raises(ValueError) as raised:
        BookingRules(**fields)
    assert message in str(raised.value)


def test_rules_accept_touching_ranges_midnight_end_and_time_objects() -> None:
    rules = BookingRules(
        timezone=NY,
        weekly_hours={0: (("13:00", "24:00"), (time(9), time(13)))},
        date_overrides={TUESDAY: ()},
    )
    assert rules.open_minutes(date(2026, 11, 30)) == ((540, 780), (780, 1440))
    assert rules.open_minutes(TUESDAY) == ()  # override closes a weekday that has no hours anyway
    assert rules.step_min == 30
    assert BookingRules(timezone=NY, duration_min=60, slot_interval_min=15).step_min == 15
    same = BookingRules(
        timezone=NY,
        weekly_hours={0: [["09:00", "13:00"], ["13:00", "24:00"]]},  # as YAML would give it
        date_overrides={TUESDAY: []},
    )
    assert same == rules and hash(same) == hash(rules)
    assert same != BookingRules(timezone=NY, weekly_hours={0: (("09:00", "13:00"),)})


# -- intervals ----------------------------------------------------------------------------------


def span(a: int, b: int) -> Interval:
    """Minutes after 2026-12-01 00:00 UTC."""
    return Interval(
        utc(2026, 12, 1) + timedelta(minutes=a), utc(2026, 12, 1) + timedelta(minutes=b)
    )


@pytest.mark.parametrize(
    ("given", "merged"),
    [
        ([], []),
        ([(10, 20)], [(10, 20)]),
        ([(30, 40), (10, 20)], [(10, 20), (30, 40)]),
        ([(10, 20), (20, 30)], [(10, 30)]),  # touching spans join
        ([(10, 50), (20, 30), (40, 60)], [(10, 60)]),
        ([(10, 10), (5, 6)], [(5, 6)]),  # empty spans vanish
    ],
)
def test_merge_intervals(given: list[tuple[int, int]], merged: list[tuple[int, int]]) -> None:
    assert merge_intervals([span(a, b) for a, b in given]) == [span(a, b) for a, b in merged]


@pytest.mark.parametrize(
    ("base", "remove", "left"),
    [
        ([(0, 100)], [], [(0, 100)]),
        ([(0, 100)], [(20, 30), (50, 60)], [(0, 20), (30, 50), (60, 100)]),
        ([(0, 100)], [(0, 100)], []),
        ([(0, 100)], [(100, 120)], [(0, 100)]),  # half-open: touching removes nothing
        ([(0, 50), (60, 100)], [(40, 70)], [(0, 40), (70, 100)]),
        ([(0, 10), (20, 30), (40, 50)], [(5, 45)], [(0, 5), (45, 50)]),
        ([(0, 100)], [(30, 40), (10, 35)], [(0, 10), (40, 100)]),  # unsorted, overlapping
    ],
)
def test_subtract_intervals(
    base: list[tuple[int, int]], remove: list[tuple[int, int]], left: list[tuple[int, int]]
) -> None:
    result = subtract_intervals([span(a, b) for a, b in base], [span(a, b) for a, b in remove])
    assert result == [span(a, b) for a, b in left]


def test_interval_checks() -> None:
    assert span(0, 10).overlaps(span(5, 15))
    assert not span(0, 10).overlaps(span(10, 20))
    assert span(0, 0).is_empty and span(0, 30).duration == timedelta(minutes=30)
    with pytest.raises(ValueError, match="ends before it starts"):
        span(10, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        Interval(datetime(2026, 12, 1), datetime(2026, 12, 2))
    with pytest.raises(ValueError, match="must end after it starts"):
        Slot(utc(2026, 12, 1), utc(2026, 12, 1))


# -- slot generation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"weekly_hours": hours(("09:00", "12:00"))}, "09:00 09:30 10:00 10:30 11:00 11:30"),
        ({"weekly_hours": hours(("09:00", "10:45"))}, "09:00 09:30 10:00"),  # 10:30 would overrun
        (
            {
                "weekly_hours": hours(("09:00", "11:00")),
                "duration_min": 60,
                "slot_interval_min": 15,
            },
            "09:00 09:15 09:30 09:45 10:00",
        ),
        (
            {"weekly_hours": hours(("09:00", "10:00"), ("13:00", "14:30"))},  # lunch break
            "09:00 09:30 13:00 13:30 14:00",
        ),
        ({"weekly_hours": hours(("09:15", "10:30"))}, "09:15 09:45"),  # steps from range start
        ({"weekly_hours": hours(("22:30", "24:00"))}, "22:30 23:00 23:30"),
        ({"weekly_hours": hours(("09:00", "17:00"), days=range(5, 7))}, ""),  # weekend-only hours
    ],
)
def test_slots_follow_business_hours(fields: dict[str, Any], expected: str) -> None:
    assert " ".join(local_hm(slots_on(TUESDAY, **fields), NY)) == expected


def test_slots_are_utc_and_sorted() -> None:
    slots = slots_on(TUESDAY, weekly_hours=hours(("13:00", "14:00"), ("09:00", "10:00")))
    assert [slot.start for slot in slots] == sorted(slot.start for slot in slots)
    assert all(slot.start.tzinfo is UTC and slot.end.tzinfo is UTC for slot in slots)
    assert slots[0] == Slot(utc(2026, 12, 1, 14), utc(2026, 12, 1, 14, 30))  # 09:00 EST


def busy_local(h1: int, m1: int, h2: int, m2: int) -> Interval:
    return Interval(at(NY, 2026, 12, 1, h1, m1), at(NY, 2026, 12, 1, h2, m2))


@pytest.mark.parametrize(
    ("busy", "before_min", "after_min", "expected"),
    [
        ([], 0, 0, "09:00 09:30 10:00 10:30 11:00 11:30"),
        ([busy_local(10, 0, 10, 30)], 0, 0, "09:00 09:30 10:30 11:00 11:30"),  # half-open ends
        ([busy_local(10, 10, 10, 20)], 0, 0, "09:00 09:30 10:30 11:00 11:30"),
        ([busy_local(10, 0, 10, 30)], 0, 15, "09:00 10:30 11:00 11:30"),  # 09:30 + 15 meets 10:00
        ([busy_local(10, 0, 10, 30)], 15, 0, "09:00 09:30 11:00 11:30"),  # 10:30 - 15 meets 10:30
        ([busy_local(10, 0, 10, 30)], 30, 30, "09:00 11:00 11:30"),  # buffers touching is fine
        ([busy_local(10, 0, 10, 30)], 31, 0, "09:00 09:30 11:30"),
        ([busy_local(9, 0, 12, 0)], 0, 0, ""),
        (
            [busy_local(8, 0, 9, 0), busy_local(11, 59, 13, 0)],
            0,
            0,
            "09:00 09:30 10:00 10:30 11:00",
        ),
        (  # unsorted, overlapping, one given in another zone
            [
                busy_local(11, 0, 11, 15),
                Interval(
                    datetime(2026, 12, 1, 9, 40, tzinfo=ZoneInfo("America/Chicago")),
                    datetime(2026, 12, 1, 9, 50, tzinfo=ZoneInfo("America/Chicago")),
                ),
                busy_local(10, 50, 11, 5),
            ],
            0,
            0,
            "09:00 09:30 10:00 11:30",
        ),
    ],
)
def test_busy_time_and_buffers(
    busy: list[Interval], before_min: int, after_min: int, expected: str
) -> None:
    slots = slots_on(
        TUESDAY,
        busy=busy,
        weekly_hours=hours(("09:00", "12:00")),
        buffer_before_min=before_min,
        buffer_after_min=after_min,
    )
    assert " ".join(local_hm(slots, NY)) == expected


@pytest.mark.parametrize(
    ("now_local", "notice_min", "first"),
    [
        ((9, 10), 0, "09:30"),  # a slot that already started is gone
        ((9, 0), 0, "09:00"),
        ((9, 0), 60, "10:00"),  # exactly the notice is enough
        ((9, 1), 60, "10:30"),
        ((9, 10), 60, "10:30"),
        ((8, 0), 24 * 60, None),  # nothing left today
    ],
)
def test_minimum_notice(now_local: tuple[int, int], notice_min: int, first: str | None) -> None:
    now = at(NY, 2026, 12, 1, *now_local)
    slots = slots_on(TUESDAY, now=now, min_notice_min=notice_min)
    assert (local_hm(slots, NY)[0] if slots else None) == first


def test_maximum_days_ahead_is_a_rolling_window() -> None:
    rules = BookingRules(timezone=NY, max_days_ahead=2, weekly_hours=hours(("07:00", "09:00")))
    now = at(NY, 2026, 11, 30, 8, 0)
    slots = available_slots(
        rules, window_start=now, window_end=now + timedelta(days=7), now=now, busy=[]
    )
    starts = [slot.start.astimezone(ZoneInfo(NY)).strftime("%m-%d %H:%M") for slot in slots]
    # Starts up to now + 2 days (12-02 08:00) inclusive, nothing later.
    assert starts == [
        "11-30 08:00",
        "11-30 08:30",
        *(f"12-01 {hm}" for hm in ("07:00", "07:30", "08:00", "08:30")),
        "12-02 07:00",
        "12-02 07:30",
        "12-02 08:00",
    ]


def test_window_keeps_only_slots_fully_inside() -> None:
    rules = BookingRules(timezone=NY, weekly_hours=hours(("09:00", "12:00")))
    slots = available_slots(
        rules,
        window_start=at(NY, 2026, 12, 1, 9, 10),
        window_end=at(NY, 2026, 12, 1, 11, 15),
        now=utc(2026, 11, 1),
        busy=[],
    )
    assert local_hm(slots, NY) == ["09:30", "10:00", "10:30"]


def test_daily_limit_drops_whole_local_days() -> None:
    rules = BookingRules(
        timezone=NY, daily_limit=2, weekly_hours=hours(("09:00", "10:00"), ("19:00", "21:00"))
    )
    slots = available_slots(
        rules,
        window_start=at(NY, 2026, 12, 1),
        window_end=at(NY, 2026, 12, 3),
        now=utc(2026, 11, 1),
        busy=[],
        # Keys are the calendar's local dates: 19:00-21:00 local on 12-01 is 12-02 in UTC and
        # must stay; 12-02 local (evening slots on 12-03 UTC included) is full.
        existing_bookings_per_day={date(2026, 12, 1): 1, date(2026, 12, 2): 2},
    )
    days = {slot.start.astimezone(ZoneInfo(NY)).date() for slot in slots}
    assert days == {date(2026, 12, 1)}
    assert len(slots) == 6


@pytest.mark.parametrize(
    ("overrides", "day", "expected"),
    [
        ({TUESDAY: ()}, TUESDAY, ""),  # closed (holiday)
        ({TUESDAY: (("10:00", "11:00"),)}, TUESDAY, "10:00 10:30"),  # special hours
        ({date(2026, 12, 5): (("10:00", "11:00"),)}, date(2026, 12, 5), "10:00 10:30"),  # Saturday
        ({date(2026, 12, 2): ()}, TUESDAY, "09:00 09:30"),  # another date's override
    ],
)
def test_date_overrides(
    overrides: dict[date, tuple[HoursRange, ...]], day: date, expected: str
) -> None:
    weekdays = hours(("09:00", "10:00"), days=range(5))
    slots = slots_on(day, weekly_hours=weekdays, date_overrides=overrides)
    assert " ".join(local_hm(slots, NY)) == expected


def test_naive_inputs_are_rejected() -> None:
    rules = BookingRules(timezone=NY)
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        available_slots(
            rules,
            window_start=utc(2026, 12, 1),
            window_end=utc(2026, 12, 2),
            now=datetime(2026, 11, 1),
            busy=[],
        )


# -- DST days ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "day", "first_utc", "last_utc"),
    [
        (NY, date(2026, 3, 7), utc(2026, 3, 7, 14), utc(2026, 3, 7, 21, 30)),  # EST
        (NY, date(2026, 3, 8), utc(2026, 3, 8, 13), utc(2026, 3, 8, 20, 30)),  # EDT from 02:00
        (NY, date(2026, 10, 31), utc(2026, 10, 31, 13), utc(2026, 10, 31, 20, 30)),
        (NY, date(2026, 11, 1), utc(2026, 11, 1, 14), utc(2026, 11, 1, 21, 30)),  # EST from 02:00
        (BERLIN, date(2026, 3, 28), utc(2026, 3, 28, 8), utc(2026, 3, 28, 15, 30)),  # CET
        (BERLIN, date(2026, 3, 29), utc(2026, 3, 29, 7), utc(2026, 3, 29, 14, 30)),  # CEST
    ],
)
def test_business_hours_stay_local_on_dst_days(
    tz: str, day: date, first_utc: datetime, last_utc: datetime
) -> None:
    slots = slots_on(day, tz=tz)
    assert local_hm(slots, tz) == [f"{h:02d}:{m:02d}" for h in range(9, 17) for m in (0, 30)]
    assert (slots[0].start, slots[-1].start) == (first_utc, last_utc)
    assert all(slot.duration == timedelta(minutes=30) for slot in slots)


@pytest.mark.parametrize(
    ("tz", "day", "ranges", "expected_utc"),
    [
        # Spring forward, New York: 02:00-03:00 does not exist. 01:00 EST-03:00 EDT is one hour.
        (NY, date(2026, 3, 8), ("01:00", "03:00"), ["06:00", "06:30"]),
        # A range starting inside the gap opens at the jump (03:00 EDT = 07:00Z).
        (NY, date(2026, 3, 8), ("02:30", "04:00"), ["07:00", "07:30"]),
        # A range ending inside the gap closes at the jump.
        (NY, date(2026, 3, 8), ("01:00", "02:30"), ["06:00", "06:30"]),
        # Fall back, New York: 01:00-02:00 happens twice; 01:00 EDT-03:00 EST is three hours.
        (
            NY,
            date(2026, 11, 1),
            ("01:00", "03:00"),
            ["05:00", "05:30", "06:00", "06:30", "07:00", "07:30"],
        ),
        # A range ending at a repeated time ends at its first occurrence (01:30 EDT = 05:30Z).
        (NY, date(2026, 11, 1), ("00:00", "01:30"), ["04:00", "04:30", "05:00"]),
        # Spring forward, Berlin: 02:00-03:00 does not exist; 02:00 resolves to 01:00Z.
        (BERLIN, date(2026, 3, 29), ("02:00", "04:00"), ["01:00", "01:30"]),
        (BERLIN, date(2026, 3, 29), ("01:00", "03:00"), ["00:00", "00:30"]),
    ],
)
def test_ranges_across_a_clock_change(
    tz: str, day: date, ranges: HoursRange, expected_utc: list[str]
) -> None:
    slots = slots_on(day, tz=tz, weekly_hours=hours(ranges))
    assert [slot.start.strftime("%H:%M") for slot in slots] == expected_utc


@pytest.mark.parametrize(
    ("tz", "day", "hour_slots"),
    [
        (NY, date(2026, 3, 7), 24),
        (NY, date(2026, 3, 8), 23),
        (NY, date(2026, 11, 1), 25),
        (BERLIN, date(2026, 3, 29), 23),
    ],
)
def test_a_whole_day_has_as_many_hours_as_really_elapse(
    tz: str, day: date, hour_slots: int
) -> None:
    slots = slots_on(day, tz=tz, duration_min=60, weekly_hours=hours(("00:00", "24:00")))
    assert len(slots) == hour_slots
    assert all(
        b.start - a.start == timedelta(hours=1) for a, b in zip(slots, slots[1:], strict=False)
    )


def test_wall_clock_rule_matches_zoneinfo_away_from_transitions() -> None:
    zone = ZoneInfo(NY)
    for day in (date(2026, 1, 15), date(2026, 3, 8), date(2026, 7, 4), date(2026, 11, 1)):
        for minute in (0, 60, 9 * 60 + 30, 17 * 60, 23 * 60 + 59):
            if day in (date(2026, 3, 8), date(2026, 11, 1)) and 60 <= minute < 3 * 60:
                continue  # the DST hours are covered by the tables above
            wall = datetime.combine(day, time(minute // 60, minute % 60), zone)
            assert wall_clock_to_epoch_s(day, minute, zone) == int(wall.timestamp())


# -- the sweep against a brute-force reference ----------------------------------------------------


def reference_slots(
    rules: BookingRules, days: Sequence[date], now: datetime, busy: Sequence[Interval]
) -> list[Slot]:
    """O(slots x busy): every candidate checked against every busy interval (no DST in range)."""
    zone = ZoneInfo(rules.timezone)
    duration = timedelta(minutes=rules.duration_min)
    before = timedelta(minutes=rules.buffer_before_min)
    after = timedelta(minutes=rules.buffer_after_min)
    earliest = now + timedelta(minutes=rules.min_notice_min)
    latest = now + timedelta(days=rules.max_days_ahead)
    result = []
    for day in days:
        for start_min, end_min in rules.open_minutes(day):
            start = datetime.combine(day, time(), zone) + timedelta(minutes=start_min)
            range_end = datetime.combine(day, time(), zone) + timedelta(minutes=end_min)
            while start + duration <= range_end:
                widened = Interval(start - before, start + duration + after)
                if earliest <= start <= latest and not any(widened.overlaps(b) for b in busy):
                    result.append(Slot(start.astimezone(UTC), (start + duration).astimezone(UTC)))
                start += timedelta(minutes=rules.step_min)
    return result


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sweep_matches_brute_force_on_a_random_calendar(seed: int) -> None:
    rng = random.Random(seed)
    rules = BookingRules(
        timezone=NY,
        duration_min=rng.choice([15, 30, 45, 60]),
        slot_interval_min=rng.choice([None, 15, 20]),
        buffer_before_min=rng.choice([0, 5, 10]),
        buffer_after_min=rng.choice([0, 15]),
        min_notice_min=rng.choice([0, 90, 600]),
        max_days_ahead=20,
        weekly_hours=hours(("08:00", "12:00"), ("12:30", "18:00"), days=range(6)),
        date_overrides={date(2026, 12, 10): (), date(2026, 12, 12): (("10:00", "11:00"),)},
    )
    now = at(NY, 2026, 12, 1, 10, 7)
    busy = []
    for _ in range(300):
        start = now + timedelta(minutes=5 * rng.randrange(30 * 24 * 12))
        busy.append(Interval(start, start + timedelta(minutes=5 * rng.randint(0, 36))))
    days = [date(2026, 12, 1) + timedelta(days=offset) for offset in range(25)]
    got = available_slots(
        rules, window_start=now, window_end=now + timedelta(days=25), now=now, busy=busy
    )
    assert got == reference_slots(rules, days, now, busy)
    assert len(got) > 100  # the case is not vacuous
