"""The contacts of a dialer campaign: an uploaded CSV file (or the API's JSON rows) in, checked
contacts out. Pure apart from reading the time zone database.

Businesses export leads and patients from spreadsheets and CRMs, so numbers are taken as people
write them and files as Excel saves them. The answer is row by row: good rows become ``Contact``,
bad ones come back as ``Rejected`` with a reason the uploader can act on. Only a file that cannot
be read at all raises ``ContactsError``.

- Columns: ``phone`` (or ``phone_number``) is required; ``name``, ``email`` and ``timezone`` are
  optional. Headers are compared after normalising to lower snake case ("Phone Number" and
  "PhoneNumber" are ``phone_number``); every other column becomes a flow variable under its
  normalised name, beside ``user_name``, ``user_email``, ``user_phone`` and ``user_timezone``.
- Numbers: parsed by ``phonenumbers`` in ``default_region`` so national formats work, they must be
  valid and carry no extension (the dialer cannot key one in), and are kept as E.164. A number
  seen before (however it was written) is rejected as a duplicate of the first line.
- Time zones: the ``timezone`` cell, else every zone phonenumbers gives the number (area code 208
  is both Boise and Los Angeles), else ``default_timezone``; the calling window holds to all of
  them. Toll-free and other placeless numbers take the default zone when it is among theirs.
- Files: UTF-8 with or without BOM; comma, semicolon (European Excel) or tab, whichever splits
  the header into the most columns (the header is reliable where data rows with quoted text
  fool a sniffer); blank rows are skipped; at most ``MAX_ROWS`` rows and ``MAX_CELL_CHARS``
  characters a cell.
- Privacy: exception messages never carry a phone number. ``Rejected.phone`` does, because it is
  the uploader's own data handed back to them.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import re
import unicodedata
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

import phonenumbers
from phonenumbers import timezone as phone_zones

MAX_ROWS: Final = 100_000
MAX_CELL_CHARS: Final = 1_000

_DELIMITERS: Final = (",", ";", "\t")  # on a tie the first wins
_Role = Literal["phone", "name", "email", "timezone", "variable", "unnamed"]

_ROLES: Final[Mapping[str, _Role]] = MappingProxyType(
    {
        "phone": "phone",
        "phone_number": "phone",
        "name": "name",
        "email": "email",
        "e_mail": "email",
        "timezone": "timezone",
        "time_zone": "timezone",
    }
)
_RESERVED: Final = frozenset({"user_name", "user_email", "user_phone", "user_timezone"})
_UNKNOWN_ZONE: Final = "Etc/Unknown"  # phonenumbers' answer when it has none
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_NAME_CHARS = re.compile(r"[^a-z0-9]+")
_ZIP_MAGIC: Final = b"PK\x03\x04"
_TYPE = phonenumbers.PhoneNumberType
_PLACELESS_TYPES: Final = frozenset(
    {_TYPE.TOLL_FREE, _TYPE.PREMIUM_RATE, _TYPE.SHARED_COST, _TYPE.PERSONAL_NUMBER, _TYPE.UAN}
)
_PARSE_ERRORS: Final[Mapping[int, str]] = MappingProxyType(
    {
        phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
        phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
        phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short for a phone number",
        phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short for a phone number",
        phonenumbers.NumberParseException.TOO_LONG: "too long for a phone number",
    }
)


class ContactsError(ValueError):
    """The whole file is unusable (empty, undecodable, not CSV, no phone column, too long), so
    there are no rows to judge one by one."""


@dataclass(frozen=True, slots=True)
class Contact:
    """One callable contact; ``line`` points back into the upload (header = line 1)."""

    line: int
    phone: str
    name: str
    email: str
    timezones: tuple[str, ...]
    variables: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row that was not taken, with the number as written so the uploader can find it."""

    line: int
    phone: str
    reason: str


@dataclass(frozen=True, slots=True)
class ContactList:
    contacts: tuple[Contact, ...]
    rejected: tuple[Rejected, ...]


