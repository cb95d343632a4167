"""DeepgramTurn, the sans-I/O rules of a turn on a Deepgram stream: pauses (Finalize sent early),
finalize, and the vendor-neutral events. Offsets are bytes of 8 kHz mu-law (8 per ms)."""

from __future__ import annotations

from slotline.providers.base import Heard, SpeechEnded, SttEvent, Transcript
from slotline.providers.stt import deepgram_wire as dw
from slotline.providers.stt.deepgram_turn import DeepgramTurn

MS = 8  # bytes per ms


def result(text: str, *, final: bool = True, speech_final: bool = False,
           from_finalize: bool = False, confidence: float = 0.9) -> dw.Results:
    return dw.Results(channel_index=(0, 1), start_s=0.0, duration_s=1.0, is_final=final,
                      speech_final=speech_final, from_finalize=from_finalize, transcript=text,
                      confidence=confidence, words=(), request_id=None)


def send_due(turn: DeepgramTurn, sent_to: int) -> list[int]:
    """What the stream's sender does with ``sent_to`` bytes on the wire: every Finalize due."""
    placed = []
    while (at := turn.due()) is not None and at <= sent_to:
        turn.sent()
        placed.append(at)
    return placed


def answer(turn: DeepgramTurn, text: str, end: int, voiced_end: int
           ) -> tuple[list[SttEvent], Transcript | None]:
    return turn.on_results(result(text, from_finalize=True), end, voiced_end)


def test_pause_then_finalize_with_no_new_speech_returns_at_once() -> None:
    turn = DeepgramTurn()
    assert turn.pause(end=1000 * MS, voiced_end=800 * MS)
    assert send_due(turn, 1000 * MS) == [1000 * MS]
    events, done = answer(turn, "next tuesday", 1000 * MS, 800 * MS)
    assert events == [Heard("next tuesday", final=True)] and done is None
    # silence goes on (unvoiced frames) and the turn ends: no second Finalize
    ready = turn.finalize(end=1400 * MS, voiced_end=800 * MS)
    assert ready == Transcript("next tuesday", True, 0.9)
    assert turn.due() is None and not turn.finalizing


def test_results_about_the_ended_turns_silence_stay_out_of_the_next_turn() -> None:
    turn = DeepgramTurn()
    turn.pause(1000 * MS, 800 * MS)
    send_due(turn, 1000 * MS)
    answer(turn, "yes", 1000 * MS, 800 * MS)
    assert turn.finalize(1400 * MS, 800 * MS) == Transcript("yes", True, 0.9)
    # Deepgram heard something in the unvoiced audio before the turn's end
    events, _ = turn.on_results(result("um", speech_final=True), 1300 * MS, 800 * MS)
    assert events == [] and turn.text() == ""
    events, _ = turn.on_results(result("no", final=False), 1700 * MS, 1650 * MS)
    assert events == [Heard("no", final=False)]


def test_finalize_while_the_pause_is_in_flight_waits_for_its_answer() -> None:
    turn = DeepgramTurn()
    turn.pause(1000 * MS, 800 * MS)
    send_due(turn, 1000 * MS)
    assert turn.finalize(1100 * MS, 800 * MS) is None  # answer still on its way
    assert turn.due() is None  # nothing more to send
    events, done = answer(turn, "yes", 1000 * MS, 800 * MS)
    assert events == [] and done == Transcript("yes", True, 0.9)
    assert turn.ends_at == 1100 * MS


def test_pause_then_more_speech_makes_finalize_join_kept_words_and_the_rest() -> None:
    turn = DeepgramTurn()
    turn.pause(1000 * MS, 800 * MS)
    send_due(turn, 1000 * MS)
    events, _ = answer(turn, "my email is john", 1000 * MS, 800 * MS)
    assert events == [Heard("my email is john", final=True)]
    # the caller goes on: interims of the new speech extend the kept words, not final
    events, _ = turn.on_results(result("at example", final=False), 1500 * MS, 1500 * MS)
    assert events == [Heard("my email is john at example", final=False)]
    assert turn.finalize(2000 * MS, 1800 * MS) is None
    assert send_due(turn, 2000 * MS) == [2000 * MS]
    events, done = answer(turn, "at example dot com", 2000 * MS, 1800 * MS)
    assert events == []  # no Heard while finalize waits: its return value is the text
    assert done is not None and done.text == "my email is john at example dot com"


def test_a_pause_answer_that_speech_has_followed_is_not_final() -> None:
    turn = DeepgramTurn()
    turn.pause(1000 * MS, 800 * MS)
    send_due(turn, 1000 * MS)
    events, _ = answer(turn, "on the", 1000 * MS, voiced_end=1100 * MS)  # caller went on
    assert events == [Heard("on the", final=False)]


def test_pause_with_no_words_is_heard_as_empty_and_final() -> None:
    turn = DeepgramTurn()
    turn.pause(600 * MS, 400 * MS)  # a cough: voiced, no words
    send_due(turn, 600 * MS)
    events, _ = answer(turn, "", 600 * MS, 400 * MS)
    assert events == [Heard("", final=True)]
    assert turn.finalize(900 * MS, 400 * MS) == Transcript("", True, None)


def test_a_pause_answer_covers_the_audio_before_its_finalize_whatever_span_it_names() -> None:
    turn = DeepgramTurn()
    turn.pause(1000 * MS, 700 * MS)  # "um": voiced, and the recogniser makes no words of it
    send_due(turn, 1000 * MS)
    events, _ = answer(turn, "", 0, 700 * MS)  # an empty result names no span of audio
    assert events == [Heard("", final=True)]


