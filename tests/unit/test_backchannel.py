"""Backchannels over the agent (issue 12, lever 3): judged by what the words hold for the
question, not by a list of the words — a recogniser's garbage for "mm hmm" is forgiven, a
short answer, a request to hold and a question are not."""

from __future__ import annotations

import pytest

from slotline.agent.flow.backchannel import MAX_WORDS, is_backchannel


@pytest.mark.parametrize("text", [
    "uh huh", "Uh-huh.", "mhm", "mm hmm", "okay", "ok", "yeah", "Yeah, right.", "sure",
    "right", "got it thanks", "i see", "oh okay",
])
def test_acknowledgements_are_backchannels_at_any_question(text: str) -> None:
    for kind in ("", "name", "email", "phone", "date", "time", "yes_no", "choice", "number"):
        assert is_backchannel(text, kind=kind), kind


# What the emulated recogniser heard for "uh huh", "mm hmm", "okay" and "yeah" in the turn-end
# set's voices: no answer, no request, no question.
@pytest.mark.parametrize("text", [
    "the", "a m", "m", "m m a trim m", "i'm m a trim m", "mhm a trim", "i'm anna can m", "to",
    "my", "you", "of", "the to",
])
def test_words_nothing_can_use_are_backchannels(text: str) -> None:
    assert is_backchannel(text, kind="date")
    assert is_backchannel(text)


@pytest.mark.parametrize(("text", "kind"), [
    ("yes", ""), ("no", "date"), ("correct", ""), ("sounds good", "yes_no"),  # yes or no
    ("tuesday", ""), ("next tuesday", "name"), ("the fifth", "date"),  # a day
    ("two pm", ""), ("at three", "date"), ("five", ""), ("the second one", "choice"),
    ("john smith", "name"), ("lopez", "name"),  # what the question's own extractor reads
    ("anna at gmail dot com", "email"), ("at yahoo dot com", "email"),  # an address, or its end
])
def test_a_short_answer_is_a_turn(text: str, kind: str) -> None:
    assert not is_backchannel(text, kind=kind)


@pytest.mark.parametrize("text", [
    "wait", "stop", "hold on", "okay wait", "sorry one moment", "no stop",  # hold and stop
    "actually", "not that", "that's wrong", "change it",  # corrections
    "what", "what was that", "can you repeat that", "is it free", "huh what",  # questions
    "cancel my appointment", "talk to a person", "right now please", "bye",  # requests
])
def test_words_that_take_the_floor_are_a_turn(text: str) -> None:
    assert not is_backchannel(text)
    assert not is_backchannel(text, kind="date")


def test_a_long_utterance_is_a_turn_whatever_it_holds() -> None:
    assert is_backchannel(" ".join(["mm"] * MAX_WORDS))
    assert not is_backchannel(" ".join(["mm"] * (MAX_WORDS + 1)))
    assert not is_backchannel("the the the the the the")


def test_nothing_said_is_not_a_backchannel() -> None:
    assert not is_backchannel("")
    assert not is_backchannel(" . ")


def test_a_piece_of_an_address_is_a_turn_only_at_the_email_question() -> None:
    assert not is_backchannel("at yahoo dot com", kind="email")
    assert is_backchannel("at yahoo dot com", kind="date")  # "dot com" answers no day
