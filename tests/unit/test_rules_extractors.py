"""The `rules` provider's extractors on speech-to-text output, and the hints they give the
offline recogniser (every hint word in its dictionary, every grammar loadable and accepting
the answers the extractors read).

`now` is Tuesday 2026-11-24 10:00 in America/New_York throughout.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pocketsphinx
import pytest

from slotline.providers.llm import rules
from slotline.providers.llm.rules import KINDS, Extraction, extract, hints
from slotline.providers.llm.rules.normalize import MAX_INPUT_CHARS, spell_numerals
from slotline.providers.llm.rules.vocab import ESCAPES as GRAMMAR_ESCAPES

NOW = datetime(2026, 11, 24, 10, 0)
ZONE = "America/New_York"
UTTERANCES = Path(__file__).parents[2] / "agent" / "assets" / "caller" / "utterances.txt"
SALON = ("haircut|cut|trim", "coloring|color|dye", "styling|style|blow dry")


def run(kind: str, text: str, **kwargs: object) -> Extraction | None:
    return extract(kind, text, now=NOW, timezone=ZONE, **kwargs)  # type: ignore[arg-type]


def value(kind: str, text: str, **kwargs: object) -> str | None:
    found = run(kind, text, **kwargs)
    return None if found is None else found.value


def caller_utterances() -> dict[str, str]:
    lines = UTTERANCES.read_text().splitlines()
    return dict(line.split("\t", 1) for line in lines if line.strip())


# --- the simulated caller's utterances -------------------------------------------------------

CALLER_EXPECTED = {
    "name_john": ("name", "John Smith"),
    "name_jane": ("name", "Jane Doe"),
    "day_tuesday": ("date", "2026-12-01"),
    "date_dec_first": ("date", "2026-12-01"),
    "time_3pm": ("time", "15:00"),
    "time_1030": ("time", "10:30"),
    "afternoon": ("time_of_day", "afternoon"),
    "email_john": ("email", "john.smith@example.com"),
    "phone": ("phone", "+15551234567"),
    "yes": ("yes_no", "yes"),
    "yes_works": ("yes_no", "yes"),
    "no": ("yes_no", "no"),
}
# Utterances that answer no question: they must not be read as a value of these kinds.
CALLER_NOT_VALUES = ("book", "cancel", "reschedule", "interrupt", "goodbye")
# Utterances a flow's global intent catches; the engine matches intents before any extractor
# runs, so they must only not be read as these kinds ("this is urgent" does read as a name).
CALLER_INTENTS = {
    "urgent": ("email", "phone", "date", "time", "time_of_day", "yes_no", "number"),
    # the do-not-call requests every flow hears ("don't" reads as a "no", unseen by the flow)
    "opt_out": ("name", "email", "phone", "date", "time", "time_of_day", "yes_no", "number"),
    "dont_call": ("name", "email", "phone", "date", "time", "time_of_day", "number"),
}
# Answers to the example flows' choice questions (their choices as the flow files spell them).
CALLER_CHOICES = {
    "haircut": (("haircut|hair cut|cut|trim", "coloring|colouring|color", "styling|style"),
                "haircut"),
    "estate": (("tax|taxes", "estate|estate planning|a will", "business|my business"), "estate"),
    "team_small": (("solo|just me", "team|small team|a team", "enterprise|more than fifty"),
                   "team"),
    "by_phone": (("reference|booking reference", "phone|phone number|number"), "phone"),
    "cancel_short": (("reschedule|move|change", "cancel|cancel it"), "cancel"),
}
FREE_TEXT = ("company_acme", "issue_sync", "first_one")  # read by the text extractor / offers


@pytest.mark.parametrize("utterance_id", sorted(CALLER_CHOICES))
def test_caller_choice_is_read(utterance_id: str) -> None:
    choices, expected = CALLER_CHOICES[utterance_id]
    assert value("choice", caller_utterances()[utterance_id], choices=choices) == expected


@pytest.mark.parametrize("utterance_id", sorted(CALLER_EXPECTED))
def test_caller_utterance_is_read(utterance_id: str) -> None:
    kind, expected = CALLER_EXPECTED[utterance_id]
    assert value(kind, caller_utterances()[utterance_id]) == expected


@pytest.mark.parametrize("utterance_id", CALLER_NOT_VALUES)
@pytest.mark.parametrize("kind", ["name", "email", "phone", "date", "time", "time_of_day",
                                  "yes_no", "number"])
def test_caller_utterance_that_answers_nothing(utterance_id: str, kind: str) -> None:
    assert run(kind, caller_utterances()[utterance_id]) is None


@pytest.mark.parametrize(
    ("utterance_id", "kind"), [(u, k) for u, kinds in CALLER_INTENTS.items() for k in kinds]
)
def test_caller_intent_utterance_is_no_value(utterance_id: str, kind: str) -> None:
    assert run(kind, caller_utterances()[utterance_id]) is None


def test_every_caller_utterance_is_covered() -> None:
    covered = {
        *CALLER_EXPECTED, *CALLER_NOT_VALUES, *CALLER_CHOICES, *FREE_TEXT, *CALLER_INTENTS,
        "backchannel",
    }
    assert set(caller_utterances()) == covered
    assert value("yes_no", caller_utterances()["backchannel"]) == "yes"


# --- dates -------------------------------------------------------------------------------------

DATES = [
    ("december first", "2026-12-01"),
    ("nope monday, wednesday is fine", "2026-11-25"),  # the day ruled out is not the one
    ("next tuesday", "2026-12-01"),  # today is a Tuesday: the one after today
    ("tuesday", "2026-12-01"),
    ("on tuesday", "2026-12-01"),
    ("this tuesday", "2026-11-24"),
    ("this coming tuesday", "2026-12-01"),
    ("wednesday", "2026-11-25"),
    ("next wednesday", "2026-11-25"),  # the coming Wednesday, not the one a week later
    ("monday", "2026-11-30"),
    ("friday next week", "2026-12-04"),
    ("next week friday", "2026-12-04"),
    ("thursday this week", "2026-11-26"),
    ("tuesday after next", "2026-12-08"),
    ("a week from friday", "2026-12-04"),
    ("not tuesday wednesday", "2026-11-25"),
    ("today", "2026-11-24"),
    ("tomorrow", "2026-11-25"),
    ("tomorrow morning", "2026-11-25"),
    ("the day after tomorrow", "2026-11-26"),
    ("a week from today", "2026-12-01"),
    ("in a week", "2026-12-01"),
    ("the twenty third", "2026-12-23"),  # the 23rd of this month has passed
    ("the twenty fourth", "2026-11-24"),
    ("on the first", "2026-12-01"),
    ("the thirtieth", "2026-11-30"),
    ("the thirty first", "2026-12-31"),  # November has no 31st
    ("the first of december", "2026-12-01"),
    ("first of december", "2026-12-01"),
    ("january fifth", "2027-01-05"),
    ("november twentieth", "2027-11-20"),
    ("december first twenty twenty seven", "2027-12-01"),
    ("december first two thousand twenty seven", "2027-12-01"),
    ("december the first", "2026-12-01"),
    ("December 1st, 2026", "2026-12-01"),
    ("dec 1st", "2026-12-01"),
    ("may the fourth", "2027-05-04"),
    ("february twenty ninth", "2028-02-29"),
    ("friday the fourth", "2026-12-04"),
    ("friday the thirteenth", "2027-08-13"),  # the next 13th that is a Friday
    ("wednesday december second", "2026-12-02"),
    ("i'd like to come in on december first please", "2026-12-01"),
    ("how about next friday", "2026-11-27"),
    ("12/1", "2026-12-01"),
    ("2026-12-01", "2026-12-01"),
    ("in three days", "2026-11-27"),
    ("two weeks from now", "2026-12-08"),
]


@pytest.mark.parametrize(("text", "expected"), DATES)
def test_date(text: str, expected: str) -> None:
    assert value("date", text) == expected


NOT_DATES = [
    "next week", "next month", "december", "yesterday", "monday this week",
    "november twentieth twenty twenty six", "february thirtieth", "i don't know",
    "ten thirty in the morning", "three p m", "five five five one two three four five six seven",
    "the first available", "whatever's first", "may i book an appointment", "asdf qwer", "",
    "in the afternoon please", "twenty five", "99999999999999 weeks from today",
    "may two of us come",
    "december first twenty ninety",
    # a unit counts right after its number: misheard words around a number are no offset
    "i'm three on the week ben really",
    # a weekday ruled out
    "any day except wednesday", "i can't do friday", "not on monday",
]


@pytest.mark.parametrize("text", NOT_DATES)
def test_not_a_date(text: str) -> None:
    assert run("date", text) is None


def test_date_confidence_drops_when_the_weekday_disagrees() -> None:
    agreeing = run("date", "wednesday december second")
    disagreeing = run("date", "monday december second")
    assert agreeing is not None and disagreeing is not None
    assert disagreeing.value == agreeing.value == "2026-12-02"
    assert disagreeing.confidence < 0.6 < agreeing.confidence


def test_weekday_meaning_follows_the_local_date_of_an_aware_now() -> None:
    # 03:00 UTC on Wednesday is still Tuesday evening in New York.
    aware = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    found = extract("date", "tomorrow", now=aware, timezone=ZONE)
    assert found is not None and found.value == "2026-11-25"
    monday = extract("date", "next tuesday", now=datetime(2026, 11, 23, 9, 0), timezone=ZONE)
    assert monday is not None and monday.value == "2026-11-24"


# --- times -------------------------------------------------------------------------------------

TIMES = [
    ("three p m", "15:00"), ("three pm", "15:00"), ("3 PM", "15:00"), ("3:30 p.m.", "15:30"),
    ("ten thirty in the morning", "10:30"), ("ten thirty", "10:30"), ("noon", "12:00"),
    ("twelve noon", "12:00"), ("midnight", "00:00"), ("half past two", "14:30"),
    ("quarter past nine", "09:15"), ("a quarter to four", "15:45"), ("ten to four", "15:50"),
    ("twenty past eleven", "11:20"), ("two forty five", "14:45"), ("seven a m", "07:00"),
    ("seven in the evening", "19:00"), ("at eight", "08:00"), ("ten oh five", "10:05"),
    ("three o'clock", "15:00"), ("nine o'clock in the morning", "09:00"),
    ("fifteen hundred", "15:00"), ("15:00", "15:00"), ("eleven thirty", "11:30"),
    ("twelve thirty", "12:30"), ("around three in the afternoon", "15:00"),
    ("in the afternoon around three", "15:00"), ("tuesday at three", "15:00"),
    ("i am free at three", "15:00"), ("at nine am please", "09:00"),
    ("the twenty third at ten", "10:00"), ("one", "13:00"),
    # ranges
    ("between two and four", "14:00-16:00"), ("from nine to noon", "09:00-12:00"),
    ("nine to five", "09:00-17:00"), ("between ten and two", "10:00-14:00"),
    ("from nine a m to twelve", "09:00-12:00"), ("two to four p m", "14:00-16:00"),
    ("between nine and ten in the evening", "21:00-22:00"),
    ("from ten thirty to eleven thirty", "10:30-11:30"), ("between eleven and one", "11:00-13:00"),
    ("from ten to two p m", "10:00-14:00"),
    # a time the caller rules out is not the one asked for
    ("not at one, at three", "15:00"), ("six in the afternoon", "18:00"),
    # a bare hour in the words callers put around it
    ("could we do eleven instead", "11:00"), ("four o'clock would be ideal", "16:00"),
    ("half past ten if you have it", "10:30"), ("let's go with two", "14:00"),
    # "the" before a clock that says am/pm or its minutes: an offer named by its time
    ("the two p m one", "14:00"), ("the four thirty slot", "16:30"),
    ("the two o'clock one sounds good", "14:00"),
    # a clock refused after it is not the one asked for; "not" after it names it
    ("three o'clock would be better", "15:00"), ("three won't work but at four would", "16:00"),
    ("at three o'clock not four", "15:00"), ("how about three not four", "15:00"),
    # a stutter or a count after the hour is no run of digits
    ("at five five pm", "17:00"),
]


@pytest.mark.parametrize(("text", "expected"), TIMES)
def test_time(text: str, expected: str) -> None:
    assert value("time", text) == expected


NOT_TIMES = [
    "in the afternoon", "next tuesday", "december first", "i don't know", "whenever works",
    "the twenty third", "in ten minutes", "yes", "", "twenty five hundred",
    # ruled out, not asked for
    "not at one", "i can't do two", "never at nine",
    # "afternoon" with an hour it cannot hold: one of the two was misheard
    "eight in the afternoon", "in the afternoon at ten",
    # refused after it, or digits of a run (a misheard "that suits me fine")
    "at one doesn't suit", "ten won't work for me", "at two three five", "one two three four",
]


@pytest.mark.parametrize("text", NOT_TIMES)
def test_not_a_time(text: str) -> None:
    assert run("time", text) is None


def test_time_confidence_is_lower_when_am_pm_is_guessed() -> None:
    said, guessed = run("time", "three p m"), run("time", "three")
    assert said is not None and guessed is not None and said.value == guessed.value
    assert guessed.confidence < said.confidence


TIMES_OF_DAY = [
    ("in the afternoon please", "afternoon"), ("morning", "morning"),
    ("mornings are better", "morning"), ("after lunch", "afternoon"),
    ("before lunch", "morning"), ("sometime in the evening", "evening"),
    ("tonight", "evening"), ("early afternoon", "afternoon"), ("late morning", "morning"),
    ("first thing", "morning"), ("not in the morning afternoon is better", "afternoon"),
    ("good morning i'd prefer the afternoon", "afternoon"),
    ("ten thirty in the morning", "morning"), ("three p m", "afternoon"),
    ("around six", "evening"), ("after work", "evening"), ("i am free after lunch", "afternoon"),
]


@pytest.mark.parametrize(("text", "expected"), TIMES_OF_DAY)
def test_time_of_day(text: str, expected: str) -> None:
    assert value("time_of_day", text) == expected


@pytest.mark.parametrize("text", ["whenever", "i don't know", "next tuesday", "yes", "anytime"])
def test_not_a_time_of_day(text: str) -> None:
    assert run("time_of_day", text) is None


# --- e-mail and phone --------------------------------------------------------------------------

EMAILS = [
    ("john dot smith at example dot com", "john.smith@example.com"),
    ("j o h n at gmail dot com", "john@gmail.com"),
    ("my email is jane underscore doe at yahoo dot com", "jane_doe@yahoo.com"),
    ("it's mary dash jones at outlook dot com please", "mary-jones@outlook.com"),
    ("sam hyphen lee at company dot co dot uk", "sam-lee@company.co.uk"),
    ("you can reach me at john at gmail dot com", "john@gmail.com"),
    ("john smith one two three at hotmail dot com", "johnsmith123@hotmail.com"),
    ("tom twenty three at gmail dot com", "tom23@gmail.com"),
    ("peter at g mail dot com", "peter@gmail.com"),
    ("double u i l l at example dot com", "will@example.com"),
    ("sure it's John.Smith@Example.COM thanks", "john.smith@example.com"),
    ("john.smith at example.com", "john.smith@example.com"),
]


@pytest.mark.parametrize(("text", "expected"), EMAILS)
def test_email(text: str, expected: str) -> None:
    assert value("email", text) == expected


NOT_EMAILS = [
    "john smith", "at example dot com", "john at example", "john dot at example dot com",
    "i don't have an email", "", "yes", "john at example dot c",
]


@pytest.mark.parametrize("text", NOT_EMAILS)
def test_not_an_email(text: str) -> None:
    assert run("email", text) is None


PHONES = [
    ("my number is five five five one two three four five six seven", "+15551234567"),
    ("five five five oh one two three four five six", "+15550123456"),
    ("double five five one two three four five six seven", "+15551234567"),
    ("555-123-4567", "+15551234567"),
    ("(555) 123 4567", "+15551234567"),
    ("one five five five one two three four five six seven", "+15551234567"),
    ("plus four four two zero seven nine four six zero nine five eight", "+442079460958"),
    ("five five five twelve thirty four", "5551234"),
    ("eight hundred five five five one two one two", "+18005551212"),
    ("five five five uh one two three four five six seven", "+15551234567"),
    ("five five five one two three for five six seven", "+15551234567"),
    ("i have two kids and my number is five five five one two three four five six seven",
     "+15551234567"),
    ("area code five five five then one two three four five six seven", "+15551234567"),
]


@pytest.mark.parametrize(("text", "expected"), PHONES)
def test_phone(text: str, expected: str) -> None:
    assert value("phone", text) == expected


NOT_PHONES = [
    "five five five", "yes", "next tuesday", "my name is john", "",
    "one two three four five six seven eight nine zero one two three four five six",
]


@pytest.mark.parametrize("text", NOT_PHONES)
def test_not_a_phone(text: str) -> None:
    assert run("phone", text) is None


def test_a_short_local_number_is_a_low_confidence_guess() -> None:
    found = run("phone", "five five five one two three four")
    assert found is not None and found.value == "5551234" and found.confidence <= 0.6


# --- names -------------------------------------------------------------------------------------

NAMES = [
    ("my name is john smith", "John Smith"), ("it's jane doe", "Jane Doe"),
    ("this is sam", "Sam"), ("i'm maria garcia", "Maria Garcia"),
    ("hi this is peter calling", "Peter"), ("yes it's jane", "Jane"),
    ("my name is o'brien", "O'Brien"), ("j o h n smith", "John Smith"),
    ("my name is john smith s m i t h", "John Smith"), ("um my name is uh john", "John"),
    ("my name's kate", "Kate"), ("call me alex", "Alex"), ("june", "June"),
    ("my name is john smith and i'd like to book", "John Smith"),
    ("this is doctor sarah lee", "Sarah Lee"),
]


@pytest.mark.parametrize(("text", "expected"), NAMES)
def test_name(text: str, expected: str) -> None:
    assert value("name", text) == expected


def test_a_bare_name_is_less_certain_than_an_introduced_one() -> None:
    bare, introduced = run("name", "john smith"), run("name", "my name is john smith")
    assert bare is not None and introduced is not None and bare.value == introduced.value
    assert bare.confidence < introduced.confidence


NOT_NAMES = [
    "yes", "no", "uh huh", "i'm not sure", "it's tuesday", "this is about my appointment",
    "hello", "i don't know", "thank you", "i would like to book an appointment",
    "next tuesday", "wait sorry hold on", "okay", "", "three p m", "may",
]


@pytest.mark.parametrize("text", NOT_NAMES)
def test_not_a_name(text: str) -> None:
    assert run("name", text) is None


# --- yes/no, choice, number, text ----------------------------------------------------------------

YES_NO = [
    ("yes", "yes"), ("yeah sure", "yes"), ("yes that works", "yes"), ("sounds good", "yes"),
    ("correct", "yes"), ("absolutely", "yes"), ("no problem", "yes"), ("that's right", "yes"),
    ("okay", "yes"), ("uh huh", "yes"), ("no thanks", "no"), ("not really", "no"),
    ("nope", "no"), ("i don't think so", "no"), ("no", "no"), ("not great", "no"),
    ("that's not right", "no"), ("that doesn't work for me", "no"), ("no wait yes", "yes"),
    ("hmm actually no", "no"),  # "hmm" hesitates, it does not hedge
    ("none of those work for me", "no"), ("neither", "no"),  # to offers
    ("nah i'm good", "no"), ("go for it", "yes"), ("mm hmm", "yes"),
    ("definitely not", "no"), ("absolutely not", "no"), ("of course not", "no"),
    ("of course", "yes"),
    # a yes word negated just before it, a refusal by "doesn't"
    ("no that's not a good time", "no"), ("that isn't good", "no"), ("that's no good", "no"),
    ("that doesn't suit me at all", "no"), ("that one doesn't suit", "no"),
    ("it doesn't bother me", "yes"), ("no that works", "yes"),  # two answers: the last, unsure
    ("no absolutely", "yes"), ("no no yes", "yes"), ("i don't mind go ahead", "yes"),
    ("isn't that great", "yes"), ("not very good", "no"),
]


@pytest.mark.parametrize(("text", "stray"), [
    ("that doesn't suit me that's fine", True), ("that won't be a problem", True),
    ("why not", False), ("i don't mind", False), ("yes that's not a problem", False),
    ("yes please", False),
])
def test_a_negation_no_yes_phrase_holds_is_stray(text: str, stray: bool) -> None:
    assert rules.stray_negation(text) is stray


@pytest.mark.parametrize(("text", "expected"), YES_NO)
def test_yes_no(text: str, expected: str) -> None:
    assert value("yes_no", text) == expected


@pytest.mark.parametrize(
    "text", ["maybe", "i'm not sure", "i don't know", "hmm", "what", "next tuesday", "",
             "in the afternoon please", "yes maybe", "it doesn't matter",
             "doesn't sound bad", "it doesn't have to be early"]
)
def test_not_yes_or_no(text: str) -> None:
    assert run("yes_no", text) is None


def test_a_self_corrected_answer_is_less_certain() -> None:
    found = run("yes_no", "no wait yes")
    assert found is not None and found.confidence <= 0.6


CHOICES = [
    ("a haircut please", "haircut"), ("i'd like a trim", "haircut"), ("color", "coloring"),
    ("blow dry", "styling"), ("the second one", "coloring"), ("colouring", "coloring"),
    ("hair cut", "haircut"), ("not the haircut the coloring", "coloring"),
    ("option three", "styling"), ("the last one", "styling"), ("Haircut.", "haircut"),
    ("the middle one", "coloring"), ("whichever is first", "haircut"),
    ("the earliest one", "haircut"), ("the latest one", "styling"),
]


@pytest.mark.parametrize(("text", "expected"), CHOICES)
def test_choice(text: str, expected: str) -> None:
    assert value("choice", text, choices=SALON) == expected


@pytest.mark.parametrize("text", ["i don't know", "haircut or coloring", "something else", "",
                                  "the one", "in the middle of it"])
def test_not_a_choice(text: str) -> None:
    assert run("choice", text, choices=SALON) is None


def test_choices_as_a_mapping_of_synonyms() -> None:
    options = {"morning slot": ["morning", "early"], "afternoon slot": ["afternoon", "late"]}
    assert value("choice", "the afternoon", choices=options) == "afternoon slot"
    assert value("choice", "early please", choices=options) == "morning slot"


def test_choice_configuration_errors() -> None:
    with pytest.raises(ValueError, match="options"):
        run("choice", "haircut")
    with pytest.raises(ValueError, match="one string"):
        run("choice", "haircut", choices="haircut|cut")


NUMBERS = [
    ("twenty five", "25"), ("25", "25"), ("one hundred and five", "105"),
    ("two point five", "2.5"), ("three and a half", "3.5"), ("a dozen", "12"),
    ("just two of us", "2"), ("minus three", "-3"), ("two thousand twenty six", "2026"),
    ("zero", "0"), ("1.5", "1.5"), ("a hundred", "100"), ("nineteen hundred", "1900"),
]


@pytest.mark.parametrize(("text", "expected"), NUMBERS)
def test_number(text: str, expected: str) -> None:
    assert value("number", text) == expected


@pytest.mark.parametrize("text", ["i don't know", "the third", "yes", "", "none of them"])
def test_not_a_number(text: str) -> None:
    assert run("number", text) is None


def test_text_is_the_utterance_unless_it_is_only_filler() -> None:
    assert value("text", "  i have a question   about parking ") == (
        "i have a question about parking"
    )
    assert run("text", "uh um") is None
    assert run("text", "") is None


# --- contract ----------------------------------------------------------------------------------


def test_kinds_are_the_flow_contract() -> None:
    assert set(KINDS) == {"text", "name", "email", "phone", "date", "time", "time_of_day",
                          "yes_no", "choice", "number", "timezone"}


def test_unknown_kind_and_zone_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown extractor kind"):
        run("postcode", "sw1a 1aa")
    with pytest.raises(ValueError, match="unknown extractor kind"):
        hints("postcode")
    with pytest.raises(ValueError, match="unknown timezone"):
        extract("date", "tomorrow", now=NOW, timezone="Mars/Olympus_Mons")


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "text"])
def test_overlong_garbage_is_cut_and_not_matched(kind: str) -> None:
    garbage = "zq " * 5000 + "december first three p m john at example dot com"
    assert run(kind, garbage, choices=SALON) is None


def test_overlong_text_is_cut() -> None:
    found = run("text", "zq " * 5000)
    assert found is not None and 0 < len(found.value) <= MAX_INPUT_CHARS


# --- speech hints ------------------------------------------------------------------------------


def kind_hints(kind: str) -> tuple[tuple[str, ...], str | None]:
    found = hints(kind, choices=SALON if kind == "choice" else ())
    return found.phrases, found.grammar


def grammar_words(grammar: str) -> set[str]:
    words: set[str] = set()
    for line in grammar.splitlines():
        if line.startswith(("#", "grammar ")):
            continue
        body = line.split("=", 1)[-1]
        for token in body.translate(str.maketrans("()[]|;*+", "        ")).split():
            if not token.startswith("<"):
                words.add(token)
    return words


@pytest.fixture(scope="module")
def dictionary() -> frozenset[str]:
    path = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.split(maxsplit=1)[0].split("(")[0] for line in lines if line)


@pytest.mark.parametrize("kind", KINDS)
def test_every_hint_word_is_in_the_recogniser_dictionary(
    kind: str, dictionary: frozenset[str]
) -> None:
    phrases, grammar = kind_hints(kind)
    words = {word for phrase in phrases for word in phrase.split()}
    words |= grammar_words(grammar or "")
    assert words or kind == "text"
    assert sorted(words - dictionary) == []


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "text"])
def test_every_hint_phrase_is_read_by_its_extractor(kind: str) -> None:
    phrases, _ = kind_hints(kind)
    assert phrases
    unread = [p for p in phrases if run(kind, p, choices=SALON) is None]
    assert unread == []


ESCAPES = ["i don't know", "can you repeat that", "i want to cancel my appointment",
           "can i move my appointment", "hold on", "thank you goodbye", "what"]


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "text"])
@pytest.mark.parametrize("text", ESCAPES)
def test_escape_answers_in_every_grammar_match_no_value(kind: str, text: str) -> None:
    assert run(kind, text, choices=SALON) is None


@pytest.fixture(scope="module")
def decoder() -> pocketsphinx.Decoder:
    pocketsphinx.set_loglevel("FATAL")
    return pocketsphinx.Decoder(lm=None)


GRAMMAR_ACCEPTS = {
    "date": ["next tuesday", "december first", "on the twenty third", "tomorrow",
             "the first of december please", "this coming friday", "i don't know"],
    "time": ["three p m", "ten thirty in the morning", "noon", "half past two",
             "between two and four", "at nine o'clock", "quarter to four", "hold on"],
    "time_of_day": ["in the afternoon please", "after lunch", "mornings are better"],
    "email": ["john dot smith at example dot com", "j o h n at gmail dot com",
              "my email is jane underscore doe at yahoo dot com"],
    "phone": ["five five five one two three four five six seven",
              "double five five one two three four five six seven",
              "my number is five five five one two three four five six seven"],
    "yes_no": ["yes", "yes that works", "no thanks", "not really", "i don't think so",
               "i'm not sure"],
    "number": ["twenty five", "one hundred and five", "two point five"],
    "choice": ["the coloring please", "i'd like a trim", "blow dry", "the second one"],
}


@pytest.mark.parametrize("kind", sorted(GRAMMAR_ACCEPTS))
def test_grammar_loads_and_accepts_the_answers(kind: str, decoder: pocketsphinx.Decoder) -> None:
    _, grammar = kind_hints(kind)
    assert grammar is not None
    decoder.add_jsgf_string(kind, grammar)  # raises on a grammar the recogniser cannot load
    fsg = decoder.parse_jsgf(grammar)
    rejected = [text for text in GRAMMAR_ACCEPTS[kind] if not fsg.accept(text)]
    assert rejected == []
    assert not fsg.accept("purple monkey dishwasher")


def test_grammar_answers_are_read_by_their_extractor() -> None:
    unread = [
        (kind, text)
        for kind, texts in GRAMMAR_ACCEPTS.items()
        for text in texts
        if text not in GRAMMAR_ESCAPES and run(kind, text, choices=SALON) is None
    ]
    assert unread == []


def test_name_and_text_hints_have_no_grammar() -> None:
    # A grammar would force every unknown name onto a listed one; phrases only bias.
    assert hints("name").grammar is None
    assert hints("text").phrases == () and hints("text").grammar is None


# --- any input: a well-formed value or None, never an exception --------------------------------

WELL_FORMED = {
    "text": r".+",
    "name": r"[A-Z][a-z']*(?:[A-Z][a-z']*)*(?: [A-Z][A-Za-z']*){0,3}",
    "email": r"[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}",
    "phone": r"\+?\d{7,15}",
    "date": r"20\d\d-[01]\d-[0-3]\d",
    "time": r"[0-2]\d:[0-5]\d(?:-[0-2]\d:[0-5]\d)?",
    "time_of_day": r"morning|afternoon|evening",
    "yes_no": r"yes|no",
    "choice": r"haircut|coloring|styling",
    "number": r"-?\d+(?:\.\d+)?",
}
SOUP = (
    "the a of to and in on next this december first tuesday three p m at dot com five oh uh um "
    "twenty thirty hundred thousand between from noon half past quarter week weeks days after my "
    "name is it's yes no not sure double plus 12/1 2026 1st may friday 23rd 99999999999 point "
    "o'clock underscore dash j o h n trim color 10:30 555-1234 @ + . , ? minus"
).split()


@pytest.mark.parametrize("seed", range(40))
def test_token_soup_gives_well_formed_values_or_none(seed: int) -> None:
    chooser = random.Random(seed)
    for _ in range(10):
        text = " ".join(chooser.choice(SOUP) for _ in range(chooser.randint(1, 14)))
        for kind in KINDS:
            found = run(kind, text, choices=SALON)
            if found is None:
                continue
            assert re.fullmatch(WELL_FORMED[kind], found.value), (kind, text, found)
            assert 0.0 < found.confidence <= 1.0
            if kind == "date":
                assert found.value >= "2026-11-24"


@pytest.mark.parametrize(("text", "spoken"), [
    ("10 am", "ten am"), ("Tuesday, December 8th at 2 pm", "Tuesday, December eighth at two pm"),
    ("the 1st", "the first"), ("22nd of May", "twenty second of May"), ("3RD", "third"),
    ("123 Main St", "123 Main St"),  # 100 and up are left alone
])
def test_hint_phrases_spell_numbers_and_ordinals(text: str, spoken: str) -> None:
    # the recogniser's hints for an offer read back ("December 8th"): "eightth" is no word
    assert spell_numerals(text) == spoken
