"""Pooling several calendars' free slots into the slots one booking action can offer.

- ``first_available``: a slot is offered when ANY calendar is free; it goes to the first free
  calendar in the pool's order (the order of ``free_by_calendar``, i.e. the action's config order).
- ``round_robin``: offered when ANY calendar is free; it goes to the free calendar with the fewest
  assignments so far (``assignment_counts``; missing = 0), ties broken by the pool's order. The
  counts are the caller's to persist and to bump once a booking is made; every slot here is
  judged against the same counts, because only one of them will be booked.
- ``collective``: offered only when ALL calendars are free; it books every calendar.

``PooledSlot.calendars`` are the calendars to book; ``alternates`` are the other free calendars
(in preference order) to fall back on when the chosen one turns out to be taken at write time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args, overload

from slotline.agent.booking.intervals import Slot

Strategy = Literal["first_available", "round_robin", "collective"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)


@dataclass(frozen=True, slots=True)
class PooledSlot:
    slot: Slot
    calendars: tuple[str, ...]  # book these (one for any-free strategies, all for collective)
    alternates: tuple[str, ...] = ()  # other free calendars, best first


# start, end, calendars, alternates: a PooledSlot as plain tuples and atoms
_Row = tuple[datetime, datetime, tuple[str, ...], tuple[str, ...]]


class PackedSlots(Sequence[PooledSlot]):
    """Pooled slots kept as plain tuples, handed out as ``PooledSlot``s when read.

    A call keeps every slot its last look-up found (~100 for two weeks of half hours) while it
    offers times, so that a time the caller picks outside the offers can be checked. As
    objects, two per slot, they were the largest part of what a full garbage collection walks
    per live call; tuples that hold only datetimes and strings are no longer tracked by the
    collector after its first pass over them (``gc.is_tracked``), so live calls cost it less.
    """

    __slots__ = ("_rows",)

    def __init__(self, items: Iterable[PooledSlot] = ()) -> None:
        self._rows: tuple[_Row, ...] = tuple(
            (item.slot.start, item.slot.end, item.calendars, item.alternates) for item in items
        )

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> PooledSlot: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[PooledSlot]: ...

    def __getitem__(self, index: int | slice) -> PooledSlot | Sequence[PooledSlot]:
        if isinstance(index, slice):
            return tuple(_unpack(row) for row in self._rows[index])
        return _unpack(self._rows[index])

    def __iter__(self) -> Iterator[PooledSlot]:
        return map(_unpack, self._rows)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedSlots):
            return self._rows == other._rows
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._rows)

    def __repr__(self) -> str:
        return f"PackedSlots({len(self._rows)} slots)"

    def starting_at(self, start: datetime) -> PooledSlot | None:
        """The slot starting at ``start``, if any (unpacks only that one)."""
        return next((_unpack(row) for row in self._rows if row[0] == start), None)


def _unpack(row: _Row) -> PooledSlot:
    start, end, calendars, alternates = row
    return PooledSlot(Slot(start, end), calendars, alternates)


def pool(
    strategy: Strategy,
    free_by_calendar: Mapping[str, Sequence[Slot]],
    assignment_counts: Mapping[str, int],
) -> list[PooledSlot]:
    """The action's offerable slots, sorted by start, each with the calendar(s) to book."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown pool strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    order = list(free_by_calendar)
    if not order:
        return []
    free_in: dict[Slot, list[str]] = {}
    for calendar in order:  # pool order, so each slot's list is already in preference order
        for slot in free_by_calendar[calendar]:
            holders = free_in.get(slot)
            if holders is None:
                free_in[slot] = [calendar]
            elif holders[-1] != calendar:  # a calendar listing a slot twice counts once
                holders.append(calendar)

    pooled: list[PooledSlot] = []
    if strategy == "collective":
        everyone = tuple(order)
        for slot, holders in free_in.items():
            if len(holders) == len(order):
                pooled.append(PooledSlot(slot, everyone))
    elif strategy == "first_available":
        for slot, holders in free_in.items():
            pooled.append(PooledSlot(slot, (holders[0],), tuple(holders[1:])))
    else:
        rank = {calendar: index for index, calendar in enumerate(order)}

        def load(calendar: str) -> tuple[int, int]:
            return assignment_counts.get(calendar, 0), rank[calendar]

        for slot, holders in free_in.items():
            ranked = sorted(holders, key=load) if len(holders) > 1 else holders
            pooled.append(PooledSlot(slot, (ranked[0],), tuple(ranked[1:])))
    pooled.sort(key=_start_end)
    return pooled


def _start_end(item: PooledSlot) -> tuple[datetime, datetime]:
    return item.slot.start, item.slot.end