@dataclass(frozen=True, slots=True)
class _Column:
    number: int  # 1-based position, for messages
    name: str  # normalised; "" when the header is blank
    role: _Role


def parse_csv(
    data: bytes, *, default_region: str = "US", default_timezone: str = "America/New_York"
) -> ContactList:
    """The contacts of an uploaded CSV file. ValueError for a bad default region or zone."""
    checker = _Checker(default_region, default_timezone)
    text = _decode(data)
    if not text.strip():
        raise ContactsError("the file is empty")
    header, records = _read_records(text)
    layout = _layout(header)
    if isinstance(layout, str):
        raise ContactsError(layout)
    if not any(column.role == "phone" for column in layout):
        found = ", ".join(repr(_shorten(cell.strip())) for cell in header)
        raise ContactsError(
            f"no phone column: the header needs 'phone' (or 'phone_number'); found {found}"
        )
    for line, row in records:
        # A short row's missing cells are blank; a long row's extra cells have no header.
        cells = [*row, *[""] * (len(layout) - len(row))]
        unnamed = (_Column(n + 1, "", "unnamed") for n in range(len(layout), len(row)))
        checker.add(line, list(zip((*layout, *unnamed), cells, strict=True)))
    if checker.rows_checked == 0:
        raise ContactsError("no contacts below the header")
    return checker.result()


def parse_rows(
    rows: Sequence[Mapping[str, object]],
    *,
    default_region: str = "US",
    default_timezone: str = "America/New_York",
) -> ContactList:
    """The contacts of the API's JSON list of objects (line = index + 1). Values become text;
    items that are not objects, and objects with nested values, are rejected."""
    checker = _Checker(default_region, default_timezone)
    if len(rows) > MAX_ROWS:
        raise ContactsError(f"more than {MAX_ROWS} contacts: split the list")
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            checker.reject(index + 1, "", f"item {index} is not an object")
            continue
        layout = _layout([str(key) for key in row])
        texts = [_stringify(value) for value in row.values()]
        if isinstance(layout, str):
            checker.reject(index + 1, _phone_text(row), layout)
        elif None in texts:
            bad = next(str(key) for key, text in zip(row, texts, strict=True) if text is None)
            checker.reject(
                index + 1, _phone_text(row), f"the value of {bad!r} is not text or a number"
            )
        else:
            checker.add(index + 1, [(c, t or "") for c, t in zip(layout, texts, strict=True)])
    if checker.rows_checked == 0:
        raise ContactsError("no contacts in the list")
    return checker.result()


