"""The pure half of the dialer commands (``agent/dialer/cli.py``): their arguments read, the
server's JSON read into small views, and those views turned into lines — no network.

Apart from the HTTP code so that every line the user sees can be tested from a dict, and so
that the server's JSON is checked once here instead of being indexed all over the commands.
The server is read leniently (a missing count is 0, a missing field is empty): a newer server
that adds fields, or an older one that lacks some, still gives a useful display.

Phone numbers of contacts are masked (``+1 *** *** 4567``) in everything that shows progress;
only the rejected-rows report repeats what the user wrote, so the row can be found and fixed.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

# The order of the campaign's counts in tables: results first, then what is still to come.
COUNT_NAMES = ("booked", "declined", "voicemail", "no_answer", "busy", "failed", "do_not_call",
               "invalid", "dialing", "pending")
FINISHED_STATUSES = frozenset({"done", "cancelled"})
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)", re.IGNORECASE)
_SECONDS_PER_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_UNANSWERED_STATUSES = frozenset({"busy", "no-answer", "failed", "canceled"})  # Twilio's
_ANSWERED_BY_WORDS = {"human": "a person", "fax": "a fax machine",
                      "unknown": "unknown (detection could not tell)"}


# ---- views of the server's JSON --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallView:
    """An outbound call as ``GET /api/calls/{sid}`` tells it."""

    call_sid: str
    number: str
    status: str  # Twilio's CallStatus: queued, ringing, in-progress, completed, ...
    answered_by: str  # the AMD verdict; "" until it comes (or when detection is off)
    machine_action: str
    outcome: str  # "" until settled
    reason: str
    booking_id: str
    duration_s: float | None
    settled: bool  # the outcome is final


@dataclass(frozen=True, slots=True)
class CampaignView:
    id: str
    name: str
    flow: str
    status: str  # running | paused | done | cancelled
    counts: Mapping[str, int]
    contacts: int
    dialed: int  # attempts so far
    answered: int
    remaining: int  # pending + dialing
    dials_per_minute: float
    eta_s: float | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    phone: str
    reason: str


def call_view(data: Mapping[str, Any]) -> CallView:
    outbound = _mapping(data.get("outbound"))
    duration = outbound.get("duration_s")
    return CallView(
        call_sid=_str(outbound, "call_sid") or _str(data, "call_sid"),
        number=_str(outbound, "number"),
        status=_str(outbound, "status") or _str(data, "status"),
        answered_by=_str(outbound, "answered_by"),
        machine_action=_str(outbound, "machine_action"),
        outcome=_str(outbound, "outcome"),
        reason=_str(outbound, "reason"),
        booking_id=_str(outbound, "booking_id"),
        duration_s=float(duration) if isinstance(duration, int | float) else None,
        settled=outbound.get("settled_at") is not None,
    )


def campaign_view(data: Mapping[str, Any]) -> CampaignView:
    counts = _mapping(data.get("counts"))
    progress = _mapping(data.get("progress"))
    eta = progress.get("eta_s")
    return CampaignView(
        id=_str(data, "id"),
        name=_str(data, "name"),
        flow=_str(data, "flow"),
        status=_str(data, "status"),
        counts={name: _int(counts, name) for name in (*COUNT_NAMES, *counts)},
        contacts=_int(progress, "contacts"),
        dialed=_int(progress, "dialed"),
        answered=_int(progress, "answered"),
        remaining=_int(progress, "remaining"),
        dials_per_minute=_float(progress, "dials_per_minute"),
        eta_s=float(eta) if isinstance(eta, int | float) else None,
    )


def rejected_rows(data: Mapping[str, Any]) -> list[RejectedRow]:
    rows = data.get("rejected")
    if not isinstance(rows, list):
        return []
    return [RejectedRow(_int(row, "line"), _str(row, "phone"), _str(row, "reason"))
            for row in map(_mapping, rows)]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return "" if value is None else str(value)


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _float(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


# ---- arguments ------------------------------------------------------------------------------


def parse_duration_s(text: str) -> float:
    """``90s``, ``30m``, ``2h``, ``1d`` or plain seconds → seconds. ValueError if not one."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or float(match[1]) <= 0:
        raise ValueError(f"{text!r} is not a duration such as 90s, 30m, 2h, 1d or 7200")
    return float(match[1]) * _SECONDS_PER_UNIT[match[2].lower()]


