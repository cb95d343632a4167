"""Limits on what one call's media stream can make the server do (issue 17, defects 3 and 4):
keypresses only from Twilio's alphabet, timestamps that cannot jump, audio no faster than real
time, turn lengths measured in audio, and per-call caps on the record and the inbox."""

from __future__ import annotations

import pytest

from slotline.agent.call.calllog import MAX_DTMF, MAX_ERROR_CHARS, MAX_TURNS, CallRecord, Turn
from slotline.agent.call.inbox import MAX_PENDING, MAX_PENDING_DTMF, CallInbox, TurnDone
from slotline.agent.call.media_socket import ErrorBudget
from slotline.agent.call.responder import DtmfPressed
from slotline.agent.call.turns import TurnConfig, TurnDetector, TurnEnded
from slotline.providers.errors import ProtocolError
from slotline.providers.telephony import twilio_media as tw

SID = "MZ" + "a" * 32
CALL = "CA" + "b" * 32
ACCOUNT = "AC" + "c" * 32
FRAME = b"\xff" * 160


def _code(stream: tw.InboundStream, data: str, now_ms: int | None = None) -> str:
    with pytest.raises(ProtocolError) as caught:
        stream.receive(data, now_ms)
    return caught.value.code


def _started(now_ms: int) -> tw.InboundStream:
    stream = tw.InboundStream()
    stream.receive(tw.encode_start(SID, ACCOUNT, CALL), now_ms)
    return stream


def _media(timestamp_ms: int, seq: int = 2) -> str:
    return tw.encode_inbound_media(SID, seq, seq, timestamp_ms, FRAME)


# --- DTMF -------------------------------------------------------------------------------------


