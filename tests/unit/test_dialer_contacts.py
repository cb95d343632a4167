"""The contacts file: numbers as people write them, files as spreadsheets save them, and a reason
for every row that is turned away.

Every number here is one ``phonenumbers`` calls valid: +1 202 456 1111 and +1 212 555 1234 (New
York), +1 415 555 2671 (Los Angeles), +1 208 555 0123 (Boise and Los Angeles), +1 800 642 7676
(toll-free: listed under all 42 NANP zones), +44 7911 123456 (UK mobile), +49 30 12345678
(Berlin), +800 1234 5678 (international freephone, no zone). +44 7700 900123, Ofcom's drama
range, is not valid.
"""

from __future__ import annotations

import pytest

from slotline.agent.dialer.contacts import (
    MAX_CELL_CHARS,
    MAX_ROWS,
    Contact,
    ContactList,
    ContactsError,
    Rejected,
    parse_csv,
    parse_rows,
)


def csv_of(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


def only_contact(result: ContactList) -> Contact:
    assert result.rejected == ()
    assert len(result.contacts) == 1
    return result.contacts[0]


def only_rejection(result: ContactList) -> Rejected:
    assert result.contacts == ()
    assert len(result.rejected) == 1
    return result.rejected[0]


@pytest.mark.parametrize(
    ("written", "region", "e164"),
    [
        ("(202) 456-1111", "US", "+12024561111"),
        ("202.456.1111", "US", "+12024561111"),
        ("202-456-1111", "US", "+12024561111"),
        ("2024561111", "US", "+12024561111"),
        ("1 202 456 1111", "US", "+12024561111"),
        ("+1 (202) 456-1111", "US", "+12024561111"),
        ("001 202 456 1111", "FR", "+12024561111"),
        ("011 44 7911 123456", "US", "+447911123456"),
        ("+44 7911 123456", "US", "+447911123456"),
        ("07911 123456", "GB", "+447911123456"),
        ("+49 30 12345678", "US", "+493012345678"),
        ("030 12345678", "DE", "+493012345678"),
    ],
)
def test_numbers_written_any_way_come_out_as_e164(written: str, region: str, e164: str) -> None:
    result = parse_csv(csv_of("phone", f'"{written}"'), default_region=region)
    assert only_contact(result).phone == e164


def test_a_national_number_from_another_country_needs_its_country_code() -> None:
    rejected = only_rejection(parse_csv(csv_of("phone", "07911 123456")))
    assert rejected.phone == "07911 123456"
    assert rejected.reason.startswith("not a valid US number")
    assert "country code" in rejected.reason


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("555-1234", "not a valid US number"),
        ("+1 202 456 11111", "not a valid phone number"),
        ("+44 7700 900123", "not a valid phone number"),  # the drama range is not allocated
        ("hello", "not a phone number"),
        ("+999 1234567", "unknown country code"),
        ("202-456-1111 ext. 12", "has an extension"),
        ("202-456-1111 x12", "has an extension"),
    ],
)
def test_numbers_that_cannot_be_dialled_are_rejected(written: str, reason: str) -> None:
    rejected = only_rejection(parse_csv(csv_of("phone,name", f"{written},Ann")))
    assert rejected.line == 2
    assert rejected.phone == written
    assert rejected.reason.startswith(reason)


def test_the_same_number_written_differently_is_a_duplicate_of_the_first_line() -> None:
    result = parse_csv(
        csv_of("phone,name", "(202) 456-1111,Ann", "+1 212 555 1234,Bob", "202.456.1111,Cy")
        + csv_of("+12024561111,Di")
    )
    assert [contact.line for contact in result.contacts] == [2, 3]
    assert result.rejected == (
        Rejected(4, "202.456.1111", "duplicate of line 2"),
        Rejected(5, "+12024561111", "duplicate of line 2"),
    )


def test_a_rejected_row_does_not_count_as_the_first_of_its_number() -> None:
    result = parse_csv(csv_of("phone,email", "2024561111,not-an-address", "2024561111,a@b.org"))
    assert [contact.line for contact in result.contacts] == [3]
    assert result.rejected == (Rejected(2, "2024561111", "not an email address"),)


