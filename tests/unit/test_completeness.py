"""Whether the words so far hold a whole answer: many phrasings per kind, as cloud and offline
recognisers write them (lower-case words, numerals, punctuation, fillers)."""

from __future__ import annotations

import pytest

from slotline.agent.flow.completeness import Completeness, classify, expected

COMPLETE: list[tuple[str, str]] = [
    ("", "wait sorry hold on"),  # a request to hold said alone (providers.llm.rules.hold)
    ("date", "hang on"),  # ... whatever the question (the particle of a verb, not "on the")
    ("date", "next tuesday"),
    ("date", "Tuesday."),
    ("date", "tomorrow please"),
    ("date", "uh, tomorrow"),
    ("date", "december twenty first"),
    ("date", "how about friday"),
    ("date", "the twelfth of march"),
    ("date", "March 12th"),
    ("date", "monday would be great"),
    ("time", "three p m"),
    ("time", "at two in the afternoon"),
    ("time", "half past ten in the morning"),
    ("date", "december first"),
    ("time", "ten in the morning"),
    ("time", "noon"),
    ("time_of_day", "in the afternoon"),
    ("time_of_day", "mornings are best"),
    ("yes_no", "yes"),
    ("yes_no", "Yeah, sure."),
    ("yes_no", "nope"),
    ("yes_no", "that's right"),
    ("yes_no", "correct"),
    ("yes_no", "yes it is"),
    ("yes_no", "uh yeah that is"),
    ("yes_no", "no that is wrong"),
    ("yes_no", "sounds good"),
    ("name", "john smith"),
    ("name", "my name is jane doe"),
    ("name", "it's Mary Ann O'Brien"),
    ("name", "this is sam taylor"),
    ("email", "john at gmail dot com"),
    ("email", "john dot smith at example dot com"),
    ("email", "my email is j o h n at yahoo dot co dot uk"),
    ("email", "john@gmail.com"),
    ("email", "it's jane underscore doe at outlook dot com thanks"),
    ("phone", "two one two five five five one two three four"),
    ("phone", "my number is 212-555-1234"),
    ("phone", "(212) 555 1234"),
    ("phone", "plus four four two zero seven nine four six zero nine five eight"),
    ("number", "four people"),
    ("number", "just two"),
    ("timezone", "pacific time"),
    ("timezone", "new york"),
    # a refusal or a closing answers any question
    ("email", "no thanks"),
    ("email", "No, thank you."),
    ("email", "I'd rather not"),
    ("phone", "i don't have one"),
    ("date", "never mind"),
    ("text", "no that's all thanks"),
    ("text", "nope"),
    ("", "that's it"),
    ("name", "skip it"),
]

INCOMPLETE: list[tuple[str, str]] = [
    ("email", "my email is john dot"),
    ("email", "my e-mail is"),
    ("email", "john at"),
    ("email", "john at gmail"),
    ("email", "john at gmail dot"),
    ("email", "j o h n"),
    ("email", "john dot smith"),
    ("email", "it's john underscore"),
    ("email", "john at gmail dot c"),
    ("date", "on the"),
    ("date", "next tuesday at"),
    ("date", "monday or"),
    ("date", "the"),
    ("date", "uh"),
    ("date", "um, let me see, uh"),
    ("time", "half past"),
    ("time", "quarter to"),
    ("time", "around"),
    ("time", "three and"),
    ("yes_no", "yes but"),
    ("yes_no", "uh"),
    ("name", "my name is"),
    ("name", "it's"),
    ("name", "john and"),
    ("phone", "five five five"),
    ("phone", "my number is"),
    ("phone", "five five five one two three"),
    ("phone", "555"),
    ("phone", "plus four four"),
    ("phone", "two one two dash"),
    ("phone", "oh seven seven double"),
    ("text", "i'd like to book a haircut and"),
    ("text", "i was wondering if"),
    ("", "my"),
    ("number", "for"),
]

UNKNOWN: list[tuple[str, str]] = [
    ("time", "okay go on"),
    ("date", "december twenty"),  # "... first"?
    ("time", "three oh"),  # "... five"
    ("time", "three forty"),  # "... five"
    ("time", "any time after three"),  # the extractor does not read it
    ("number", "twenty"),
    ("number", "two hundred"),
    ("phone", "five five five one two three four"),  # a local number, or more to come
    ("text", "i'd like to book a haircut"),
    ("text", "yes"),  # an open question: "yes, and ..." is common
    ("", "well"),
    ("choice", "the first one"),  # the options are the flow's
    ("text", ""),
]

