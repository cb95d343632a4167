from __future__ import annotations

import pytest

from slotline.agent.call.frames import utterance_ended
from slotline.agent.call.responder import Listen
from slotline.agent.call.turns import (
    BargeIn,
    Patience,
    SpeechDropped,
    SpeechStarted,
    TurnConfig,
    TurnDetector,
    TurnEnded,
    TurnEvent,
    TurnState,
    patience_for,
    transition_table,
)
from slotline.providers.base import SpeechHints
from slotline.providers.stt import deepgram_wire as dw

CFG = TurnConfig(min_speech_ms=120, end_silence_ms=600, bargein_min_speech_ms=300,
                 max_turn_ms=5_000)


def feed(det: TurnDetector, pattern: str, start_ms: int = 0) -> list[tuple[int, TurnEvent]]:
    """'#' = voiced frame, '.' = silent frame; returns (frame time, event) pairs."""
    out = []
    for i, ch in enumerate(pattern):
        t = start_ms + i * 20
        ev = det.frame(ch == "#", t)
        if ev is not None:
            out.append((t, ev))
    return out


def test_turn_starts_after_min_speech_and_ends_after_silence() -> None:
    det = TurnDetector(CFG)
    events = feed(det, "." * 5 + "#" * 20 + "." * 40)
    assert [type(e) for _, e in events] == [SpeechStarted, TurnEnded]
    started, ended = events[0][1], events[1][1]
    assert isinstance(started, SpeechStarted) and started.first_voiced_ms == 100
    assert isinstance(ended, TurnEnded)
    assert ended.last_voiced_ms == 100 + 19 * 20
    # decided exactly end_silence_ms after the end of the last voiced frame
    assert ended.at_ms - (ended.last_voiced_ms + 20) == 600
    assert det.state is TurnState.LISTENING


def test_short_click_never_starts_a_turn() -> None:
    det = TurnDetector(CFG)
    assert feed(det, "##" + "." * 60 + "#" + "." * 60) == []


def test_gap_inside_onset_is_tolerated_but_long_gap_resets() -> None:
    det = TurnDetector(CFG)
    # 4 voiced, 2 silent (40 ms < onset gap), 2 voiced -> 120 ms of speech: a turn starts
    assert [type(e) for _, e in feed(det, "####..##")] == [SpeechStarted]
    det2 = TurnDetector(CFG)
    # 4 voiced, 5 silent (100 ms > onset gap) resets, 2 voiced is not enough
    assert feed(det2, "####.....##") == []


def test_pause_shorter_than_end_silence_keeps_the_turn() -> None:
    det = TurnDetector(CFG)
    events = feed(det, "#" * 10 + "." * 25 + "#" * 10 + "." * 31)
    assert [type(e) for _, e in events] == [SpeechStarted, TurnEnded]


def test_barge_in_only_while_agent_speaks_and_after_min_length() -> None:
    det = TurnDetector(CFG)
    det.agent_speaking = True
    events = feed(det, "#" * 20 + "." * 31)
    kinds = [type(e) for _, e in events]
    assert kinds == [SpeechStarted, BargeIn, TurnEnded]
    t_barge, barge = events[1]
    assert isinstance(barge, BargeIn) and barge.at_ms - barge.first_voiced_ms == 300


def test_backchannel_while_agent_speaks_is_dropped() -> None:
    det = TurnDetector(CFG)
    det.agent_speaking = True
    events = feed(det, "#" * 10 + "." * 31)  # 200 ms "uh-huh"
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechDropped]
    assert det.state is TurnState.LISTENING


def test_max_turn_forces_an_end() -> None:
    det = TurnDetector(CFG)
    events = feed(det, "#" * 300)
    ended = [e for _, e in events if isinstance(e, TurnEnded)]
    assert len(ended) == 1 and ended[0].forced


def test_table_lists_every_transition() -> None:
    rows = transition_table()
    assert ("listening", "speech reached min_speech_ms", "speaking") in rows
    assert ("speaking", "recogniser said final and silence reached its floor", "listening") in rows
    assert len(rows) == 6


def ended(events: list[tuple[int, TurnEvent]]) -> TurnEnded:
    found = [e for _, e in events if isinstance(e, TurnEnded)]
    assert len(found) == 1
    return found[0]


def silence_before_end(event: TurnEnded) -> int:
    return event.at_ms - (event.last_voiced_ms + 20)


@pytest.mark.parametrize(("patience", "silence_ms"), [("short", 400), ("normal", 600),
                                                      ("long", 1200)])
def test_patience_sets_the_silence_that_ends_the_turn(patience: Patience, silence_ms: int) -> None:
    det = TurnDetector(CFG)
    det.patience = patience
    event = ended(feed(det, "#" * 20 + "." * 70))
    assert silence_before_end(event) == silence_ms
    assert event.patience == patience and event.reason == "silence" and not event.forced