def test_blank_rows_are_skipped_silently_but_still_count_as_lines() -> None:
    result = parse_csv(csv_of("phone,name", "", ",", " , ", "2024561111,Ann", ",Bob"))
    assert [contact.line for contact in result.contacts] == [5]
    assert result.rejected == (Rejected(6, "", "no phone number"),)


def test_contact_fields_and_derived_variables() -> None:
    contact = only_contact(
        parse_csv(csv_of("Name,Phone,Email", " Ann Lee , 202 456 1111 ,ann@example.com"))
    )
    assert contact == Contact(
        line=2,
        phone="+12024561111",
        name="Ann Lee",
        email="ann@example.com",
        timezones=("America/New_York",),
        variables={
            "user_name": "Ann Lee",
            "user_email": "ann@example.com",
            "user_phone": "+12024561111",
            "user_timezone": "America/New_York",
        },
    )
    with pytest.raises(TypeError):
        contact.variables["user_name"] = "Bob"  # type: ignore[index]


def test_absent_name_and_email_are_empty() -> None:
    contact = only_contact(parse_csv(csv_of("phone", "2024561111")))
    assert (contact.name, contact.email) == ("", "")
    assert contact.variables["user_name"] == contact.variables["user_email"] == ""


@pytest.mark.parametrize("email", ["ann", "ann@example", "ann@@example.com", "a b@example.com"])
def test_a_malformed_email_rejects_the_row(email: str) -> None:
    rejected = only_rejection(parse_csv(csv_of("phone,email", f"2024561111,{email}")))
    assert rejected.reason == "not an email address"


def test_the_timezone_column_overrides_the_number_and_is_spelled_canonically() -> None:
    result = parse_csv(
        csv_of("phone,timezone", "2024561111,america/chicago", "2125551234,Europe/Berlin")
    )
    assert [contact.timezones for contact in result.contacts] == [
        ("America/Chicago",),
        ("Europe/Berlin",),
    ]
    assert result.contacts[0].variables["user_timezone"] == "America/Chicago"


def test_an_unknown_time_zone_rejects_the_row() -> None:
    rejected = only_rejection(parse_csv(csv_of("phone,Time Zone", "2024561111,Mars/Base")))
    assert rejected.reason == "unknown time zone 'Mars/Base'"


def test_a_number_spanning_several_zones_keeps_them_all_sorted() -> None:
    contact = only_contact(parse_csv(csv_of("phone", "+1 208 555 0123")))
    assert contact.timezones == ("America/Boise", "America/Los_Angeles")
    assert contact.variables["user_timezone"] == "America/Boise"


@pytest.mark.parametrize("written", ["+1 800 642 7676", "+1 900 555 0123", "+1 500 555 0006"])
def test_a_placeless_number_takes_the_default_zone_from_its_plans_list(written: str) -> None:
    # phonenumbers lists these under all 42 NANP zones, whose calling hours never overlap.
    result = parse_csv(csv_of("phone", written), default_timezone="America/Chicago")
    assert only_contact(result).timezones == ("America/Chicago",)


def test_a_placeless_number_keeps_its_own_zones_when_the_default_is_not_among_them() -> None:
    result = parse_csv(csv_of("phone", "+1 800 642 7676"), default_timezone="Europe/Paris")
    zones = only_contact(result).timezones
    assert len(zones) == 42
    assert list(zones) == sorted(zones)
    assert {"America/New_York", "Pacific/Guam", "Pacific/Pago_Pago"} <= set(zones)
    assert "Etc/Unknown" not in zones


def test_a_number_without_a_zone_gets_the_default_zone() -> None:
    result = parse_csv(csv_of("phone", "+800 1234 5678"), default_timezone="Europe/Paris")
    assert only_contact(result).timezones == ("Europe/Paris",)


