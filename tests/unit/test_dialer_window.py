"""Calling windows on the callee's clock: hard limits, edges, weekdays, several zones, DST days.

2026-06-10 is a Wednesday. DST changes used: US 2026-03-08 (spring) and 2026-11-01 (fall), EU
2026-03-29 and 2026-10-25, Easter Island 2026-04-04 (clocks go back at 22:00, so 21:00-22:00
happens twice, right at the hard end).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta, timezone

import pytest

from slotline.agent.dialer.window import HARD_END, HARD_START, WEEKDAYS, CallingWindow

NEW_YORK = ("America/New_York",)
BOTH_COASTS = ("America/New_York", "America/Los_Angeles")


def utc(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


def test_defaults() -> None:
    window = CallingWindow.parse()
    assert window == CallingWindow()
    assert (window.start, window.end, window.days) == (time(9), time(20), frozenset(range(7)))
    assert window.effective() == (time(9), time(20))
    assert not window.clamped
    assert (HARD_START, HARD_END) == (time(8), time(21))
    assert WEEKDAYS[0] == "mon"


@pytest.mark.parametrize(
    ("spec", "effective"),
    [
        ("06:00-23:00", (time(8), time(21))),
        ("07:30-12:00", (time(8), time(12))),
        ("14:00-24:00", (time(14), time(21))),
        ("00:00-21:01", (time(8), time(21))),
    ],
)
def test_a_window_wider_than_the_law_is_narrowed_and_says_so(
    spec: str, effective: tuple[time, time]
) -> None:
    window = CallingWindow.parse(spec)
    assert window.effective() == effective
    assert window.clamped


def test_the_configured_hours_are_kept_for_display() -> None:
    window = CallingWindow.parse(" 6:00 - 23:00 ")
    assert (window.start, window.end) == (time(6), time(23))


@pytest.mark.parametrize("spec", ["21:00-23:00", "05:00-08:00", "22:00-24:00"])
def test_a_window_with_nothing_left_after_narrowing_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="outside the legal calling hours 08:00-21:00"):
        CallingWindow.parse(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("9-17", "not HH:MM-HH:MM"),
        ("", "not HH:MM-HH:MM"),
        ("09:00", "not HH:MM-HH:MM"),
        ("25:00-26:00", "not a time of day"),
        ("09:60-10:00", "not a time of day"),
        ("24:00-10:00", "not a time of day"),
        ("12:00-10:00", "cannot cross midnight"),
        ("10:00-10:00", "cannot cross midnight"),
    ],
)
def test_malformed_hours_are_refused_clearly(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CallingWindow.parse(spec)


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ((), range(7)),
        ("", range(7)),
        ("mon-fri", range(5)),
        ("Mon - Fri", range(5)),
        ("mon,wed,fri", (0, 2, 4)),
        (["mon", "wed", "fri"], (0, 2, 4)),
        (["sat", "sun"], (5, 6)),
        ("fri-mon", (4, 5, 6, 0)),
        ("Monday, SUNDAY", (0, 6)),
        (["mon-wed", "sat"], (0, 1, 2, 5)),
    ],
)
def test_days(days: Sequence[str] | str, expected: Sequence[int]) -> None:
    assert CallingWindow.parse(days=days).days == frozenset(expected)


@pytest.mark.parametrize("days", ["funday", "mon-", "mon-xyz", ["tue", "1"]])
def test_unknown_days_are_refused(days: Sequence[str] | str) -> None:
    with pytest.raises(ValueError, match="unknown day"):
        CallingWindow.parse(days=days)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"days": frozenset()}, "at least one day"),
        ({"days": frozenset({7})}, "0 \\(Monday\\) to 6"),
        ({"start": time(9, 0, 30)}, "whole minute"),
        ({"end": time(20, tzinfo=UTC)}, "without a zone"),
    ],
)
def test_direct_construction_is_checked_too(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CallingWindow(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("at", "open_"),
    [
        (utc(6, 10, 12, 59, 59), False),  # 08:59:59 EDT
        (utc(6, 10, 13), True),  # 09:00 EDT: the start is inside
        (utc(6, 10, 23, 59, 59), True),  # 19:59:59 EDT
        (utc(6, 11, 0), False),  # 20:00 EDT: the end is outside
    ],
)
def test_edges(at: datetime, open_: bool) -> None:
    assert CallingWindow().is_open(NEW_YORK, at) is open_


def test_at_may_be_in_any_zone() -> None:
    tokyo = timezone(timedelta(hours=9))
    assert CallingWindow().is_open(NEW_YORK, datetime(2026, 6, 10, 22, 0, tzinfo=tokyo))


def test_the_weekday_is_the_callees_not_utcs() -> None:
    weekdays = CallingWindow.parse("09:00-20:00", "mon-fri")
    friday_evening_in_la = utc(6, 13, 1)  # Saturday in UTC, Friday 18:00 in Los Angeles
    assert weekdays.is_open(("America/Los_Angeles",), friday_evening_in_la)
    assert not weekdays.is_open(("America/Los_Angeles",), utc(6, 13, 17))  # Saturday 10:00


def test_next_open_returns_at_itself_when_open() -> None:
    at = utc(6, 10, 15, 7, 13).replace(microsecond=5)
    assert CallingWindow().next_open(NEW_YORK, at) is at


def test_next_open_is_exact_to_the_second() -> None:
    assert CallingWindow().next_open(NEW_YORK, utc(6, 10, 12, 59, 59)) == utc(6, 10, 13)
    opened = CallingWindow().next_open(NEW_YORK, utc(6, 11, 0))  # just closed: tomorrow
    assert opened == utc(6, 11, 13)
    assert opened.tzinfo is UTC


def test_next_open_skips_the_weekend() -> None:
    weekdays = CallingWindow.parse("09:00-17:00", "mon-fri")
    friday_after_close = utc(6, 12, 21, 30)  # 17:30 EDT
    assert weekdays.next_open(NEW_YORK, friday_after_close) == utc(6, 15, 13)  # Monday 09:00


def test_several_zones_open_at_the_latest_start_and_close_at_the_earliest_end() -> None:
    window = CallingWindow()
    assert window.next_open(BOTH_COASTS, utc(6, 10, 12)) == utc(6, 10, 16)  # 09:00 in LA
    assert not window.is_open(BOTH_COASTS, utc(6, 10, 15, 59))  # 12:59 NY, 08:59 LA
    assert window.is_open(BOTH_COASTS, utc(6, 10, 23, 59))  # 19:59 NY
    assert not window.is_open(BOTH_COASTS, utc(6, 11, 0))  # 20:00 NY, 17:00 LA
    assert window.next_open(BOTH_COASTS, utc(6, 11, 0)) == utc(6, 11, 16)


def test_zones_whose_hours_never_overlap_are_refused() -> None:
    with pytest.raises(ValueError, match="never overlap"):
        # 09:00-20:00 in Tokyo is 00:00-11:00 UTC; in New York (EDT) 13:00-24:00 UTC.
        CallingWindow().next_open(("Asia/Tokyo", "America/New_York"), utc(6, 1, 0))


def test_zones_a_day_apart_still_overlap_on_different_dates() -> None:
    zones = ("Pacific/Kiritimati", "Pacific/Pago_Pago")  # UTC+14 and UTC-11
    assert CallingWindow().next_open(zones, utc(6, 10, 5)) == utc(6, 10, 5)
    weekend_apart = CallingWindow.parse(days="sat")  # never Saturday in both at once
    with pytest.raises(ValueError, match="never overlap"):
        weekend_apart.next_open(zones, utc(6, 10, 5))


@pytest.mark.parametrize(
    ("zone", "day", "opens", "closes"),
    [
        ("America/New_York", utc(3, 7, 5), utc(3, 7, 14), utc(3, 8, 1)),  # last day of EST
        ("America/New_York", utc(3, 8, 5), utc(3, 8, 13), utc(3, 9, 0)),  # spring forward
        ("America/New_York", utc(10, 31, 5), utc(10, 31, 13), utc(11, 1, 0)),
        ("America/New_York", utc(11, 1, 5), utc(11, 1, 14), utc(11, 2, 1)),  # fall back
        ("Europe/Berlin", utc(3, 28, 0), utc(3, 28, 8), utc(3, 28, 19)),
        ("Europe/Berlin", utc(3, 29, 0), utc(3, 29, 7), utc(3, 29, 18)),  # spring forward
        ("Europe/Berlin", utc(10, 24, 0), utc(10, 24, 7), utc(10, 24, 18)),
        ("Europe/Berlin", utc(10, 25, 0), utc(10, 25, 8), utc(10, 25, 19)),  # fall back
    ],
)
def test_dst_days_keep_the_local_hours(
    zone: str, day: datetime, opens: datetime, closes: datetime
) -> None:
    window = CallingWindow()
    assert window.next_open((zone,), day) == opens
    assert window.is_open((zone,), closes - timedelta(seconds=1))
    assert not window.is_open((zone,), closes)


def test_a_repeated_hour_at_the_hard_end_does_not_reopen_the_window() -> None:
    window = CallingWindow.parse("08:00-21:00")
    easter = ("Pacific/Easter",)
    assert window.is_open(easter, utc(4, 5, 1, 59))  # 20:59 daylight time
    assert not window.is_open(easter, utc(4, 5, 2))  # 21:00, first time round
    assert not window.is_open(easter, utc(4, 5, 3, 30))  # 21:30, second time round
    assert window.next_open(easter, utc(4, 5, 2)) == utc(4, 5, 14)  # 08:00 standard time


def test_bad_arguments() -> None:
    window = CallingWindow()
    with pytest.raises(ValueError, match="timezone-aware"):
        window.is_open(NEW_YORK, datetime(2026, 6, 10, 15))
    with pytest.raises(ValueError, match="timezone-aware"):
        window.next_open(NEW_YORK, datetime(2026, 6, 10, 15))
    with pytest.raises(ValueError, match="at least one time zone"):
        window.is_open((), utc(6, 10, 15))
    with pytest.raises(ValueError, match="Mars/Base"):
        window.next_open(("Mars/Base",), utc(6, 10, 15))
    with pytest.raises(TypeError):
        window.is_open("America/New_York", utc(6, 10, 15))