def test_long_patience_keeps_a_pause_between_spelled_groups_in_the_turn() -> None:
    det = TurnDetector(CFG)
    det.patience = "long"
    # "j o h n" ... 1 s pause ... "at example dot com": one turn, not two
    events = feed(det, "#" * 15 + "." * 50 + "#" * 20 + "." * 61)
    assert [type(e) for _, e in events] == [SpeechStarted, TurnEnded]


def test_stt_final_ends_the_turn_once_the_floor_is_reached() -> None:
    det = TurnDetector(CFG)
    feed(det, "#" * 20 + "." * 5)  # 100 ms of silence: below the 200 ms floor
    assert det.stt_final()
    events = feed(det, "." * 30, start_ms=25 * 20)
    event = ended(events)
    assert event.reason == "stt_final"
    assert silence_before_end(event) == CFG.stt_final_min_silence_ms  # not a frame earlier


def test_stt_final_after_the_floor_ends_the_turn_at_the_next_frame() -> None:
    det = TurnDetector(CFG)
    feed(det, "#" * 20 + "." * 15)  # 300 ms of silence
    assert det.stt_final()
    events = feed(det, ".", start_ms=35 * 20)
    assert ended(events).reason == "stt_final"
    assert silence_before_end(ended(events)) == 320


def test_stt_final_is_ignored_while_the_caller_is_voiced_or_not_in_a_turn() -> None:
    det = TurnDetector(CFG)
    assert not det.stt_final()  # no turn
    feed(det, "#" * 20)
    assert not det.stt_final()  # a late result about a pause already talked through
    assert ended(feed(det, "." * 40, start_ms=400)).reason == "silence"


def test_speech_after_stt_final_cancels_it() -> None:
    det = TurnDetector(CFG)
    feed(det, "#" * 20 + "." * 5)
    assert det.stt_final()
    events = feed(det, "#" * 5 + "." * 40, start_ms=25 * 20)  # the caller went on
    event = ended(events)
    assert event.reason == "silence" and silence_before_end(event) == 600


def test_stt_final_floor_is_higher_for_long_patience() -> None:
    det = TurnDetector(CFG)
    det.patience = "long"
    feed(det, "#" * 20 + "." * 15)  # 300 ms: a pause between spelled letters
    assert det.stt_final()
    event = ended(feed(det, "." * 80, start_ms=35 * 20))
    assert event.reason == "stt_final" and silence_before_end(event) == CFG.long_silence_ms // 2


def test_stt_final_never_cuts_speech_over_the_agent_before_it_is_a_barge_in() -> None:
    det = TurnDetector(CFG)
    det.agent_speaking = True
    feed(det, "#" * 10 + "." * 12)  # 200 ms "uh-huh", 240 ms of silence
    assert det.stt_final()
    events = feed(det, "." * 25, start_ms=22 * 20)
    assert [type(e) for _, e in events] == [SpeechDropped]  # a backchannel, not a turn


def test_max_turn_reason() -> None:
    det = TurnDetector(CFG)
    event = ended(feed(det, "#" * 300))
    assert event.reason == "max_turn" and event.forced


def test_patience_for_extractor_kinds_and_listen() -> None:
    assert patience_for("yes_no") == "short" and patience_for("choice") == "short"
    assert patience_for("email") == "long" and patience_for("phone") == "long"
    assert patience_for("date") == "normal" and patience_for("name") == "normal"
    hints = SpeechHints(phrases=("yes", "no"))
    assert Listen(hints).patience == "normal"
    assert Listen(hints).expecting("yes_no") == Listen(hints, "short")
    assert Listen(hints).expecting("email").hints is hints


def test_stt_floor_never_exceeds_the_profile_silence() -> None:
    cfg = TurnConfig(short_silence_ms=150, stt_final_min_silence_ms=200)
    assert cfg.stt_floor_ms("short") == 150
    assert cfg.stt_floor_ms("normal") == 200
    assert cfg.stt_floor_ms("long") == 600


def results(transcript: str, *, speech_final: bool) -> dw.Results:
    return dw.Results(channel_index=(0, 1), start_s=0.0, duration_s=1.0, is_final=True,
                      speech_final=speech_final, from_finalize=False, transcript=transcript,
                      confidence=0.9, words=(), request_id=None)


def test_which_recogniser_messages_end_an_utterance() -> None:
    assert utterance_ended(results("yes", speech_final=True))
    assert not utterance_ended(results("yes", speech_final=False))  # is_final only: more may come
    assert not utterance_ended(results(" ", speech_final=True))  # a pause after no words
    assert utterance_ended(dw.UtteranceEnd(channel=(0, 1), last_word_end_s=1.2))
    assert not utterance_ended(dw.SpeechStarted(channel=(0,), timestamp_s=0.5))