def test_other_columns_become_variables_with_normalised_names() -> None:
    data = csv_of(
        "phone,First Name,LastName,Prénom,2nd Line,  appointment-date ",
        "2024561111,Ann,Lee,Anne,Flat 2,2026-03-08",
    )
    variables = only_contact(parse_csv(data)).variables
    assert dict(variables) == {
        "first_name": "Ann",
        "last_name": "Lee",
        "prenom": "Anne",
        "nd_line": "Flat 2",
        "appointment_date": "2026-03-08",
        "user_name": "",
        "user_email": "",
        "user_phone": "+12024561111",
        "user_timezone": "America/New_York",
    }


def test_header_names_are_matched_case_insensitively() -> None:
    contact = only_contact(parse_csv(csv_of(" PHONE NUMBER ,NAME,E-mail", "2024561111,Ann,a@b.co")))
    assert (contact.phone, contact.name, contact.email) == ("+12024561111", "Ann", "a@b.co")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("phone,名前", "column 2"),
        ("phone,#", "column 2"),
        ("phone,First Name,first_name", "columns 2 and 3"),
        ("phone,user_name", "'user_name'"),
        ("phone,phone number", "two phone columns"),
    ],
)
def test_unusable_headers_make_the_file_unusable(header: str, message: str) -> None:
    with pytest.raises(ContactsError, match=message):
        parse_csv(csv_of(header, "2024561111,x,y"))


def test_a_missing_phone_column_names_the_columns_found() -> None:
    with pytest.raises(ContactsError, match="no phone column.*'name', 'email'"):
        parse_csv(csv_of("name,email", "Ann,a@b.co"))


def test_a_file_without_a_header_row_is_refused_without_echoing_the_number() -> None:
    with pytest.raises(ContactsError) as caught:
        parse_csv(csv_of("+1 202 456 1111,Ann", "+1 212 555 1234,Bob"))
    assert "first line must name columns" in str(caught.value)
    assert "456" not in str(caught.value)


def test_a_blank_trailing_column_is_ignored_but_a_value_under_no_header_is_not() -> None:
    result = parse_csv(csv_of("phone,name,", "2024561111,Ann,", "2125551234,Bob,oops"))
    assert [contact.line for contact in result.contacts] == [2]
    assert result.rejected == (
        Rejected(3, "2125551234", "a value in column 3, which has no header"),
    )


def test_extra_cells_beyond_the_header_reject_the_row_and_short_rows_are_padded() -> None:
    result = parse_csv(csv_of("phone,name,notes", "2024561111,Ann,x,y", "2125551234"))
    assert result.rejected == (
        Rejected(2, "2024561111", "a value in column 4, which has no header"),
    )
    assert result.contacts[0].variables["notes"] == ""


def test_a_cell_over_the_limit_rejects_the_row() -> None:
    rejected = only_rejection(
        parse_csv(csv_of("phone,notes", "2024561111," + "x" * (MAX_CELL_CHARS + 1)))
    )
    assert rejected.reason == f"the 'notes' cell is longer than {MAX_CELL_CHARS} characters"


def test_utf8_with_bom() -> None:
    data = b"\xef\xbb\xbf" + "phone,name\n2024561111,José\n".encode()
    contact = only_contact(parse_csv(data))
    assert contact.name == "José"
    assert contact.phone == "+12024561111"  # the BOM did not glue itself to the "phone" header


def test_semicolons_from_european_excel() -> None:
    data = "\ufeffTelefon;phone;Name;Notiz\r\n030;+49 30 12345678;Jörg;a, b\r\n".encode()
    contact = only_contact(parse_csv(data, default_region="DE", default_timezone="Europe/Berlin"))
    assert (contact.phone, contact.name) == ("+493012345678", "Jörg")
    assert contact.timezones == ("Europe/Berlin",)
    assert contact.variables["notiz"] == "a, b"


def test_tab_separated() -> None:
    contact = only_contact(parse_csv(b"phone\tname\n202 456 1111\tAnn Lee\n"))
    assert (contact.phone, contact.name) == ("+12024561111", "Ann Lee")


