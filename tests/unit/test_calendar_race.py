"""The race rule the Google, Outlook and CalDAV adapters settle contested slots by (race.py):
pure decisions on listed claims, plus the two-writer protocol played out on a listing model."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from slotline.providers.calendars.race import Claim, Verdict, rivals, settle

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_no_rival_wins_whatever_else_is_listed() -> None:
    listed = [
        Claim("ours", at(5), True),
        Claim("cancelled", at(0), False),  # earlier, but it does not block
        Claim("transparent", None, False),
    ]

    assert settle("ours", listed) is Verdict.WON
    assert settle("ours", listed, wait_for_rivals=True) is Verdict.WON
    assert settle("ours", []) is Verdict.WON  # even when the listing missed our own event
    assert rivals("ours", listed) == []


def test_an_earlier_rival_wins_and_a_later_one_loses() -> None:
    ours = Claim("ours", at(5), True)

    assert settle("ours", [ours, Claim("early", at(4), True)]) is Verdict.LOST
    assert settle("ours", [ours, Claim("late", at(6), True)]) is Verdict.WON
    assert settle("ours", [ours, Claim("late", at(6), True), Claim("early", at(4), True)]) is (
        Verdict.LOST
    )


def test_a_tie_goes_to_the_smaller_id() -> None:
    a, b = Claim("a", at(5), True), Claim("b", at(5), True)

    assert settle("a", [a, b]) is Verdict.WON
    assert settle("b", [a, b]) is Verdict.LOST


def test_ranked_first_with_rivals_still_there_waits_when_asked() -> None:
    listed = [Claim("ours", at(5), True), Claim("late", at(6), True)]

    assert settle("ours", listed, wait_for_rivals=True) is Verdict.WAIT
    assert settle("ours", listed[:1], wait_for_rivals=True) is Verdict.WON  # it withdrew
    early = [*listed, Claim("early", at(1), True)]
    assert settle("ours", early, wait_for_rivals=True) is Verdict.LOST


def test_our_rank_comes_from_the_listing_else_from_the_write() -> None:
    rival = Claim("rival", at(5), True)

    # the listing's stamp is the one every process sees: it beats the write's answer
    assert settle("ours", [Claim("ours", at(6), True), rival],
                  written=Claim("ours", at(4), True)) is Verdict.LOST  # fmt: skip
    assert settle("ours", [rival], written=Claim("ours", at(4), True)) is Verdict.WON
    assert settle("ours", [rival]) is Verdict.LOST  # no rank to hold the slot with


def test_an_unknown_moment_ranks_last() -> None:
    unknown = Claim("unknown", None, True)

    assert settle("ours", [Claim("ours", at(5), True), unknown]) is Verdict.WON
    # ours unknown (e.g. an Outlook event just moved): it yields to any rival, known or not
    assert settle("ours", [Claim("ours", None, True), Claim("late", at(9), True)]) is Verdict.LOST
    assert settle("ours", [Claim("ours", None, True), Claim("zzz", None, True)]) is Verdict.LOST
    assert settle("ours", [Claim("ours", None, True)]) is Verdict.WON


@pytest.mark.parametrize(
    ("stamp_a", "stamp_b"),
    [(at(1), at(2)), (at(2), at(1)), (at(1), at(1)), (None, at(1)), (at(1), None)],
)
def test_two_writers_seeing_each_other_leave_exactly_one(
    stamp_a: datetime | None, stamp_b: datetime | None
) -> None:
    listed = [Claim("a", stamp_a, True), Claim("b", stamp_b, True)]

    verdicts = {settle("a", listed), settle("b", listed)}

    assert verdicts == {Verdict.WON, Verdict.LOST}


def _play(first_lists_alone: bool, stamps: tuple[datetime, datetime]) -> set[str]:
    """Two writers on a model calendar, waiting for rivals (CalDAV's protocol): each writes,
    then lists; a WAIT lists again after the other has acted; WAIT after that = grace over."""
    calendar = {"a": Claim("a", stamps[0], True)}
    kept: set[str] = set()
    pending: list[str] = []
    if first_lists_alone:  # a lists before b's write lands
        assert settle("a", calendar.values(), wait_for_rivals=True) is Verdict.WON
        kept.add("a")
        calendar["b"] = Claim("b", stamps[1], True)
        pending = ["b"]
    else:
        calendar["b"] = Claim("b", stamps[1], True)
        pending = ["a", "b"]
    waiting: list[str] = []
    for writer in pending:
        verdict = settle(writer, calendar.values(), wait_for_rivals=True)
        if verdict is Verdict.LOST:
            del calendar[writer]
        elif verdict is Verdict.WON:
            kept.add(writer)
        else:
            waiting.append(writer)
    for writer in waiting:  # one more look after the grace period
        if settle(writer, calendar.values(), wait_for_rivals=True) is Verdict.WON:
            kept.add(writer)
        else:
            del calendar[writer]
    assert set(calendar) == kept
    return kept


@pytest.mark.parametrize(
    ("first_lists_alone", "order"),
    list(itertools.product([True, False], ["a-stamped-first", "b-stamped-first"])),
)
def test_waiting_for_rivals_leaves_one_writer_in_any_interleaving(
    first_lists_alone: bool, order: str
) -> None:
    stamps = (at(1), at(2)) if order == "a-stamped-first" else (at(2), at(1))

    assert len(_play(first_lists_alone, stamps)) == 1


def test_without_waiting_a_writer_stamped_first_that_listed_late_would_double_book() -> None:
    """Why CalDAV waits: stamps are writers' clocks. b stamped first but wrote after a had
    listed alone and kept the slot; b's own verdict must not be WON."""
    both = [Claim("a", at(2), True), Claim("b", at(1), True)]

    assert settle("a", both[:1]) is Verdict.WON  # a listed before b's write landed
    assert settle("b", both) is Verdict.WON  # the naive rule keeps b too
    assert settle("b", both, wait_for_rivals=True) is Verdict.WAIT  # CalDAV waits, then yields
