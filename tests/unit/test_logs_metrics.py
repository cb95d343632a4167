from __future__ import annotations

import logging

import pytest

from slotline.agent.logs import MaskingFilter, mask
from slotline.agent.metrics import Metrics


def test_mask_emails_and_phones() -> None:
    assert mask("mail john.smith@example.com now") == "mail j***@example.com now"
    assert mask("from +15551234567 to (555) 123-4567") == "from ***67 to ***67"
    assert mask("call 555-123-4567 or 5551234567") == "call ***67 or ***67"
    for untouched in ("call_sid=CA0123 at 10:30", "serving on http://127.0.0.1:18080",
                      '"GET /healthz HTTP/1.1" 200 175', "on 2026-11-24 09:33:13,029"):
        assert mask(untouched) == untouched


def test_masking_filter_applies_to_args(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.masking")
    logger.addFilter(MaskingFilter())
    with caplog.at_level(logging.INFO, logger="test.masking"):
        logger.info("caller %s said %s", "+15551234567", "jane@doe.org")
    assert "+15551234567" not in caplog.text and "jane@doe.org" not in caplog.text
    assert "***67" in caplog.text and "j***@doe.org" in caplog.text


def test_metrics_render_prometheus_text() -> None:
    m = Metrics()
    m.active_calls = 2
    m.turn_latency.observe(0.42)
    m.turn_latency.observe(7.0)
    m.provider_errors.inc("stt.local")
    text = m.render()
    assert "slotline_active_calls 2" in text
    assert 'slotline_turn_latency_seconds_bucket{le="0.5"} 1' in text
    assert 'slotline_turn_latency_seconds_bucket{le="+Inf"} 2' in text
    assert "slotline_turn_latency_seconds_count 2" in text
    assert 'slotline_provider_errors_total{provider="stt.local"} 1' in text