# A value the extractors complete by a guess: the rest is most likely on its way.
PARTIAL: list[tuple[str, str]] = [
    ("time", "at three"),  # "... p m"
    ("time", "3:30"),
    ("time", "half past ten"),
    ("date", "the fifth"),  # "... of january"
    ("date", "12/1"),  # a numeric date: read by the region's order, a guess
    ("name", "john"),  # a surname may follow
    ("name", "smith"),
    ("name", "my name is kate"),
]

# A typed question, and words that answer nothing yet: the caller pauses mid-sentence.
UNANSWERED: list[tuple[str, str]] = [
    ("date", "i'd like to book"),
    ("date", "i would like an appointment"),
    ("date", "december"),  # the day may follow
    ("time", "what times do you have"),  # a question back: it waits longer for its reply
    ("yes_no", "what do you mean"),
    ("phone", "why do you need that"),
    ("name", "i'd like to book"),
    ("date", ""),  # a sound the recogniser made no words of
    ("yes_no", ""),
    ("choice", ""),  # "um" before picking one
]


@pytest.mark.parametrize(("kind", "text"), COMPLETE)
def test_complete(kind: str, text: str) -> None:
    assert classify(kind, text) == "complete"


@pytest.mark.parametrize(("kind", "text"), INCOMPLETE)
def test_incomplete(kind: str, text: str) -> None:
    assert classify(kind, text) == "incomplete"


@pytest.mark.parametrize(("kind", "text"), UNANSWERED)
def test_unanswered(kind: str, text: str) -> None:
    assert classify(kind, text) == "unanswered"


@pytest.mark.parametrize(("kind", "text"), PARTIAL)
def test_partial(kind: str, text: str) -> None:
    assert classify(kind, text) == "partial"


def test_a_phrase_the_question_listens_for_is_an_answer() -> None:
    listening = expected(("cancel my appointment", "reschedule", "stop calling me"))
    assert classify("name", "cancel my appointment", listening_for=listening) == "unknown"
    assert classify("phone", "please reschedule", listening_for=listening) == "unknown"
    assert classify("name", "cancel my appointment") == "unanswered"  # not listened for
    assert classify("name", "can my appointment", listening_for=listening) == "unanswered"
    assert expected(("reschedule",)) is expected(("reschedule",))  # built once per hint set


def test_a_day_a_time_or_a_yes_does_not_answer_the_name_question() -> None:
    # what a recogniser made of "my name is ... kate garcia" before the name
    assert classify("name", "my name okay") == "unanswered"
    assert classify("name", "monday") == "unanswered"
    assert classify("name", "at three") == "unknown"  # a number: a phone number may follow
    # a phone number read in groups at the name question waits as at the phone question
    assert classify("name", "my number is at my name five five five") == "incomplete"
    assert classify("name", "it's two one two five five five one two three four") == "complete"
    assert classify("phone", "five five five") == "incomplete"
    assert classify("date", "monday") == "complete"  # at its own question, a whole answer


def test_an_answer_to_another_question_is_not_unanswered() -> None:
    assert classify("time", "around in the afternoon") == "unknown"  # a part of the day
    assert classify("name", "my email is anna at example dot com") == "unknown"
    assert classify("yes_no", "no wednesday") == "complete"  # a correction at a read-back
    assert classify("date", "at three") == "unknown"  # a time to a date question: a number
    assert classify("date", "wednesday or") == "incomplete"  # unfinished wins
    assert classify("time", "hmm let me think") == "complete"  # a request to hold on


@pytest.mark.parametrize(("kind", "text"), UNKNOWN)
def test_unknown(kind: str, text: str) -> None:
    assert classify(kind, text) == "unknown"


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("oh seven seven oh oh nine oh oh one two three", "GB", "complete"),
        ("oh seven seven oh oh nine oh oh one two three", "US", "unknown"),
        ("oh seven seven oh oh", "GB", "incomplete"),
    ],
)
def test_phone_numbers_are_read_in_the_callers_region(
    text: str, region: str, expected: Completeness
) -> None:
    assert classify("phone", text, region=region) == expected


def test_an_answer_grows_from_incomplete_to_complete() -> None:
    said = ["my", "my email is", "my email is john", "my email is john dot",
            "my email is john dot smith at", "my email is john dot smith at example dot",
            "my email is john dot smith at example dot com"]
    assert [classify("email", s) for s in said] == ["incomplete"] * 6 + ["complete"]