def parse_variable(text: str) -> tuple[str, str]:
    """``name=Maria`` → ``("name", "Maria")``; the value may itself hold ``=``."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise ValueError(f"{text!r} is not NAME=VALUE")
    return name.strip(), value


# ---- lines ------------------------------------------------------------------------------------


def mask_phone(number: str) -> str:
    """``+15551234567`` → ``+1 *** *** 4567``: enough to tell contacts apart, not to dial."""
    digits = re.sub(r"\D", "", number)
    if len(digits) < 7:
        return "***"
    country = ""
    if number.lstrip().startswith("+"):
        import phonenumbers  # lazily: only commands that show a number need its metadata

        try:
            country = f"+{phonenumbers.parse(number).country_code} "
        except phonenumbers.NumberParseException:
            country = "+"
    return f"{country}*** *** {digits[-4:]}"


def format_duration(seconds: float) -> str:
    """``45s``, ``9m30s``, ``2h05m``, ``1d03h`` — an ETA needs two units at most."""
    whole = max(round(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def rejected_lines(rows: Sequence[RejectedRow]) -> list[str]:
    """``line 3: +1 555 … — not a phone number``, as the user wrote it (to find the row)."""
    return [f"line {row.line}: {row.phone or '(empty)'} — {row.reason}" for row in rows]


def call_changes(before: CallView | None, now: CallView) -> list[str]:
    """What is new since the last poll: the call's status, then the machine-detection verdict."""
    lines = []
    if now.status and (before is None or now.status != before.status):
        lines.append(now.status)
    if now.answered_by and (before is None or now.answered_by != before.answered_by):
        lines.append(f"answered by {answered_by_words(now.answered_by)}")
    return lines


def answered_by_words(answered_by: str) -> str:
    if answered_by.startswith("machine"):
        return f"an answering machine ({answered_by})"
    return _ANSWERED_BY_WORDS.get(answered_by, answered_by)


def call_summary(view: CallView) -> list[str]:
    if view.answered_by:
        answered = answered_by_words(view.answered_by)
    elif view.status in _UNANSWERED_STATUSES or view.outcome in ("no_answer", "busy"):
        answered = "nobody"
    else:
        answered = "not reported"
    if view.machine_action and view.answered_by.startswith("machine"):
        answered += f"; {view.machine_action}"
    outcome = view.outcome + (f" — {view.reason}" if view.reason else "")
    booked = f"yes, booking {view.booking_id}" if view.booking_id else "no"
    duration = "-" if view.duration_s is None else format_duration(view.duration_s)
    return [f"call {view.call_sid} to {mask_phone(view.number)}: {view.outcome}",
            f"  answered by  {answered}",
            f"  outcome      {outcome}",
            f"  booked       {booked}",
            f"  duration     {duration}"]


def progress_line(view: CampaignView) -> str:
    rate = f"{view.dials_per_minute:.1f}/min"
    eta = "-" if view.eta_s is None else format_duration(view.eta_s)
    return (f"{view.status}  dialed {view.dialed}  answered {view.answered}  "
            f"booked {view.counts['booked']}  voicemail {view.counts['voicemail']}  "
            f"remaining {view.remaining}  {rate}  ETA {eta}")


def campaign_heading(view: CampaignView) -> str:
    name = f" ({view.name})" if view.name else ""
    return f"campaign {view.id}{name}: {view.status}, flow {view.flow}, {view.contacts} contacts"


def counts_table(view: CampaignView) -> list[str]:
    """Contacts by outcome; ``pending``/``dialing`` only while some are."""
    total = max(view.contacts, 1)
    rows = [(name, count) for name, count in view.counts.items()
            if count or name not in ("pending", "dialing")]
    width = max(len(name) for name, _ in rows)
    lines = [f"  {name.replace('_', ' '):<{width}}  {count:>6}  {100 * count / total:5.1f}%"
             for name, count in rows]
    return [*lines, f"  {'total':<{width}}  {view.contacts:>6}"]


