from __future__ import annotations

import logging

import pytest

from slotline.agent.call.calllog import Latency
from slotline.agent.logs import MaskingFilter, mask
from slotline.agent.server.metrics import Metrics


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
    m.call_started("inbound")
    m.call_started("outbound")
    m.call_started("inbound")
    m.call_ended("inbound", "completed")
    m.turn_latency.observe(0.42)
    m.turn_latency.observe(7.0)
    m.provider_errors.inc("stt.local")
    text = m.render()
    assert m.active_calls == 2
    assert "slotline_active_calls 2.0" in text
    assert 'slotline_calls_started_total{direction="inbound"} 2.0' in text
    assert 'slotline_calls_ended_total{direction="inbound",status="completed"} 1.0' in text
    assert 'slotline_turn_latency_seconds_bucket{le="0.5"} 1.0' in text
    assert 'slotline_turn_latency_seconds_bucket{le="+Inf"} 2.0' in text
    assert "slotline_turn_latency_seconds_count 2.0" in text
    assert 'slotline_provider_errors_total{provider="stt.local"} 1.0' in text
    assert "_created" not in text


def test_labelled_metrics_show_their_known_values_at_zero_from_the_start() -> None:
    text = Metrics().render()
    for line in ('slotline_calls_started_total{direction="outbound"} 0.0',
                 'slotline_calls_ended_total{direction="outbound",status="failed"} 0.0',
                 'slotline_bookings_total{result="slot_taken"} 0.0',
                 'slotline_turn_ends_total{reason="max_turn"} 0.0',
                 'slotline_protocol_errors_total{code="stream_refused"} 0.0',
                 'slotline_provider_errors_total{provider="stt-deepgram"} 0.0',
                 'slotline_flow_turns_total{llm="used"} 0.0',
                 'slotline_stage_seconds_count{stage="booking"} 0.0',
                 'slotline_stage_seconds_count{stage="llm_ttft"} 0.0'):
        assert line in text, line


def test_a_turn_is_observed_with_every_stage_the_call_log_records() -> None:
    m = Metrics()
    m.observe_turn(Latency(turn_latency_ms=900.0, endpoint_ms=500.0, stt_final_ms=80.0,
                           llm_ttft_ms=150.0, tts_ttfb_ms=120.0, server_overhead_ms=50.0))
    m.observe_stage("booking", 0.03)
    text = m.render()
    assert "slotline_turn_latency_seconds_count 1.0" in text
    assert 'slotline_turn_latency_seconds_bucket{le="0.75"} 0.0' in text
    assert 'slotline_turn_latency_seconds_bucket{le="1.0"} 1.0' in text
    for stage, upper in (("endpoint", "0.5"), ("stt_final", "0.1"), ("llm_ttft", "0.2"),
                         ("tts_ttfb", "0.2"), ("server_overhead", "0.05"),
                         ("booking", "0.05")):
        assert f'slotline_stage_seconds_count{{stage="{stage}"}} 1.0' in text, stage
        assert f'slotline_stage_seconds_bucket{{le="{upper}",stage="{stage}"}} 1.0' in text, stage


def test_single_process_metrics_have_the_process_collector() -> None:
    text = Metrics().render()
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total",
                 "process_open_fds", "process_start_time_seconds", "slotline_workers 1.0"):
        assert name in text, name