class _Checker:
    """Judges rows in order, remembering accepted numbers to spot duplicates."""

    __slots__ = ("_contacts", "_default_zone", "_first_line_by_phone", "_region", "_rejected")

    def __init__(self, default_region: str, default_timezone: str) -> None:
        self._region = default_region.strip().upper()
        if self._region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown default region {default_region!r}: use one such as 'US'")
        zone = _canonical_zone(default_timezone)
        if zone is None:
            raise ValueError(f"unknown default time zone {default_timezone!r}")
        self._default_zone = zone
        self._first_line_by_phone: dict[str, int] = {}
        self._contacts: list[Contact] = []
        self._rejected: list[Rejected] = []

    @property
    def rows_checked(self) -> int:
        return len(self._contacts) + len(self._rejected)

    def reject(self, line: int, phone: str, reason: str) -> None:
        self._rejected.append(Rejected(line, phone[:MAX_CELL_CHARS], reason))

    def add(self, line: int, cells: Sequence[tuple[_Column, str]]) -> None:
        """Judge one row; a row of blank cells is skipped without a word."""
        values = [(column, text.strip()) for column, text in cells]
        if not any(text for _, text in values):
            return
        phone_raw = next((text for column, text in values if column.role == "phone"), "")
        outcome = self._check(line, values)
        if isinstance(outcome, str):
            self.reject(line, phone_raw, outcome)
        else:
            self._first_line_by_phone[outcome.phone] = line
            self._contacts.append(outcome)

    def result(self) -> ContactList:
        return ContactList(tuple(self._contacts), tuple(self._rejected))

    def _check(self, line: int, values: Sequence[tuple[_Column, str]]) -> Contact | str:
        """The contact, or why the row is turned away (the first problem found)."""
        by_role: dict[_Role, str] = {column.role: text for column, text in values}
        phone_raw = by_role.get("phone", "")
        for column, text in values:
            if len(text) > MAX_CELL_CHARS:
                label = repr(column.name) if column.name else f"column {column.number}"
                return f"the {label} cell is longer than {MAX_CELL_CHARS} characters"
            if column.role == "unnamed" and text:
                return f"a value in column {column.number}, which has no header"
        if not phone_raw:
            return "no phone number"
        number = _parse_phone(phone_raw, self._region)
        if isinstance(number, str):
            return number
        email = by_role.get("email", "")
        if email and _EMAIL.fullmatch(email) is None:
            return "not an email address"
        zone_text = by_role.get("timezone", "")
        if zone_text:
            zone = _canonical_zone(zone_text)
            if zone is None:
                return f"unknown time zone {zone_text!r}"
            zones: tuple[str, ...] = (zone,)
        else:
            zones = _zones_of(number, self._default_zone)
        phone = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        first_line = self._first_line_by_phone.get(phone)
        if first_line is not None:
            return f"duplicate of line {first_line}"
        name = by_role.get("name", "")
        variables = {column.name: text for column, text in values if column.role == "variable"}
        variables.update(user_name=name, user_email=email, user_phone=phone, user_timezone=zones[0])
        return Contact(line, phone, name, email, zones, MappingProxyType(variables))


def _parse_phone(raw: str, region: str) -> phonenumbers.PhoneNumber | str:
    """The number, or why it cannot be dialled."""
    try:
        number = phonenumbers.parse(raw, region, keep_raw_input=True)
    except phonenumbers.NumberParseException as error:
        return _PARSE_ERRORS.get(error.error_type, "not a phone number")
    if number.extension:
        return "has an extension, which the dialer cannot dial"
    if phonenumbers.is_valid_number(number):
        return number
    if number.country_code_source == phonenumbers.CountryCodeSource.FROM_DEFAULT_COUNTRY:
        return (
            f"not a valid {region} number: write numbers from other countries with + and their "
            "country code"
        )
    return "not a valid phone number"


def _zones_of(number: phonenumbers.PhoneNumber, default_zone: str) -> tuple[str, ...]:
    """The zones the number's owner may be in: phonenumbers' list, sorted (without its unknown
    marker and names zoneinfo lacks), else the default. A toll-free or other placeless number is
    listed under every zone of its plan (the NANP's run from Guam to Pago Pago, whose calling
    hours never overlap), so it takes the default zone when that is one of them."""
    names = {_canonical_zone(name) for name in phone_zones.time_zones_for_number(number)}
    zones = tuple(sorted(name for name in names if name is not None and name != _UNKNOWN_ZONE))
    if default_zone in zones and phonenumbers.number_type(number) in _PLACELESS_TYPES:
        return (default_zone,)
    return zones or (default_zone,)


@functools.cache
def _zone_names_by_folded() -> Mapping[str, str]:
    return MappingProxyType({name.casefold(): name for name in zoneinfo.available_timezones()})


@functools.lru_cache(maxsize=1024)
def _canonical_zone(name: str) -> str | None:
    """The IANA spelling of ``name`` ("america/new_york" → "America/New_York"), or None. Only
    listed zones count: a bare ZoneInfo would also load "localtime", the server's own zone."""
    return _zone_names_by_folded().get(name.strip().casefold())