def test_a_quoted_semicolon_does_not_fool_a_comma_file() -> None:
    contact = only_contact(parse_csv(csv_of('phone,"notes; misc"', '2024561111,"a;b;c"')))
    assert contact.variables["notes_misc"] == "a;b;c"


def test_a_quoted_cell_over_several_lines_keeps_later_line_numbers_right() -> None:
    result = parse_csv(csv_of("phone,notes", '2024561111,"one', 'two"', "x,y"))
    assert result.contacts[0].variables["notes"] == "one\ntwo"
    assert result.rejected == (Rejected(4, "x", "not a phone number"),)


def test_latin1_bytes_are_refused_saying_where() -> None:
    data = "phone,name\n2024561111,José\n".encode("latin-1")
    with pytest.raises(ContactsError, match=r"UTF-8.*line 2, byte 26"):
        parse_csv(data)


def test_utf16_from_excel_unicode_text_gets_a_hint() -> None:
    with pytest.raises(ContactsError, match="UTF-16"):
        parse_csv("phone\n2024561111\n".encode("utf-16"))


def test_a_workbook_is_not_csv() -> None:
    with pytest.raises(ContactsError, match="CSV UTF-8"):
        parse_csv(b"PK\x03\x04\x14\x00\x06\x00")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b" \r\n\n", "empty"),
        (b"phone,name\n", "no contacts"),
        (b"phone,name\n\n,\n", "no contacts"),
    ],
)
def test_files_without_contacts_are_unusable(data: bytes, message: str) -> None:
    with pytest.raises(ContactsError, match=message):
        parse_csv(data)


def test_too_many_rows_make_the_file_unusable() -> None:
    with pytest.raises(ContactsError, match=str(MAX_ROWS)):
        parse_csv(b"phone\n" + b"2024561111\n" * (MAX_ROWS + 1))


def test_bad_defaults_are_programming_errors_not_file_errors() -> None:
    with pytest.raises(ValueError, match="region") as caught:
        parse_csv(csv_of("phone", "2024561111"), default_region="XX")
    assert not isinstance(caught.value, ContactsError)
    with pytest.raises(ValueError, match="time zone"):
        parse_rows([{"phone": "2024561111"}], default_timezone="Mars/Base")


def test_json_rows_stringify_values_and_number_lines_from_one() -> None:
    result = parse_rows(
        [
            {"Phone": 12024561111, "Name": "Ann", "visits": 3, "balance": 2.5, "vip": True},
            {"phone": "+1 415 555 2671", "name": None, "Time Zone": "America/Denver"},
        ]
    )
    first, second = result.contacts
    assert (first.line, first.phone, first.name) == (1, "+12024561111", "Ann")
    assert {key: first.variables[key] for key in ("visits", "balance", "vip")} == {
        "visits": "3",
        "balance": "2.5",
        "vip": "true",
    }
    assert (second.line, second.name, second.timezones) == (2, "", ("America/Denver",))


def test_json_items_that_are_not_objects_or_hold_nested_values_are_rejected() -> None:
    rows: list[object] = [
        "2024561111",
        {"phone": "2125551234", "tags": ["a"]},
        {"phone": "2024561111", "名前": "x"},
        {"phone": "4155552671"},
        {"phone": "(415) 555-2671"},
        {"phone": "", "name": None},
    ]
    result = parse_rows(rows)  # type: ignore[arg-type]
    assert [contact.line for contact in result.contacts] == [4]
    assert result.rejected == (
        Rejected(1, "", "item 0 is not an object"),
        Rejected(2, "2125551234", "the value of 'tags' is not text or a number"),
        Rejected(3, "2024561111", "column 2 ('名前') has no Latin letters to name a variable by"),
        Rejected(5, "(415) 555-2671", "duplicate of line 4"),
    )


@pytest.mark.parametrize("rows", [[], [{}], [{"phone": "", "name": " "}]])
def test_a_json_list_without_contacts_is_unusable(rows: list[dict[str, object]]) -> None:
    with pytest.raises(ContactsError, match="no contacts"):
        parse_rows(rows)