class ProgressDisplay:
    """A campaign's progress: one line redrawn in place on a terminal; elsewhere (a log file,
    CI) a timestamped line every ``plain_every_s`` and on every status change, so a log of a
    long run stays short but still shows when it paused."""

    def __init__(self, out: TextIO, *, plain_every_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._out = out
        self._tty = out.isatty()
        self._plain_every_s = plain_every_s
        self._clock = clock
        self._printed_at: float | None = None
        self._status = ""
        self._drawn_chars = 0  # the width of the line on screen, to blank what a shorter leaves

    def show(self, view: CampaignView) -> None:
        line = progress_line(view)
        if self._tty:
            columns = shutil.get_terminal_size().columns
            line = line[: max(columns - 1, 20)]  # a wrapped line could not be redrawn with \r
            self._out.write("\r" + line.ljust(self._drawn_chars))
            self._out.flush()
            self._drawn_chars = len(line)
            return
        now = self._clock()
        due = self._printed_at is None or now - self._printed_at >= self._plain_every_s
        if due or view.status != self._status or view.finished:
            print(f"{datetime.now():%H:%M:%S} {line}", file=self._out, flush=True)
            self._printed_at = now
        self._status = view.status

    def end_line(self) -> None:
        """Leave the redrawn line so that what follows starts on a line of its own."""
        if self._drawn_chars:
            self._out.write("\n")
            self._out.flush()
            self._drawn_chars = 0


def campaign_status_lines(data: Mapping[str, Any], *, with_contacts: bool) -> list[str]:
    """``slotline campaign status``: heading, progress, counts, settings, maybe contacts."""
    view = campaign_view(data)
    lines = [campaign_heading(view), f"  {progress_line(view)}", *counts_table(view)]
    settings = _mapping(data.get("settings"))
    if settings:
        lines += ["settings:", *(f"  {key}: {value}" for key, value in settings.items())]
    contacts = data.get("contacts")
    if with_contacts and isinstance(contacts, list):
        lines += ["contacts:", *(contact_line(_mapping(row)) for row in contacts)]
    return lines


def contact_line(row: Mapping[str, Any]) -> str:
    attempts = row.get("attempts")
    tries = len(attempts) if isinstance(attempts, list) else 0
    reason = _str(row, "reason")
    booking = _str(row, "booking_id")
    return (f"  line {_int(row, 'line'):>5}  {mask_phone(_str(row, 'phone')):<18} "
            f"{_str(row, 'outcome'):<12} {tries} tries"
            + (f"  booking {booking}" if booking else "") + (f"  {reason}" if reason else ""))


def campaign_table(views: Sequence[CampaignView]) -> list[str]:
    if not views:
        return ["no campaigns"]
    header = f"{'ID':<24} {'STATUS':<10} {'FLOW':<16} {'DIALED':>13} {'BOOKED':>7}  NAME"
    return [header, *(f"{v.id:<24} {v.status:<10} {v.flow:<16} "
                      f"{f'{v.dialed}/{v.contacts}':>13} {v.counts['booked']:>7}  {v.name}"
                      for v in views)]


def dnc_table(entries: object) -> list[str]:
    """The do-not-call list in full: its numbers are what ``dnc remove`` needs."""
    rows = [_mapping(entry) for entry in entries] if isinstance(entries, list) else []
    if not rows:
        return ["the do-not-call list is empty"]
    header = f"{'PHONE':<18} {'SOURCE':<10} {'ADDED':<26} CALL"
    return [header, *(f"{_str(r, 'phone'):<18} {_str(r, 'source'):<10} "
                      f"{_str(r, 'added_at'):<26} {_str(r, 'call_sid')}".rstrip() for r in rows)]


def e164(number: str, region: str) -> str:
    """The number as the API's paths name it; as written when it is not one (the server then
    says it is not on the list)."""
    import phonenumbers

    try:
        parsed = phonenumbers.parse(number, region.upper())
    except phonenumbers.NumberParseException:
        return number.strip()
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
