"""Who keeps a contested slot: the one rule Google, Outlook and CalDAV settle races by.

Those three calendars accept overlapping events, so their adapters write a booking first, then
list the events in the slot and decide from the listing whether to keep it. This module makes
that decision and does no I/O; each adapter reduces the events it listed to ``Claim``s (its own
ranking: which vendor stamp says when an event came to occupy its time) and carries out the
verdict (keep, withdraw, or list again after a pause).

The rule, for our event and the claims listed in its slot:

- our own event is not a rival (matched by id); nor is any claim that does not block
  (cancelled, transparent / "free");
- no rival: ``WON`` (even if the listing missed our own event);
- otherwise the earliest ``since`` ranks first, ties broken by the smaller id. A ``since`` of
  None ("cannot say when it came") ranks after every known one; ours being None loses to any
  rival, so an adapter never keeps an event it cannot order. Our rank is read from the listing,
  else from the ``written`` claim (the write's own answer); with neither, ``LOST``;
- a rival ranked first: ``LOST`` (withdraw ours). Ours first: ``WON``, or ``WAIT`` when the
  adapter asked to wait for rivals, i.e. when ranks come from writers' clocks (CalDAV): a writer
  whose stamp ranks it first may have listed before the rival's write landed, so it keeps the
  slot only once the rival has seen it and withdrawn; a rival still there after a grace period
  confirmed without seeing it, and ours goes (the adapter owns that clock).

Every Slotline process applies the same order to the same listing and lists only after its own
write landed, so of two writers racing for one slot exactly one keeps its event (in a rare
three-way overlap one may give up needlessly; none double-books).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Claim:
    """One listed event as the race sees it."""

    id: str
    since: datetime | None  # when it came to occupy its time (the vendor's stamp); None: unknown
    blocks: bool  # makes its time busy: not cancelled, not transparent


class Verdict(enum.Enum):
    WON = "won"  # keep our event
    LOST = "lost"  # withdraw it: another event holds the slot
    WAIT = "wait"  # ranked first, rivals still there: list again until they withdraw or time is up


def rivals(our_id: str, listed: Iterable[Claim]) -> list[Claim]:
    """The listed claims that block the slot, our own event excluded."""
    return [claim for claim in listed if claim.blocks and claim.id != our_id]


def ranks_before(claim: Claim, other: Claim) -> bool:
    """Does ``claim`` hold the slot before ``other``? (earliest ``since``, then the smaller id)"""
    if claim.since is None or other.since is None:
        return claim.since is not None  # an unknown moment ranks after every known one
    return (claim.since, claim.id) < (other.since, other.id)


def settle(
    our_id: str,
    listed: Iterable[Claim],
    *,
    written: Claim | None = None,
    wait_for_rivals: bool = False,
) -> Verdict:
    """The verdict for our event ``our_id`` after listing its slot (the module doc's rule)."""
    claims = list(listed)
    others = rivals(our_id, claims)
    if not others:
        return Verdict.WON
    ours = next((claim for claim in claims if claim.id == our_id), written)
    if ours is None or ours.since is None:
        return Verdict.LOST
    if any(ranks_before(rival, ours) for rival in others):
        return Verdict.LOST
    return Verdict.WAIT if wait_for_rivals else Verdict.WON
