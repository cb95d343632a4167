from __future__ import annotations

from typing import get_args

import pytest

from slotline.agent.call.responder import Listen
from slotline.agent.call.turns import (
    BargeIn,
    EndReason,
    Patience,
    Paused,
    Rule,
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
from slotline.agent.flow.completeness import Completeness
from slotline.agent.server.metrics import TURN_END_REASONS
from slotline.providers.base import SpeechHints

CFG = TurnConfig(min_speech_ms=120, end_silence_ms=600, bargein_min_speech_ms=300,
                 max_turn_ms=5_000)


def feed(det: TurnDetector, pattern: str, start_ms: int = 0) -> list[tuple[int, TurnEvent]]:
    """'#' = voiced and loud frame, '~' = voiced but not loud (the VAD's hang-over, a quiet
    tail), '*' = voiced and loud without a voice's pitch (noise, an "s"), '.' = silent frame;
    returns (frame time, event) pairs."""
    out = []
    for i, ch in enumerate(pattern):
        t = start_ms + i * 20
        ev = det.frame(ch != ".", t, ch in "#*", ch != "*")
        if ev is not None:
            out.append((t, ev))
    return out


def kinds(events: list[tuple[int, TurnEvent]]) -> list[type]:
    return [type(e) for _, e in events]


def test_turn_starts_after_min_speech_and_ends_after_silence() -> None:
    det = TurnDetector(CFG)
    events = feed(det, "." * 5 + "#" * 20 + "." * 40)
    assert kinds(events) == [SpeechStarted, Paused, TurnEnded]  # Paused at speculate_ms
    started, ended = events[0][1], events[2][1]
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
    assert kinds(events) == [SpeechStarted, Paused, Paused, TurnEnded]  # one Paused a pause


def test_barge_in_only_while_agent_speaks_and_after_min_length() -> None:
    det = TurnDetector(CFG)
    det.agent_speaking = True
    events = feed(det, "#" * 20 + "." * 31)
    assert kinds(events) == [SpeechStarted, BargeIn, Paused, TurnEnded]
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
    assert len(rows) == len(Rule)  # every rule fires in exactly one state


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
    assert kinds(events) == [SpeechStarted, Paused, Paused, TurnEnded]


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
    assert Listen(hints).expecting("yes_no") == Listen(hints, "short", "yes_no")
    assert Listen(hints).expecting("email").hints is hints
    assert Listen(hints).expecting("phone", region="GB") == Listen(hints, "long", "phone", "GB")


def test_stt_floor_never_exceeds_the_profile_silence() -> None:
    cfg = TurnConfig(short_silence_ms=150, stt_final_min_silence_ms=200)
    assert cfg.stt_floor_ms("short") == 150
    assert cfg.stt_floor_ms("normal") == 200
    assert cfg.stt_floor_ms("long") == 600


# ---- loud frames: silence counts from the words, not the VAD's hang-over ---------------------


def test_silence_counts_from_the_last_loud_frame_not_the_vads_hang_over() -> None:
    det = TurnDetector(CFG)
    event = ended(feed(det, "#" * 20 + "~" * 5 + "." * 40))
    assert event.last_loud_ms == 19 * 20 and event.last_voiced_ms == 24 * 20
    assert event.at_ms - (event.last_loud_ms + 20) == 600  # the 100 ms hang-over did not count


def test_a_quiet_line_without_a_loud_frame_ends_its_turn_on_the_vad() -> None:
    det = TurnDetector(CFG)
    event = ended(feed(det, "~" * 20 + "." * 40))
    assert silence_before_end(event) == 600 and event.last_loud_ms == event.last_voiced_ms


def test_quiet_voiced_frames_between_words_do_not_hold_the_turn_open() -> None:
    det = TurnDetector(CFG)
    # words, then 700 ms the VAD calls voiced but far below the words (breath, line hum)
    events = feed(det, "#" * 20 + "~" * 35)
    assert ended(events).reason == "silence" and ended(events).last_loud_ms == 19 * 20


def test_a_quiet_tail_keeps_stt_final_a_soft_word_after_a_gap_cancels_it() -> None:
    det = TurnDetector(CFG)
    feed(det, "#" * 20 + "~" * 5)  # the VAD's hang-over straight after the words
    assert det.stt_final()
    event = ended(feed(det, "." * 10, start_ms=25 * 20))
    assert event.reason == "stt_final" and event.at_ms - (event.last_loud_ms + 20) == 200
    det = TurnDetector(CFG)
    feed(det, "#" * 20 + "." * 5)
    assert det.stt_final()
    # voiced again after an unvoiced gap, however softly ("yes ... please"): the caller went on
    assert not feed(det, "~" * 5, start_ms=25 * 20)
    assert det.state is TurnState.SPEAKING


def test_a_soft_word_after_a_pause_restarts_the_silence() -> None:
    det = TurnDetector(CFG)
    # "yes" loud, a 100 ms gap, "please" voiced but far below "yes", then silence
    events = feed(det, "#" * 15 + "." * 5 + "~" * 15 + "." * 40)
    end = ended(events)
    assert end.reason == "silence" and end.last_loud_ms == 34 * 20  # please's last frame


# ---- barge-in: confident, near-contiguous speech ---------------------------------------------

BARGE = TurnConfig(min_speech_ms=60, end_silence_ms=600, bargein_min_speech_ms=80)


def test_barge_in_after_80_ms_of_confident_speech() -> None:
    det = TurnDetector(BARGE)
    det.agent_speaking = True
    events = feed(det, "#" * 10)
    barge = [e for _, e in events if isinstance(e, BargeIn)]
    assert len(barge) == 1 and barge[0].at_ms - barge[0].first_voiced_ms == 80


def test_over_the_agent_the_barge_in_threshold_starts_the_turn_before_min_speech() -> None:
    # the shipped shape: a turn needs 120 ms of speech, an interruption 80 ms of confident
    # speech; over the agent the interruption must not wait for the longer onset
    det = TurnDetector(TurnConfig(min_speech_ms=120, bargein_min_speech_ms=80))
    det.agent_speaking = True
    events = feed(det, "#" * 10)
    barge = [e for _, e in events if isinstance(e, BargeIn)]
    assert kinds(events)[:2] == [SpeechStarted, BargeIn]
    assert barge[0].at_ms - barge[0].first_voiced_ms == 100  # onset at 80 ms, barge-in next


def test_without_the_agent_talking_min_speech_still_starts_a_turn() -> None:
    det = TurnDetector(TurnConfig(min_speech_ms=120, bargein_min_speech_ms=80))
    feed(det, "#" * 5)  # 100 ms of loud speech: an interruption's worth, but nobody to cut
    assert det.state is TurnState.LISTENING


def test_a_cough_is_not_a_barge_in() -> None:
    det = TurnDetector(BARGE)
    det.agent_speaking = True
    # one loud 60 ms burst and its 200 ms quiet tail: voiced 260 ms, confident only 60 ms
    events = feed(det, "###" + "~" * 10 + "." * 40)
    assert kinds(events) == [SpeechStarted, SpeechDropped]


def test_loud_noise_without_pitch_is_not_a_barge_in() -> None:
    det = TurnDetector(BARGE)
    det.agent_speaking = True
    # 300 ms of loud, voiced-to-the-VAD crackle: confident enough, but no voice in it
    events = feed(det, "*" * 15 + "." * 40)
    assert kinds(events) == [SpeechStarted, SpeechDropped]


def test_an_interruption_starting_unvoiced_barges_in_at_its_second_pitched_frame() -> None:
    det = TurnDetector(BARGE)
    det.agent_speaking = True
    events = feed(det, "*" * 6 + "#" * 5)  # "s..." then "orry"
    (barge,) = [e for _, e in events if isinstance(e, BargeIn)]
    assert barge.at_ms - barge.first_voiced_ms == (6 + 2) * 20  # 80 ms confident, 40 pitched


def test_short_bursts_apart_do_not_add_up_to_a_barge_in() -> None:
    det = TurnDetector(BARGE)
    det.agent_speaking = True
    # 60 ms loud, 80 ms quiet, 60 ms loud, 80 ms quiet, 60 ms loud: 180 ms loud, never 80 ms
    # near-contiguous
    events = feed(det, "###~~~~###....###" + "." * 40)
    assert BargeIn not in kinds(events)


def test_a_stop_consonant_inside_speech_does_not_restart_the_count() -> None:
    det = TurnDetector(BARGE)
    det.agent_speaking = True
    events = feed(det, "##..##")  # 40 ms loud, a 40 ms gap, 40 ms loud
    assert BargeIn in kinds(events)


def test_voiced_frames_still_start_a_turn_without_being_loud() -> None:
    det = TurnDetector(CFG)
    feed(det, "#" + "~" * 6)  # 140 ms voiced: reaches min_speech_ms
    assert det.state is TurnState.SPEAKING


# ---- the pause: speculative finalize, once per pause -----------------------------------------


def test_paused_once_per_pause_at_speculate_ms() -> None:
    det = TurnDetector(CFG)
    events = feed(det, "#" * 10 + "." * 15 + "#" * 5 + "." * 40)
    pauses = [(t, e) for t, e in events if isinstance(e, Paused)]
    assert len(pauses) == 2
    (t1, p1), (t2, p2) = pauses
    assert p1.at_ms - (p1.last_loud_ms + 20) == CFG.speculate_ms
    assert p2.last_loud_ms == 29 * 20 and p2.first_voiced_ms == 0


def test_no_pause_while_the_agent_holds_the_floor_until_a_barge_in() -> None:
    det = TurnDetector(CFG)
    det.agent_speaking = True
    assert Paused not in kinds(feed(det, "#" * 10 + "." * 12))  # an "uh-huh"
    det2 = TurnDetector(CFG)
    det2.agent_speaking = True
    assert Paused in kinds(feed(det2, "#" * 20 + "." * 12))  # an interruption: the caller's turn


# ---- the words: complete answers end early, unfinished ones wait long ------------------------


def test_complete_final_words_end_the_turn_after_complete_silence_ms() -> None:
    det = TurnDetector(CFG)
    feed(det, "#" * 20 + "." * 2)
    assert det.heard("complete", final=True)
    event = ended(feed(det, "." * 20, start_ms=22 * 20))
    assert event.reason == "complete_answer"
    assert silence_before_end(event) == CFG.complete_silence_ms


def test_complete_words_not_final_keep_the_usual_silence() -> None:
    det = TurnDetector(CFG)
    feed(det, "#" * 20 + "." * 2)
    det.heard("complete", final=False)  # an interim: may lag the caller by a word
    event = ended(feed(det, "." * 40, start_ms=22 * 20))
    assert event.reason == "silence" and silence_before_end(event) == 600


def test_final_words_heard_while_the_caller_speaks_are_not_taken_as_final() -> None:
    det = TurnDetector(CFG)
    feed(det, "#" * 20)
    det.heard("complete", final=True)  # settled words that speech has since followed
    assert ended(feed(det, "." * 40, start_ms=400)).reason == "silence"


def test_the_caller_going_on_after_complete_words_waits_for_new_words() -> None:
    det = TurnDetector(CFG)
    feed(det, "#" * 20 + "." * 3)
    det.heard("complete", final=True)  # "next tuesday" ...
    events = feed(det, "#" * 10 + "." * 40, start_ms=23 * 20)  # ... "at three"
    assert ended(events).reason == "silence"


def test_incomplete_words_wait_the_long_patience() -> None:
    det = TurnDetector(CFG)
    feed(det, "#" * 20 + "." * 2)
    assert det.heard("incomplete", final=True)  # "my e-mail is john dot"
    assert det.stt_final()  # the endpointer fires between spelled words: floor is long too
    event = ended(feed(det, "." * 70, start_ms=22 * 20))
    assert event.reason == "stt_final" and silence_before_end(event) == CFG.long_silence_ms // 2
    det2 = TurnDetector(CFG)
    feed(det2, "#" * 20 + "." * 2)
    det2.heard("incomplete", final=False)
    event2 = ended(feed(det2, "." * 70, start_ms=22 * 20))
    assert event2.reason == "silence" and silence_before_end(event2) == CFG.long_silence_ms
    assert event2.patience == "long"


def test_unknown_words_end_the_turn_once_final_as_the_endpointer_would() -> None:
    det = TurnDetector(CFG)
    feed(det, "#" * 20 + "." * 2)
    det.heard("unknown", final=False)  # an interim: nothing changes
    event = ended(feed(det, "." * 40, start_ms=22 * 20))
    assert event.reason == "silence" and silence_before_end(event) == 600
    feed(det, "#" * 20 + "." * 2, start_ms=70 * 20)
    det.heard("unknown", final=True)  # the flush at the pause answered: the words are in
    event = ended(feed(det, "." * 40, start_ms=92 * 20))
    assert event.reason == "stt_final"
    assert silence_before_end(event) == CFG.final_words_silence_ms


def test_at_a_judged_question_unknown_final_words_wait_the_silence() -> None:
    det = TurnDetector(CFG)
    det.open_question = False  # "what day?": "it's peter" may yet get its surname
    feed(det, "#" * 20 + "." * 2)
    det.heard("unknown", final=True)
    event = ended(feed(det, "." * 40, start_ms=22 * 20))
    assert event.reason == "silence" and silence_before_end(event) == 600


# "what day suits you?": "i'd like to book" (a pause) "next tuesday" is unanswered at the pause;
# "what's your name?": "my name is kate" (a pause) "garcia" is partial
@pytest.mark.parametrize(("words", "cfg"), [
    ("unanswered", TurnConfig(unanswered_silence_ms=1000, partial_silence_ms=800)),
    ("partial", TurnConfig(unanswered_silence_ms=800, partial_silence_ms=1000)),
])
def test_final_words_without_the_whole_answer_wait_their_own_silence(
    words: Completeness, cfg: TurnConfig
) -> None:
    det = TurnDetector(cfg)
    det.open_question = False
    feed(det, "#" * 20 + "." * 2)
    det.heard(words, final=True)
    assert det.stt_final()  # an endpointer heard the sentence stop: not the whole answer yet
    assert not any(isinstance(e, TurnEnded) for _, e in feed(det, "." * 45, start_ms=22 * 20))
    event = ended(feed(det, "." * 10, start_ms=67 * 20))
    assert event.reason == "silence"
    assert silence_before_end(event) == 1000 > cfg.end_silence_ms


def test_words_owed_about_the_pause_hold_the_silence_until_they_come() -> None:
    pending = [True]
    det = TurnDetector(CFG, words_pending=lambda: pending[0])
    det.open_question = False  # "what's your name?": "kate" (a pause) "lewis"
    feed(det, "#" * 20 + "." * 2)
    # the 600 ms are up, but the recogniser's words about the pause are still on their way
    assert not any(isinstance(e, TurnEnded) for _, e in feed(det, "." * 33, start_ms=22 * 20))
    pending[0] = False
    det.heard("partial", final=True)  # "kate": half an answer
    assert not any(isinstance(e, TurnEnded) for _, e in feed(det, "." * 14, start_ms=55 * 20))
    event = ended(feed(det, "." * 2, start_ms=69 * 20))
    assert silence_before_end(event) == CFG.partial_silence_ms


def test_words_owed_wait_no_longer_than_words_wait_ms() -> None:
    det = TurnDetector(CFG, words_pending=lambda: True)  # a decode that never answers
    event = ended(feed(det, "#" * 20 + "." * 60))
    assert event.reason == "silence"
    assert silence_before_end(event) == CFG.end_silence_ms + CFG.words_wait_ms


def test_words_already_final_are_not_waited_for_again() -> None:
    asked: list[int] = []
    det = TurnDetector(CFG, words_pending=lambda: asked.append(1) or True)
    det.open_question = False  # judged words: "unknown" keeps the question's silence
    feed(det, "#" * 20 + "." * 2)
    det.heard("unknown", final=True)
    event = ended(feed(det, "." * 40, start_ms=22 * 20))
    assert silence_before_end(event) == CFG.end_silence_ms and asked == []


def test_unanswered_words_not_final_keep_the_usual_silence() -> None:
    det = TurnDetector(CFG)
    det.open_question = False
    feed(det, "#" * 20 + "." * 2)
    det.heard("unanswered", final=False)  # an interim may lag the answer just said
    event = ended(feed(det, "." * 40, start_ms=22 * 20))
    assert silence_before_end(event) == CFG.end_silence_ms


def test_the_unanswered_silence_never_shortens_a_longer_patience() -> None:
    det = TurnDetector(TurnConfig(long_silence_ms=1200, unanswered_silence_ms=1000))
    det.open_question, det.patience = False, "long"
    feed(det, "#" * 20 + "." * 2)
    det.heard("unanswered", final=True)
    event = ended(feed(det, "." * 70, start_ms=22 * 20))
    assert silence_before_end(event) == 1200


def test_final_words_wait_at_least_the_long_floor_for_spelled_answers() -> None:
    det = TurnDetector(CFG)
    det.patience = "long"
    feed(det, "#" * 20 + "." * 2)
    det.heard("unknown", final=True)
    event = ended(feed(det, "." * 80, start_ms=22 * 20))
    assert event.reason == "stt_final"
    assert silence_before_end(event) == CFG.stt_floor_ms("long") > CFG.final_words_silence_ms


def test_words_outside_a_turn_are_ignored_and_forgotten_at_its_end() -> None:
    det = TurnDetector(CFG)
    assert not det.heard("complete", final=True)  # a late result of the turn before
    feed(det, "#" * 20 + "." * 2)
    det.heard("incomplete", final=False)
    ended(feed(det, "." * 70, start_ms=22 * 20))
    assert det.words == "unknown"  # the next turn starts with nothing heard


def test_complete_words_never_end_speech_over_the_agent_before_a_barge_in() -> None:
    det = TurnDetector(CFG)
    det.agent_speaking = True
    feed(det, "#" * 10 + "." * 2)  # "yes" over the agent
    det.heard("complete", final=True)
    events = feed(det, "." * 35, start_ms=12 * 20)
    assert kinds(events) == [SpeechDropped]


# ---- the end-of-turn model -------------------------------------------------------------------


def paused(events: list[tuple[int, TurnEvent]]) -> Paused:
    found = [e for _, e in events if isinstance(e, Paused)]
    assert found
    return found[-1]


def test_model_says_done_during_the_pause_ends_the_turn() -> None:
    det = TurnDetector(CFG)
    pause = paused(feed(det, "#" * 20 + "." * 10))
    assert not det.model_said(0.2, pause)  # below the threshold: the silence decides
    assert det.model_said(0.9, pause)
    event = ended(feed(det, ".", start_ms=30 * 20))
    assert event.reason == "model_end" and silence_before_end(event) == 220


def test_a_verdict_about_a_pause_the_caller_talked_through_is_ignored() -> None:
    det = TurnDetector(CFG)
    pause = paused(feed(det, "#" * 20 + "." * 10))
    feed(det, "#" * 5 + "." * 3, start_ms=30 * 20)  # went on, and is silent again
    assert not det.model_said(0.99, pause)
    assert ended(feed(det, "." * 40, start_ms=38 * 20)).reason == "silence"


def test_the_model_cannot_end_a_turn_whose_words_are_unfinished() -> None:
    det = TurnDetector(CFG)
    pause = paused(feed(det, "#" * 20 + "." * 10))
    det.heard("incomplete", final=True)  # "... and"
    assert det.model_said(0.9, pause)
    event = ended(feed(det, "." * 70, start_ms=30 * 20))
    assert event.reason == "silence" and event.patience == "long"


def test_every_end_reason_is_a_metrics_label() -> None:
    assert set(get_args(EndReason)) == set(TURN_END_REASONS)


def test_unfinished_words_over_the_agent_do_not_delay_dropping_a_backchannel() -> None:
    det = TurnDetector(CFG)
    det.agent_speaking = True
    feed(det, "#" * 10 + "." * 2)
    det.heard("incomplete", final=False)  # "uh"
    events = feed(det, "." * 31, start_ms=12 * 20)
    assert kinds(events) == [SpeechDropped] and events[0][0] == (10 + 30 - 1) * 20