def test_words_are_owed_from_a_pause_until_its_answer_and_not_once_finalize_waits() -> None:
    turn = DeepgramTurn()
    assert not turn.owes_words()
    turn.pause(600 * MS, 400 * MS)
    assert turn.owes_words()  # due, not even sent yet: the flush is on its way
    send_due(turn, 600 * MS)
    answer(turn, "kate", 600 * MS, 400 * MS)
    assert not turn.owes_words()
    turn.pause(1200 * MS, 1000 * MS)
    turn.finalize(1300 * MS, 1000 * MS)
    assert not turn.owes_words()  # the turn has ended: its words go to finalize()


def test_a_pause_answer_is_heard_even_when_it_repeats_the_last_words() -> None:
    turn = DeepgramTurn()
    events, _ = turn.on_results(result(""), 300 * MS, 0)  # Deepgram's results about silence
    assert events == [Heard("", final=True)]
    turn.pause(900 * MS, 700 * MS)  # "um": voiced, no words
    send_due(turn, 900 * MS)
    events, _ = answer(turn, "", 900 * MS, 700 * MS)
    assert events == [Heard("", final=True)]  # the pause's answer: the turn detector needs it


def test_pause_without_speech_since_the_turn_began_sends_nothing() -> None:
    turn = DeepgramTurn()
    assert not turn.pause(600 * MS, voiced_end=0)
    assert turn.due() is None
    # a turn that never paused asks Deepgram, as before pauses existed
    assert turn.finalize(900 * MS, 0) is None and turn.due() == 900 * MS


def test_second_pause_over_the_same_silence_sends_nothing_and_after_speech_sends_again() -> None:
    turn = DeepgramTurn()
    assert turn.pause(1000 * MS, 800 * MS)
    assert not turn.pause(1100 * MS, 800 * MS)  # same silence
    send_due(turn, 1100 * MS)
    answer(turn, "the first", 1000 * MS, 800 * MS)
    assert turn.pause(2000 * MS, 1800 * MS)  # spoke again, paused again
    assert send_due(turn, 2000 * MS) == [2000 * MS]
    events, _ = answer(turn, "of december", 2000 * MS, 1800 * MS)
    assert events == [Heard("the first of december", final=True)]
    assert turn.finalize(2300 * MS, 1800 * MS) == Transcript("the first of december", True, 0.9)


def test_two_pauses_in_flight_are_answered_in_order() -> None:
    turn = DeepgramTurn()
    turn.pause(1000 * MS, 800 * MS)
    send_due(turn, 1000 * MS)
    turn.pause(1500 * MS, 1300 * MS)  # spoke and paused before the first answer came
    send_due(turn, 1500 * MS)
    events, _ = answer(turn, "three", 1000 * MS, 1300 * MS)
    assert events == [Heard("three", final=False)]  # one Finalize still open
    events, _ = answer(turn, "p m", 1500 * MS, 1300 * MS)
    assert events == [Heard("three p m", final=True)]


def test_pause_is_ignored_while_finalize_waits() -> None:
    turn = DeepgramTurn()
    turn.finalize(900 * MS, 500 * MS)
    assert not turn.pause(950 * MS, 940 * MS)
    assert send_due(turn, 1000 * MS) == [900 * MS]


def test_unrequested_from_finalize_keeps_its_words() -> None:
    turn = DeepgramTurn()
    events, done = answer(turn, "hello", 500 * MS, 400 * MS)
    assert done is None and turn.text() == "hello"
    assert events == [Heard("hello", final=True)]


def test_reconnect_sends_unanswered_finalizes_again() -> None:
    turn = DeepgramTurn()
    turn.pause(1000 * MS, 800 * MS)
    send_due(turn, 1000 * MS)
    turn.reconnected()
    assert turn.due() == 1000 * MS  # replayed audio reaches it again
    assert send_due(turn, 1000 * MS) == [1000 * MS]


def test_timed_out_turn_keeps_the_interim_and_drops_its_finalizes() -> None:
    turn = DeepgramTurn()
    turn.on_results(result("my name", final=True), 500 * MS, 500 * MS)
    turn.on_results(result("is john", final=False), 900 * MS, 900 * MS)
    turn.finalize(1000 * MS, 900 * MS)
    send_due(turn, 1000 * MS)
    assert turn.timed_out().text == "my name is john"
    assert turn.due() is None and turn.text() == ""


def test_vendor_endpoints_are_speech_ended_but_our_flushes_are_not() -> None:
    turn = DeepgramTurn()
    events, _ = turn.on_results(result("yes", speech_final=True), 700 * MS, 400 * MS)
    assert events == [Heard("yes", final=True), SpeechEnded()]
    turn.pause(800 * MS, 750 * MS)
    send_due(turn, 800 * MS)
    events, _ = turn.on_results(
        result("please", speech_final=True, from_finalize=True), 800 * MS, 750 * MS)
    assert events == [Heard("yes please", final=True)]  # our own flush: no SpeechEnded
    events, _ = turn.on_results(result(" ", speech_final=True), 1200 * MS, 750 * MS)
    assert events == []  # a pause after no words: neither new words nor an end
    assert turn.on_utterance_end(last_word_end=750 * MS) == [SpeechEnded()]


def test_late_utterance_end_of_the_previous_turn_is_not_an_end_of_this_one() -> None:
    turn = DeepgramTurn()
    turn.on_results(result("yes", speech_final=True), 700 * MS, 400 * MS)
    assert turn.finalize(1000 * MS, 400 * MS) is None
    send_due(turn, 1000 * MS)
    answer(turn, "", 1000 * MS, 400 * MS)
    # the caller starts the next turn; Deepgram's UtteranceEnd about "yes" arrives now
    assert turn.on_utterance_end(last_word_end=400 * MS) == []
    events, _ = turn.on_results(result("no", speech_final=True), 1600 * MS, 1400 * MS)
    assert SpeechEnded() in events