def _layout(headers: Sequence[str]) -> tuple[_Column, ...] | str:
    """The columns named by ``headers``, or why the names cannot work (no phone numbers in it)."""
    columns: list[_Column] = []
    first_by_name: dict[str, int] = {}
    first_by_role: dict[str, str] = {}
    for number, header in enumerate(headers, start=1):
        if not header.strip():
            columns.append(_Column(number, "", "unnamed"))
            continue
        if _looks_like_phone(header):
            return f"column {number} is named by a phone number: the first line must name columns"
        name = _normalise_name(header)
        if not name:
            shown = _shorten(header)
            return f"column {number} ({shown!r}) has no Latin letters to name a variable by"
        if name in first_by_name:
            return f"columns {first_by_name[name]} and {number} are both called {name!r}"
        if name in _RESERVED:
            return f"column {number} is called {name!r}, which is set from the contact itself"
        role = _ROLES.get(name, "variable")
        if role in first_by_role:
            return f"two {role} columns, {first_by_role[role]!r} and {name!r}: keep one"
        if role != "variable":
            first_by_role[role] = name
        first_by_name[name] = number
        columns.append(_Column(number, name, role))
    return tuple(columns)


def _normalise_name(header: str) -> str:
    """``header`` as a flow variable name: lower snake case ASCII starting with a letter
    ("First Name" → "first_name", "Prénom" → "prenom", "2nd line" → "nd_line"); "" when
    nothing usable is left."""
    split = _CAMEL_BOUNDARY.sub("_", header.strip())
    ascii_text = unicodedata.normalize("NFKD", split.casefold()).encode("ascii", "ignore")
    snake = _NOT_NAME_CHARS.sub("_", ascii_text.decode("ascii")).strip("_")
    return snake.lstrip("0123456789_")


def _looks_like_phone(text: str) -> bool:
    """Whether a header cell is really a number, i.e. the file has no header row."""
    if sum(char.isdigit() for char in text) < 5:  # also keeps "PHONE" from reading as vanity digits
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(text, "US"))
    except phonenumbers.NumberParseException:
        return False


def _phone_text(row: Mapping[str, object]) -> str:
    """The phone value of a JSON row as written, for a rejection of the whole row."""
    for key, value in row.items():
        text = _stringify(value)
        if _ROLES.get(_normalise_name(str(key))) == "phone" and text is not None:
            return text.strip()
    return ""


def _stringify(value: object) -> str | None:
    """A JSON value as cell text; None for nested arrays and objects."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 12025551234.0 is a number, not a decimal
    return str(value) if isinstance(value, int | float) else None


def _decode(data: bytes) -> str:
    if data.startswith(_ZIP_MAGIC):
        raise ContactsError("this is a workbook or zip file, not CSV: save it as 'CSV UTF-8'")
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = start + error.start
        line = data.count(b"\n", 0, offset) + 1
        utf16 = data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
        hint = "; it looks like UTF-16" if utf16 else ""
        raise ContactsError(
            f"not UTF-8 text: save the file as UTF-8 (line {line}, byte {offset + 1}{hint})"
        ) from None


def _read_records(text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the records below it with their first lines, all read before any row is
    judged so an oversized file fails fast."""
    line = 1  # where the record being read starts, for csv's own errors
    records: list[tuple[int, list[str]]] = []
    try:
        reader = csv.reader(
            io.StringIO(text, newline=""), delimiter=_pick_delimiter(text), skipinitialspace=True
        )
        header = next((row for row in reader if any(cell.strip() for cell in row)), [])
        line = reader.line_num + 1
        for row in reader:
            if len(records) == MAX_ROWS:
                raise ContactsError(f"more than {MAX_ROWS} rows: split the file")
            records.append((line, row))
            line = reader.line_num + 1
    except csv.Error as error:
        raise ContactsError(f"not a readable CSV file (line {line}): {error}") from None
    return header, records


def _pick_delimiter(text: str) -> str:
    """The delimiter that splits the header into the most columns."""
    sample = text.lstrip()

    def width(delimiter: str) -> int:
        return len(next(csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter), []))

    return max(_DELIMITERS, key=width)


def _shorten(text: str) -> str:
    """A header for a message: at most 40 characters, digits masked if it might be a number."""
    short = text if len(text) <= 40 else text[:39] + "…"
    if sum(char.isdigit() for char in short) >= 5:
        return re.sub(r"\d", "•", short)
    return short
