from __future__ import annotations

import pytest

from slotline.audio.pacing import OutboundPacer


def test_first_send_is_immediate_and_starts_the_playback_clock() -> None:
    pacer = OutboundPacer(lead_ms=300)
    assert pacer.delay_s(100.0) == 0.0
    assert pacer.queued_ms(100.0) == 0.0
    pacer.sent(100.0, 800)  # 100 ms of mu-law at 8 kHz
    assert pacer.queued_ms(100.0) == pytest.approx(100.0)
    assert pacer.queued_ms(100.04) == pytest.approx(60.0)
    assert pacer.queued_ms(100.2) == 0.0
    assert pacer.delay_s(100.0) == 0.0  # 100 ms queued < 300 ms lead


def test_sending_ahead_is_capped_at_lead() -> None:
    pacer = OutboundPacer(lead_ms=300)
    pacer.sent(0.0, 8000)  # one second at once
    assert pacer.queued_ms(0.0) == pytest.approx(1000.0)
    assert pacer.delay_s(0.0) == pytest.approx(0.7)
    assert pacer.delay_s(0.5) == pytest.approx(0.2)
    assert pacer.delay_s(0.7) == pytest.approx(0.0)
    assert pacer.delay_s(0.9) == 0.0


def test_queued_audio_plays_back_to_back() -> None:
    pacer = OutboundPacer(lead_ms=300)
    pacer.sent(0.0, 1600)  # 200 ms, playing 0.0 .. 0.2
    pacer.sent(0.1, 1600)  # queued behind it: 0.2 .. 0.4
    assert pacer.queued_ms(0.1) == pytest.approx(300.0)
    assert pacer.queued_ms(0.3) == pytest.approx(100.0)


def test_after_an_underrun_playback_restarts_at_send_time() -> None:
    pacer = OutboundPacer(lead_ms=300)
    pacer.sent(0.0, 160)  # plays 0.00 .. 0.02
    pacer.sent(5.0, 160)  # buffer long empty: plays 5.00 .. 5.02, not from 0.02
    assert pacer.queued_ms(5.0) == pytest.approx(20.0)
    assert pacer.queued_ms(5.02) == pytest.approx(0.0)


def test_a_paced_sender_never_gets_more_than_lead_plus_one_chunk_ahead() -> None:
    pacer = OutboundPacer(lead_ms=300)
    now_s = 0.0
    worst_ms = 0.0
    for _ in range(500):  # 10 s of 20 ms frames sent as fast as the pacer allows
        now_s += pacer.delay_s(now_s)
        pacer.sent(now_s, 160)
        worst_ms = max(worst_ms, pacer.queued_ms(now_s))
    assert worst_ms == pytest.approx(320.0)
    # It kept real time: 10 s of audio, the last 320 ms still queued.
    assert now_s == pytest.approx(10.0 - 0.32)


def test_reset_forgets_the_queue() -> None:
    pacer = OutboundPacer(lead_ms=300)
    pacer.sent(0.0, 8000)
    pacer.reset()
    assert pacer.queued_ms(0.1) == 0.0
    assert pacer.delay_s(0.1) == 0.0
    pacer.sent(0.1, 800)
    assert pacer.queued_ms(0.1) == pytest.approx(100.0)


def test_zero_lead_means_send_only_into_an_empty_buffer() -> None:
    pacer = OutboundPacer(lead_ms=0)
    pacer.sent(0.0, 160)
    assert pacer.delay_s(0.0) == pytest.approx(0.02)
    assert pacer.delay_s(0.02) == 0.0


def test_other_sample_rates_scale_durations() -> None:
    pacer = OutboundPacer(lead_ms=300, sample_rate_hz=16000)
    pacer.sent(0.0, 1600)
    assert pacer.queued_ms(0.0) == pytest.approx(100.0)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="lead_ms"):
        OutboundPacer(lead_ms=-1)
    with pytest.raises(ValueError, match="sample_rate_hz"):
        OutboundPacer(sample_rate_hz=0)
    with pytest.raises(ValueError, match="n_bytes"):
        OutboundPacer().sent(0.0, -5)
