"""``log.format: json``: one JSON object per record with the call's fields and the process id,
masked like the text format (message, call fields and traceback); worker lines name the worker.
Through ``logs.configure``, the same path ``slotline serve`` takes, onto the real stderr."""

from __future__ import annotations

import json
import logging
import os

import pytest

from slotline.agent import logs

CALL = "CA" + "0123456789abcdef" * 2
STREAM = "MZ" + "fedcba9876543210" * 2



def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_one_json_object_per_record_with_call_fields_and_pid(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("INFO", "json")
    log = logging.getLogger("slotline.agent.call.session")
    log.info("call started call_sid=%s stream_sid=%s", CALL, STREAM)
    log.info("entered node", extra={"call_sid": CALL, "node": "ask_time"})
    log.debug("below the level: not written")
    first, second = _lines(capsys)
    assert first["message"] == f"call started call_sid={CALL} stream_sid={STREAM}"
    assert (first["call_sid"], first["stream_sid"], first["pid"]) == (CALL, STREAM, os.getpid())
    assert (first["level"], first["logger"]) == ("INFO", "slotline.agent.call.session")
    assert str(first["ts"]).endswith("+00:00")
    assert (second["call_sid"], second["node"]) == (CALL, "ask_time")
    assert "stream_sid" not in second and "worker" not in second


def test_phone_numbers_and_emails_are_masked_everywhere(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("INFO", "json")
    log = logging.getLogger("slotline.agent.booking")
    email, phone = "john.smith@example.com", "+15551234567"  # data, not in the traceback's source
    try:
        raise ValueError(f"no slot for {email}\n{phone}")
    except ValueError:
        log.exception("booking failed call_sid=%s for %s", CALL, "+1 (555) 123-4567")
    (line,) = _lines(capsys)
    text = json.dumps(line)
    for secret in ("john.smith", "5551234567", "555) 123-4567", "123-4567"):
        assert secret not in text, secret
    assert line["message"] == f"booking failed call_sid={CALL} for ***67"
    assert "j***@example.com" in str(line["exc"]) and "***67" in str(line["exc"])
    assert "Traceback" in str(line["exc"]) and line["call_sid"] == CALL


def test_worker_lines_name_the_worker_in_both_formats(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("INFO", "json", worker="slotline-worker-1")
    logging.getLogger("slotline.agent.server.app").info("inbound call call_sid=%s", CALL)
    (line,) = _lines(capsys)
    assert (line["worker"], line["pid"]) == ("slotline-worker-1", os.getpid())
    logs.configure("INFO", "text", worker="slotline-worker-1")
    logging.getLogger("slotline.agent.server.app").info("inbound call from +15551234567")
    text = capsys.readouterr().err
    expected = (f" slotline-worker-1[{os.getpid()}] slotline.agent.server.app:"
                " inbound call from ***67")
    assert expected in text


def test_rate_limit_still_applies_in_json(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("INFO", "json")
    log = logging.getLogger("slotline.agent.call.session")
    for _ in range(50):
        log.warning("dropped a bad message call_sid=%s", CALL)
    logs.call_ended(CALL)
    lines = _lines(capsys)
    assert len(lines) == 6  # five, then one count
    assert lines[-1]["message"] == (
        f"suppressed 45 similar messages (code dropped a bad message call_sid=%s) call_sid={CALL}"
    )
