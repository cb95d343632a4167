"""Streamed model text cut into clauses (agent.flow.clauses): where a clause is certain to end,
whatever pieces the text arrives in."""

from __future__ import annotations

import re

import pytest

from slotline.agent.flow.clauses import ClauseSplitter


def split(
    text: str, pieces: str = "tokens", min_words: int = 4, first_min_words: int | None = None
) -> list[str]:
    """The clauses of ``text`` fed as model tokens (words with their leading space), one
    character at a time, or all at once; then flushed. Every clause needs ``min_words``
    before a comma unless ``first_min_words`` is given."""
    splitter = ClauseSplitter(min_words, first_min_words)
    if pieces == "tokens":
        chunks = re.findall(r"\s*\S+\s*$|\s*\S+", text)
    elif pieces == "chars":
        chunks = list(text)
    else:
        chunks = [text]
    found: list[str] = []
    for chunk in chunks:
        found += splitter.feed(chunk)
    return found + splitter.flush()


CASES = [
    ("Hello there. How are you?", ["Hello there.", "How are you?"]),
    ("Great! See you then.", ["Great!", "See you then."]),
    ("Really?! Wow.", ["Really?!", "Wow."]),
    ("Sure, I can help.", ["Sure, I can help."]),  # too few words before the comma
    ("I can book that for you, no problem at all.",
     ["I can book that for you,", "no problem at all."]),
    ("We open at nine; we close at five.", ["We open at nine;", "we close at five."]),
    ("Dr. Smith will see you.", ["Dr. Smith will see you."]),
    ("Mrs. Jones and Mr. Brown are in.", ["Mrs. Jones and Mr. Brown are in."]),
    ("See you at 3 p.m. on Tuesday. Bye.", ["See you at 3 p.m. on Tuesday.", "Bye."]),
    ("For example, e.g. this one. Done.", ["For example, e.g. this one.", "Done."]),
    ("J. Smith booked it. Thanks.", ["J. Smith booked it.", "Thanks."]),
    ("It costs 3.50 dollars. Okay?", ["It costs 3.50 dollars.", "Okay?"]),
    ("Write to ava@example.com today. Thanks.", ["Write to ava@example.com today.", "Thanks."]),
    ("That is 1,000 people, more or less.", ["That is 1,000 people,", "more or less."]),
    ('He said "fine." Then he left.', ['He said "fine."', "Then he left."]),
    ("(Just checking.) Fine.", ["(Just checking.)", "Fine."]),
    ("Well... let me see.", ["Well...", "let me see."]),
    ("No trailing punctuation", ["No trailing punctuation"]),
    ("Line one.\nLine two.", ["Line one.", "Line two."]),
    ("   ", []),
    ("", []),
]


@pytest.mark.parametrize("pieces", ["tokens", "chars", "whole"])
@pytest.mark.parametrize(("text", "clauses"), CASES)
def test_clauses_do_not_depend_on_how_the_text_arrives(
    text: str, clauses: list[str], pieces: str
) -> None:
    assert split(text, pieces) == clauses


def test_a_clause_leaves_as_soon_as_its_end_is_certain() -> None:
    splitter = ClauseSplitter()
    assert splitter.feed("Hi there.") == []  # "there." may be "there.com"
    assert splitter.feed(" I") == ["Hi there."]
    assert splitter.feed(" have three slots;") == ["I have three slots;"]  # at once
    assert splitter.feed(" the first is Monday,") == []  # the comma needs the space after it
    assert splitter.feed(" ") == ["the first is Monday,"]
    assert splitter.pending == ""
    assert splitter.feed("then") == [] and splitter.pending == "then"
    assert splitter.flush() == ["then"] and splitter.flush() == []


def test_a_lines_opener_is_spoken_at_once_later_commas_wait_for_words() -> None:
    assert split("Sure, I can help, no problem.", first_min_words=1) == [
        "Sure,", "I can help, no problem."]
    assert split("Thank you, John, lovely to meet you.", pieces="chars", first_min_words=1) == [
        "Thank you,", "John, lovely to meet you."]
    splitter = ClauseSplitter()  # the default: a line's opener goes alone
    assert splitter.feed("Great, ") == ["Great,"]
    assert splitter.feed("so, ") == []


def test_words_before_a_comma_is_a_setting() -> None:
    assert split("Okay, so, here we go.", min_words=1) == ["Okay,", "so,", "here we go."]
    assert split("Okay, so, here we go.", min_words=3) == ["Okay, so, here we go."]
    with pytest.raises(ValueError):
        ClauseSplitter(0)
    with pytest.raises(ValueError):
        ClauseSplitter(4, first_min_words=0)


def test_clauses_keep_every_word() -> None:
    text = ("Thanks, Jane. I have Tuesday at 3 p.m., Wednesday at noon, or Thursday morning; "
            "which one suits you best? Dr. Lee is in all week!")
    for pieces in ("tokens", "chars"):
        assert " ".join(split(text, pieces)).split() == text.split()
