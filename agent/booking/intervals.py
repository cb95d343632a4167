"""Half-open time spans: busy time (``Interval``), bookable time (``Slot``), and span algebra.

Every span is ``[start, end)``: the start instant belongs to it, the end instant does not, so two
back-to-back meetings (10:00-10:30 and 10:30-11:00) do not overlap. Both ends are timezone-aware
``datetime``s; the booking engine keeps them in UTC and only converts at the edges (business hours
are read in the calendar's zone, slots are spoken in the caller's).

``merge_intervals`` and ``subtract_intervals`` sort once and sweep, O(n log n) overall.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


@dataclass(frozen=True, slots=True, order=True)
class Interval:
    """A half-open span ``[start, end)`` of aware datetimes; empty when ``start == end``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _require_aware("Interval.start", self.start)
        _require_aware("Interval.end", self.end)
        if self.end < self.start:
            raise ValueError(
                f"Interval ends before it starts: {self.start.isoformat()} > {self.end.isoformat()}"
            )

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def is_empty(self) -> bool:
        return self.start == self.end

    def overlaps(self, other: Interval) -> bool:
        """True when the two spans share at least one instant (touching ends do not)."""
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True, slots=True, order=True)
class Slot:
    """A bookable appointment ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _require_aware("Slot.start", self.start)
        if self.end <= self.start:
            raise ValueError(f"Slot must end after it starts: {self.start.isoformat()}")

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def as_interval(self) -> Interval:
        return Interval(self.start, self.end)


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint union of ``intervals``; overlapping or touching spans are joined, empty
    spans dropped. Results are in UTC, widened outwards to whole seconds."""
    spans = merge_spans(_spans(intervals))
    return [Interval(from_epoch_s(start), from_epoch_s(end)) for start, end in spans]


def subtract_intervals(base: Iterable[Interval], remove: Iterable[Interval]) -> list[Interval]:
    """The parts of ``base`` not covered by any span of ``remove`` (sorted, disjoint, UTC, in
    whole seconds)."""
    kept = subtract_spans(merge_spans(_spans(base)), merge_spans(_spans(remove)))
    return [Interval(from_epoch_s(start), from_epoch_s(end)) for start, end in kept]


def _spans(intervals: Iterable[Interval]) -> list[tuple[int, int]]:
    return [(to_epoch_s(i.start), to_epoch_s_ceil(i.end)) for i in intervals]


# -- integer-second spans: the fast path the availability sweep runs on ---------------------------


def to_epoch_s(value: datetime) -> int:
    """Whole POSIX seconds of an aware datetime, rounded down (towards the past)."""
    return (value - _EPOCH) // _ONE_SECOND


def to_epoch_s_ceil(value: datetime) -> int:
    """Whole POSIX seconds of an aware datetime, rounded up (towards the future)."""
    return -((_EPOCH - value) // _ONE_SECOND)


def from_epoch_s(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint union of ``(start_s, end_s)`` spans; touching spans are joined."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(span for span in spans if span[1] > span[0]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def subtract_spans(
    base: Sequence[tuple[int, int]], remove: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """``base`` minus ``remove``; both must be sorted and disjoint (as ``merge_spans`` returns)."""
    kept: list[tuple[int, int]] = []
    index = 0
    for start, end in base:
        while index < len(remove) and remove[index][1] <= start:
            index += 1
        cursor = start
        probe = index
        while probe < len(remove) and remove[probe][0] < end:
            cut_start, cut_end = remove[probe]
            if cut_start > cursor:
                kept.append((cursor, cut_start))
            cursor = max(cursor, cut_end)
            probe += 1
        if cursor < end:
            kept.append((cursor, end))
    return kept
