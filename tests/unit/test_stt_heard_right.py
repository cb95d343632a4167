"""The offline recogniser and the extractors ask again rather than read back a guess: answers
the grammars were not written for, synthesised with flite voices other than the bundled
recordings' (a small slice of bench/heard_right.py, which has the whole set and the counts)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from bench.heard_right import OFFERS, Case, run

FLITE = shutil.which("flite")

# (voice, case): each was read back wrong before the recogniser checked half-agreeing grammar
# answers and the extractors refused names and times made of a recogniser's filler words
FIXED = [
    ("kal", Case("time", "any time after three")),  # was "any time half past three"
    ("slt", Case("time", "any time after three")),
    ("kal", Case("name", "my name is anna kowalczyk")),  # was "my name is emma doe"
    ("rms", Case("name", "my name is anna kowalczyk")),
    ("awb", Case("name", "yes it's oliver featherstonehaugh")),  # was "Olivia"
    ("kal", Case("time", "whenever you have something")),  # was 1 pm ("one number you have")
    ("kal", Case("read_back", "actually my name is anna kowalczyk")),  # was booked ("good")
    # ... and these before language-model answers were judged by the decoder's posterior of
    # the word they rest on (bench/heard_right.py: 8 -> 0 wrong of 125)
    ("kal", Case("name", "sure the name is miguel")),  # was "Mitchell" (posterior 0.12)
    ("awb", Case("name", "sure the name is miguel")),  # was "Big Aol" (a name is any word)
    ("rms", Case("name", "yes it's oliver featherstonehaugh")),  # was "Robert"
    ("slt", Case("name", "my name is anna kowalczyk")),  # was "Anna Carol Kate"
    ("slt", Case("date", "i was hoping to come in on wednesday if that's possible")),  # Monday
    ("slt", Case("time", "whenever you have something")),  # was 1 am ("one a m the a have")
    # ... and these (bench/heard_right.py --set more: 4 -> 2 wrong of 145) before a word
    # outside the name list where a name goes was always doubted, and an answer word the
    # grammar pass heard as another value of its kind needed posterior 0.8
    ("kal", Case("name", "my name is sarah connor")),  # was "Sarah Com" ("com" 0.85)
    ("slt", Case("date", "sometime later this month")),  # was the 9th ("ninth" 0.71; "eighth")
    # ... and this (--set fresh) before a grammar answer's listed name that the language model
    # pass did not hear was doubted
    ("rms", Case("name", "my name is peter okafor")),  # was "Peter Baker" (LM: "okay for")
]
# A refusal at the booking's read-back, misheard as a yes by one pass: each was booked
# (bench/heard_right.py --set heldout and consent) before the read-back's grammar held refusals
# said as sentences and a yes was given only when no pass heard a refusal
# (``SpeechHints.consent``). Asked again or read as the no it is; never booked.
REFUSALS = [
    ("kal16", Case("read_back", "that won't work for me")),  # was "dot org works for me"
    ("awb", Case("read_back", "that won't work for me")),  # was "that book works for me"
    ("rms", Case("read_back", "that won't work for me")),  # was "that want to works for me"
    ("slt", Case("read_back", "that doesn't work for me")),  # was "yeah that works"
    ("awb", Case("read_back", "could you make it the afternoon instead")),  # "good you make ..."
    # (--set consent4) heard as "good we dry three o'clock": a yes, so 10 am was booked, until a
    # yes naming another hour than the one read back was asked again
    ("rms", Case("read_back", "could we try three o'clock")),
]
# ... and these are still understood
KEPT = [
    ("awb", Case("read_back", "yes that's the one")),  # lost to a wider yes/no grammar once
    ("slt", Case("name", "my name is john smith")),
    ("rms", Case("time", "three p m")),
    ("awb", Case("choice", "the first one", OFFERS)),
    ("kal16", Case("read_back", "no wednesday")),
    ("kal", Case("read_back", "yes please")),
    # a language-model answer whose other words are guesses ("i want paul can dot com in on
    # wednesday"): only the words of the kind asked for are judged
    ("kal", Case("date", "i was hoping to come in on wednesday if that's possible")),
    ("kal16", Case("read_back", "can we do thursday instead")),
    # language-model answers the decoder is sure of
    ("kal", Case("read_back", "no later")),  # "no" 1.0
    ("kal", Case("name", "this is mary jones")),
]
# Read right now: the grammar forced a listed name over the one the language model heard
# ("my name is robert brown"); when the passes disagree on the answer word, the language
# model's answer is taken (and judged as above).
NOW_RIGHT = [
    ("kal", Case("name", "my name is robert johnson")),
]


@pytest.fixture(scope="module")
def heard(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    assert FLITE is not None, "flite is needed (make test installs it: apt-get install flite)"
    folder = tmp_path_factory.mktemp("heard")
    results = {}
    for voice, case in [*FIXED, *KEPT, *NOW_RIGHT, *REFUSALS]:
        [one] = asyncio.run(run((voice,), (case,), Path(folder)))
        results[(voice, case.said)] = "booked" if one.booked_unasked else one.outcome
    return results


@pytest.mark.parametrize(("voice", "case"), REFUSALS)
def test_a_refusal_at_the_read_back_is_never_booked(
    heard: dict[tuple[str, str], str], voice: str, case: Case
) -> None:
    assert heard[(voice, case.said)] in ("re-asked", "correct")


@pytest.mark.parametrize(("voice", "case"), FIXED)
def test_an_answer_not_understood_is_asked_again(
    heard: dict[tuple[str, str], str], voice: str, case: Case
) -> None:
    assert heard[(voice, case.said)] == "re-asked"


@pytest.mark.parametrize(("voice", "case"), KEPT)
def test_an_answer_said_as_expected_is_still_read(
    heard: dict[tuple[str, str], str], voice: str, case: Case
) -> None:
    assert heard[(voice, case.said)] == "correct"


@pytest.mark.parametrize(("voice", "case"), NOW_RIGHT)
def test_the_language_model_answer_is_taken_when_the_passes_disagree_on_it(
    heard: dict[tuple[str, str], str], voice: str, case: Case
) -> None:
    assert heard[(voice, case.said)] == "correct"