@pytest.mark.parametrize("digit", ["x", "12", "", " 1", "1" * 65_536, "١", "a", "E"])
def test_a_digit_outside_twilios_keypad_is_a_protocol_error(digit: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        tw.parse_inbound(tw.encode_dtmf(SID, 3, digit))
    assert caught.value.code == "bad_dtmf_digit"
    assert len(str(caught.value)) < 100  # a 64 KB "digit" is not quoted whole in logs


def test_every_key_of_the_keypad_parses() -> None:
    for digit in "0123456789*#ABCD":
        message = tw.parse_inbound(tw.encode_dtmf(SID, 3, digit))
        assert isinstance(message, tw.Dtmf) and message.digit == digit


# --- media time -------------------------------------------------------------------------------


def test_media_timestamps_never_go_backwards() -> None:
    stream = _started(0)
    assert isinstance(stream.receive(_media(1_000), 1_000), tw.Media)
    assert _code(stream, _media(980), 1_020) == "timestamp_backwards"
    assert isinstance(stream.receive(_media(1_000), 1_040), tw.Media)  # equal is fine
    assert isinstance(stream.receive(_media(1_020), 1_060), tw.Media)


def test_media_timestamps_may_not_run_ahead_of_the_receivers_clock() -> None:
    stream = _started(50_000)
    assert isinstance(stream.receive(_media(0), 50_000), tw.Media)
    # one minute of stream time claimed 20 ms after start
    assert _code(stream, _media(60_000), 50_020) == "timestamp_ahead"
    # refused without a trace: the next genuine frame is not "backwards"
    assert isinstance(stream.receive(_media(20), 50_020), tw.Media)
    # behind the clock is normal (a network stall, then a burst)
    assert isinstance(stream.receive(_media(40), 90_000), tw.Media)
    edge = tw.MAX_AHEAD_MS + 40_000
    assert isinstance(stream.receive(_media(edge), 90_000), tw.Media)


def test_audio_faster_than_real_time_is_refused_until_the_clock_catches_up() -> None:
    stream = _started(0)
    frames_in_slack = tw.MAX_AHEAD_MS // 20
    for n in range(frames_in_slack + 1):  # all at once, timestamps standing still
        assert isinstance(stream.receive(_media(0, n + 2), 0), tw.Media)
    assert _code(stream, _media(0), 0) == "media_too_fast"
    assert _code(stream, _media(0), 10) == "media_too_fast"
    assert isinstance(stream.receive(_media(0), 20), tw.Media)  # 20 ms later: one more frame


def test_without_a_clock_only_the_order_of_timestamps_is_checked() -> None:
    stream = tw.InboundStream()
    stream.receive(tw.encode_start(SID, ACCOUNT, CALL))
    assert isinstance(stream.receive(_media(10_000_000)), tw.Media)
    assert _code(stream, _media(0)) == "timestamp_backwards"


# --- turn length ------------------------------------------------------------------------------

CFG = TurnConfig(min_speech_ms=120, end_silence_ms=600, bargein_min_speech_ms=300,
                 max_turn_ms=5_000)


def test_jumping_timestamps_do_not_end_a_turn() -> None:
    det = TurnDetector(CFG)
    events = []
    for n in range(200):  # 4 s of speech, each 10th frame a minute "later"
        event = det.frame(True, n * 20 + (n // 10) * 60_000)
        if event is not None:
            events.append(event)
    assert not any(isinstance(e, TurnEnded) for e in events)


def test_a_turn_still_ends_after_max_turn_ms_of_audio_whatever_the_timestamps() -> None:
    det = TurnDetector(CFG)
    ended = [e for e in (det.frame(True, 0) for _ in range(300)) if isinstance(e, TurnEnded)]
    assert len(ended) == 1 and ended[0].reason == "max_turn"
    det = TurnDetector(CFG)
    frames = [det.frame(True, 0) for _ in range(CFG.max_turn_ms // 20)]
    assert not any(isinstance(e, TurnEnded) for e in frames)
    assert isinstance(det.frame(True, 0), TurnEnded)  # the frame past max_turn_ms of audio


# --- per-call caps ----------------------------------------------------------------------------


def test_the_call_record_keeps_the_first_keypresses_and_counts_the_rest() -> None:
    record = CallRecord(call_sid=CALL, stream_sid=SID, flow="demo")
    for _ in range(MAX_DTMF + 44):
        record.add_dtmf("5")
    assert len(record.dtmf) == MAX_DTMF and record.dtmf_dropped == 44
    assert record.as_dict()["dtmf_dropped"] == 44


def test_the_call_record_keeps_the_first_turns_and_counts_the_rest() -> None:
    record = CallRecord(call_sid=CALL, stream_sid=SID, flow="demo")
    for n in range(MAX_TURNS + 3):
        record.add_turn(Turn(role="caller", text=str(n)))
    assert len(record.turns) == MAX_TURNS and record.turns_dropped == 3
    assert record.turns[-1].text == str(MAX_TURNS - 1)
    assert record.as_dict()["turns_dropped"] == 3


def test_an_error_message_is_cut_to_its_cap() -> None:
    record = CallRecord(call_sid=CALL, stream_sid=SID, flow="demo")
    record.add_error("twilio", "x" * 70_000)
    assert len(record.errors[0]["message"]) == MAX_ERROR_CHARS


async def test_the_inbox_refuses_keypresses_piling_up_but_still_takes_turns() -> None:
    inbox = CallInbox()
    assert all(inbox.put(DtmfPressed("1")) for _ in range(MAX_PENDING_DTMF))
    assert not inbox.put(DtmfPressed("2"))
    assert inbox.put(TurnDone(1.0, 1.5))
    assert await inbox.get() == DtmfPressed("1")
    assert inbox.put(DtmfPressed("3"))  # one was taken: room for one more
    assert not inbox.put(DtmfPressed("4"))
    while inbox.put(TurnDone(2.0, 2.5)):
        pass
    taken = [await inbox.get() for _ in range(MAX_PENDING)]
    assert sum(isinstance(item, DtmfPressed) for item in taken) == MAX_PENDING_DTMF
    assert taken[MAX_PENDING_DTMF - 1] == TurnDone(1.0, 1.5)


def test_the_error_budget_is_spent_by_a_burst_not_by_a_trickle() -> None:
    burst = ErrorBudget(limit=3, window_s=60.0)
    assert [burst.spend(t) for t in (0.0, 0.1, 0.2, 0.3)] == [False, False, False, True]
    trickle = ErrorBudget(limit=3, window_s=60.0)
    assert not any(trickle.spend(t * 30.0) for t in range(20))  # one every 30 s forever
