"""Issue 17 defect 2: whole log records are masked — tracebacks and stack text included — and
database errors never carry their statement's bound parameters into the log."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from slotline.agent.logs import MaskingFilter, configure
from slotline.agent.store import open_store
from slotline.agent.store.db import Database
from slotline.agent.store.schema import bookings

PHONE = "+15551234567"
EMAIL = "jane.quartermaine@example.org"
NAME = "Quartermaine"



def _booking_row() -> dict[str, object]:
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    return {
        "id": "DUPLICATE1",
        "action": "book",
        "calendar": "main",
        "provider": "local",
        "provider_booking_id": "DUPLICATE1",
        "start_utc": now,
        "end_utc": now.replace(hour=10),
        "status": "confirmed",
        "attendee": {"name": f"Jane {NAME}", "phone": PHONE, "email": EMAIL},
        "phone_key": PHONE,
        "call_sid": "CA0001",
        "fields": {"note": f"Jane {NAME} said call me on {PHONE}"},
        "idempotency_key": "key-1",
        "created_at": now,
        "updated_at": now,
    }


async def test_integrity_error_reaches_the_log_without_its_parameters(
    store_url: str, root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("INFO")  # its handler writes to sys.stderr, which capsys holds now
    async with open_store(store_url):
        pass  # creates the schema
    db = Database.connect(store_url)  # the same engine creation open_store uses
    try:
        async with db.write() as conn:
            await conn.execute(insert(bookings).values(_booking_row()))
        with pytest.raises(IntegrityError) as caught:
            async with db.write() as conn:
                await conn.execute(insert(bookings).values(_booking_row()))
    finally:
        await db.close()
    logging.getLogger("test.store").error(
        "could not store booking call_sid=%s", "CA0001", exc_info=caught.value
    )
    err = capsys.readouterr().err
    assert "IntegrityError" in err and "could not store booking call_sid=CA0001" in err
    assert "INSERT INTO bookings" in err  # the statement is useful and stays
    for secret in (NAME, PHONE, EMAIL, "15551234567"):
        assert secret not in err


def test_traceback_text_is_masked(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("INFO")
    try:
        raise ValueError(f"no slot for {EMAIL} on {PHONE}")
    except ValueError:
        logging.getLogger("test.responder").exception("reply failed call_sid=%s", "CA0002")
    err = capsys.readouterr().err
    assert "ValueError: no slot for j***@example.org on ***67" in err
    assert PHONE not in err and EMAIL not in err


def test_stack_info_is_masked(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("INFO")
    logging.getLogger("test.stack").warning("held", stack_info=True)  # for +15551234567
    err = capsys.readouterr().err
    assert "Stack (most recent call last)" in err and "***67" in err
    assert PHONE not in err


def test_masking_filter_masks_the_record_for_every_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A filter on a logger rewrites the record itself, so a handler that knows nothing of
    masking (pytest's here) still gets the masked traceback."""
    logger = logging.getLogger("test.masking.exc")
    masking = MaskingFilter()
    logger.addFilter(masking)
    try:
        with caplog.at_level(logging.INFO, logger="test.masking.exc"):
            try:
                raise RuntimeError(f"store down while saving {PHONE}")
            except RuntimeError:
                logger.exception("could not store call call_sid=%s", "CA0003")
    finally:
        logger.removeFilter(masking)
    assert "RuntimeError: store down while saving ***67" in caplog.text
    assert PHONE not in caplog.text
