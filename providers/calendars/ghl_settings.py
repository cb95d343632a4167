"""A GoHighLevel calendar's own settings and the business's booking options, without I/O.

- ``GET /calendars/{calendarId}`` (``Version: 2021-04-15``) answers ``{"calendar": CalendarDTO}``:
  ``slotDuration`` with ``slotDurationUnit`` (``mins`` | ``hours``) is the length GHL books, so
  the slots Slotline offers are that long whatever the booking action's ``duration_min``;
- ``GET /calendars/?locationId=`` answers ``{"calendars": [CalendarDTO, ...]}``: what ``slotline
  calendars list`` shows so a user can find the id to configure;
- the business's options (``calendars.<name>`` settings): ``auto_confirm`` (appointment status
  ``confirmed``, else ``new`` for staff to confirm), ``title`` (a template over flow variables,
  ``{user_name}``), ``tags`` (templates too, added to the contact's own tags with ``POST
  /contacts/{id}/tags``: the upsert's ``tags`` would replace them) and ``fields`` (contact custom
  field id → the flow variable holding its value, sent as ``customFields`` on the upsert).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from slotline.providers.errors import ProviderError

PROVIDER = "ghl"
_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class GhlCalendarInfo:
    id: str
    name: str
    length_min: int | None  # None: GHL did not say
    kind: str = ""  # calendarType: event, round_robin, collective, ...
    active: bool = True


@dataclass(frozen=True, slots=True)
class BookingOptions:
    """How Slotline writes to one GHL calendar (see the module doc)."""

    auto_confirm: bool = True
    title: str = ""
    tags: tuple[str, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)  # custom field id → variable

    @property
    def status(self) -> str:
        return "confirmed" if self.auto_confirm else "new"

    def required_variables(self) -> dict[str, str]:
        """Each configured custom field → its variable; and each variable a template names."""
        needed = {f"customFields.{key}": variable for key, variable in self.fields.items()}
        for where, template in (("title", self.title), *(("tags", t) for t in self.tags)):
            for name in _VARIABLE.findall(template):
                needed[f"{where}.{name}"] = name
        return needed


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``{variable}`` replaced by its value ("" when unset)."""
    return _VARIABLE.sub(lambda match: values.get(match[1], ""), template).strip()


def tags_of(options: BookingOptions, values: Mapping[str, str]) -> list[str]:
    found: list[str] = []
    for template in options.tags:
        tag = render(template, values)
        if tag and tag not in found:
            found.append(tag)
    return found


def custom_fields_of(options: BookingOptions, values: Mapping[str, str]) -> list[dict[str, str]]:
    """``customFields`` of the contact upsert: the configured fields whose variable is set."""
    return [
        {"id": key, "field_value": values[variable].strip()}
        for key, variable in options.fields.items()
        if values.get(variable, "").strip()
    ]


def _length_min(calendar: Mapping[str, object]) -> int | None:
    amount = calendar.get("slotDuration")
    if not isinstance(amount, int | float) or isinstance(amount, bool) or amount <= 0:
        return None
    unit = calendar.get("slotDurationUnit")
    return int(amount * 60) if unit == "hours" else int(amount)


def _info(calendar: object) -> GhlCalendarInfo:
    if not isinstance(calendar, dict) or not isinstance(calendar.get("id"), str):
        raise ProviderError(PROVIDER, "a calendar in the answer has no id")
    return GhlCalendarInfo(
        calendar["id"], str(calendar.get("name") or ""), _length_min(calendar),
        str(calendar.get("calendarType") or ""), calendar.get("isActive") is not False,
    )


def parse_calendar(body: object) -> GhlCalendarInfo:
    """``GET /calendars/{calendarId}``."""
    return _info(body.get("calendar") if isinstance(body, dict) else None)


def parse_calendars(body: object) -> list[GhlCalendarInfo]:
    """``GET /calendars/?locationId=``."""
    items = body.get("calendars") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ProviderError(PROVIDER, "calendars: the answer has no calendars list")
    return [_info(item) for item in items]


def describe(calendars: Sequence[GhlCalendarInfo]) -> list[str]:
    """One line per calendar, for ``slotline calendars list``."""
    lines = []
    for item in calendars:
        length = f"{item.length_min} min" if item.length_min else "length unknown"
        state = "" if item.active else "  (draft)"
        line = f"{item.id}  {item.name or '(no name)'}  {length}  {item.kind}{state}"
        lines.append(line.rstrip())
    return lines
