"""Short answers: yes/no with hedges, a choice among configured options, a number, free text."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from decimal import Decimal

from slotline.providers.base import SpeechHints

from . import jsgf
from .extraction import ChoiceOption, Context, Extraction
from .normalize import (
    FILLERS,
    MAX_INPUT_CHARS,
    NEGATORS,
    TEENS,
    TENS,
    UNITS,
    find_phrase,
    negated,
    parse_cardinal,
    parse_ordinal,
    spell_numerals,
    tokens,
)

# (phrase, polarity, confidence); matched longest first, so "no problem" is a yes and "not
# sure" a hedge. A hedge anywhere makes the answer unknown: the flow asks again.
_YES_NO_TABLE: tuple[tuple[str, str, float], ...] = (
    *((p, "yes", 0.95) for p in (
        "yes", "yeah", "yep", "yup", "yea", "correct", "absolutely", "definitely", "certainly",
        "sure", "affirmative", "of course", "that's right", "that is right", "exactly",
        "sounds good", "sounds great", "that works", "works for me", "perfect", "go ahead",
        "please do", "uh huh", "mhm", "mm hmm", "go for it", "no problem", "no worries",
        "not a problem", "why not",
        "i don't mind", "by all means", "that's it", "i'm good with that",
        "doesn't bother me",
    )),
    *((p, "yes", 0.8) for p in (
        "okay", "ok", "alright", "all right", "right", "great", "fine", "good", "works",
        "i guess so", "i think so", "do it",
    )),
    *((p, "no", 0.95) for p in (
        "no", "nope", "nah", "negative", "not really", "i don't think so", "no thanks",
        "no thank you", "not at all", "doesn't work", "does not work", "won't work", "wrong",
        "incorrect", "never mind", "nevermind", "no way", "uh uh", "rather not",
        "none of those", "none of them", "neither",
        "definitely not", "absolutely not", "certainly not", "of course not",
    )),
    *((p, "no", 0.8) for p in ("i'm good", "i'm all set")),  # declining an offer
    *((p, "no", 0.8) for p in ("not", "don't", "can't", "cannot", "never", "i can't")),
    # "doesn't" alone is no refusal ("doesn't sound bad", "it doesn't have to be early")
    *((p, "no", 0.95) for p in ("doesn't suit", "does not suit", "doesn't fit", "won't suit")),
    *((p, "unsure", 0.0) for p in (
        "maybe", "perhaps", "possibly", "probably", "not sure", "i'm not sure", "i don't know",
        "don't know", "dunno", "depends", "it depends", "let me think", "let me check",
        "unsure", "not certain", "i'm unsure",
    )),  # ("hmm" is a hesitation: "hmm, actually no" is a no)
)
_YesNoEntry = tuple[tuple[str, ...], str, float]
_YES_NO_BY_FIRST_WORD: dict[str, list[_YesNoEntry]] = {}
for _phrase, _polarity, _confidence in sorted(_YES_NO_TABLE, key=lambda e: -len(e[0].split())):
    _words = tuple(_phrase.split())
    _YES_NO_BY_FIRST_WORD.setdefault(_words[0], []).append((_words, _polarity, _confidence))
_NOT_THIS_ONE = NEGATORS | {"no"}  # "not the haircut", "no, not haircut"
_BETWEEN_NOT_AND_YES = frozenset(("a", "an", "so", "very", "too", "really"))
_PICKS = {
    "first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "last": -1,
    "one": 0, "two": 1, "three": 2, "four": 3, "five": 4, "earliest": 0, "latest": -1,
}
_ORDINAL_PICKS = frozenset((
    "first", "second", "third", "fourth", "fifth", "last", "earliest", "latest",
))
# Before an ordinal that picks by position: "the first", "whichever is first", "whichever's
# earliest"
_BEFORE_ORDINAL_PICK = frozenset(("the", "is", "whichever's", "whatever's"))
_DECIMAL_RE = re.compile(r"\d+\.\d+")
_FUZZY_MIN_RATIO = 0.8  # "colouring"/"coloring", "hair cut"/"haircut"; "cut" vs "color" is 0.25


# Yes phrases that hold a negation ("why not", "i don't mind"): the negation is the yes's own.
_YES_WITH_NEGATION = tuple(
    tuple(phrase.split()) for phrase, polarity, _ in _YES_NO_TABLE
    if polarity == "yes" and NEGATORS & set(phrase.split())
)


def stray_negation(text: str) -> bool:
    """Whether ``text`` holds a negation ("not", "doesn't", "won't", ...) that no yes phrase
    holds: "that doesn't suit me ... that's fine" reads as a yes, but half of it refuses. Used
    where a yes commits the caller (a booking), so that such an answer is asked again."""
    toks = tokens(text)
    covered: set[int] = set()
    for phrase in _YES_WITH_NEGATION:
        for i in range(len(toks) - len(phrase) + 1):
            if tuple(toks[i : i + len(phrase)]) == phrase:
                covered.update(range(i, i + len(phrase)))
    return any(tok in NEGATORS and i not in covered for i, tok in enumerate(toks))


def _negated_yes(toks: Sequence[str], i: int, phrase: tuple[str, ...], after: int) -> bool:
    """Whether the yes phrase at ``toks[i]`` is negated: a negation right before it ("not
    great"), or before an article or intensifier before it ("not a good time", "isn't very
    good" — but "isn't that great" asks, and "i don't mind go ahead" is two yeses), or "no
    good"; "no, absolutely" and "no no yes" are corrections, not negations. Only words from
    ``after`` on can negate it: the "not" of a yes phrase before it ("why not, yes") does not."""
    if i <= after:
        return False
    before = toks[i - 1]
    if before in NEGATORS:
        return True
    if before == "no":
        return phrase == ("good",)
    return i - 1 > after and before in _BETWEEN_NOT_AND_YES and toks[i - 2] in NEGATORS


def extract_yes_no(text: str, ctx: Context) -> Extraction | None:
    toks = tokens(text)
    signals: list[tuple[str, float]] = []
    i = 0
    yes_end = 0  # where the last yes phrase ended
    while i < len(toks):
        for phrase, polarity, confidence in _YES_NO_BY_FIRST_WORD.get(toks[i], ()):
            if tuple(toks[i : i + len(phrase)]) != phrase:
                continue
            if polarity == "yes" and _negated_yes(toks, i, phrase, yes_end):
                # "not great", "don't think that works", "not a good time", "no good": the
                # negation's own signal becomes this one
                if signals and signals[-1][0] == "no":
                    signals[-1] = ("no", 0.9)
                else:
                    signals.append(("no", 0.9))
            else:
                signals.append((polarity, confidence))
            i += len(phrase)
            if polarity == "yes":
                yes_end = i
            break
        else:
            i += 1
    if not signals or any(polarity == "unsure" for polarity, _ in signals):
        return None
    polarities = {polarity for polarity, _ in signals}
    polarity, confidence = signals[-1]
    if len(polarities) > 1:  # "no wait yes": the last word stands, with less certainty
        confidence = 0.6
    else:
        confidence = max(c for _, c in signals)
    return Extraction(value=polarity, confidence=confidence)


def extract_choice(text: str, ctx: Context) -> Extraction | None:
    if not ctx.choices:
        raise ValueError("a choice needs options")
    toks = tokens(text)
    said: dict[str, int] = {}  # option -> longest phrase of it said
    for option in ctx.choices:
        for phrase in option.phrases:
            words = tokens(phrase)
            at = find_phrase(toks, words)
            if at >= 0 and not negated(toks, at, by=_NOT_THIS_ONE):
                said[option.value] = max(said.get(option.value, 0), len(words))
    if said:
        longest = max(said.values())
        winners = [value for value, width in said.items() if width == longest]
        return Extraction(value=winners[0], confidence=0.95) if len(winners) == 1 else None
    return _picked_by_position(toks, ctx.choices) or _fuzzy_choice(toks, ctx.choices)


def _picked_by_position(
    toks: Sequence[str], options: Sequence[ChoiceOption]
) -> Extraction | None:
    """ "the first one", "the second", "option two", "number three", "the last one"."""
    for i, token in enumerate(toks):
        before = toks[i - 1] if i else ""
        after = toks[i + 1] if i + 1 < len(toks) else ""
        if token == "middle" and after in ("one", "option") and len(options) % 2 == 1:
            return Extraction(value=options[len(options) // 2].value, confidence=0.8)
        if token not in _PICKS:
            continue
        is_ordinal = token in _ORDINAL_PICKS
        if is_ordinal and (before in _BEFORE_ORDINAL_PICK or after in ("one", "option")) or (
            before in ("option", "number") and not is_ordinal
        ):
            index = _PICKS[token]
            if -len(options) <= index < len(options):
                return Extraction(value=options[index].value, confidence=0.8)
    return None


def _fuzzy_choice(toks: Sequence[str], options: Sequence[ChoiceOption]) -> Extraction | None:
    """The option whose phrase is closest to some run of one word more, as many or one word
    fewer of the utterance ("hair cut", "colouring"), when that is close enough and unique."""
    best: tuple[float, str] | None = None
    tie = False
    matcher = difflib.SequenceMatcher(autojunk=False)
    for option in options:
        for phrase in option.phrases:
            target = " ".join(tokens(phrase))
            matcher.set_seq2(target)
            width = max(1, len(target.split()))
            for n in {width, width + 1, max(1, width - 1)}:
                for i in range(len(toks) - n + 1):
                    matcher.set_seq1(" ".join(toks[i : i + n]))
                    if (
                        matcher.real_quick_ratio() < _FUZZY_MIN_RATIO
                        or matcher.quick_ratio() < _FUZZY_MIN_RATIO
                    ):
                        continue
                    ratio = matcher.ratio()
                    if ratio < _FUZZY_MIN_RATIO:
                        continue
                    if best is None or ratio > best[0]:
                        tie = False
                        best = (ratio, option.value)
                    elif ratio == best[0] and option.value != best[1]:
                        tie = True
    if best is None or tie:
        return None
    return Extraction(value=best[1], confidence=round(0.9 * best[0], 2))


def extract_number(text: str, ctx: Context) -> Extraction | None:
    toks = tokens(text)
    found: list[Decimal] = []
    i = 0
    while i < len(toks) and len(found) < 2:
        ordinal = parse_ordinal(toks, i)
        if ordinal is not None:  # "the third" is a position, not a quantity
            i = ordinal[1]
            continue
        value, i_next = _number_at(toks, i)
        if value is not None:
            negative = i > 0 and toks[i - 1] in ("minus", "negative")
            found.append(-value if negative else value)
        i = i_next
    if not found:
        return None
    text_value = format(found[0].normalize(), "f")
    return Extraction(value=text_value, confidence=0.9 if len(found) == 1 else 0.6)


def _number_at(toks: Sequence[str], i: int) -> tuple[Decimal | None, int]:
    token = toks[i]
    if _DECIMAL_RE.fullmatch(token):
        return Decimal(token), i + 1
    if token == "a" and i + 1 < len(toks) and toks[i + 1] in ("couple", "dozen"):
        return Decimal(2 if toks[i + 1] == "couple" else 12), i + 2
    found = parse_cardinal(toks, i)
    if found is None:
        return None, i + 1
    value, j = Decimal(found[0]), found[1]
    if j + 1 < len(toks) and toks[j] == "point" and toks[j + 1] in UNITS:
        digits = ""
        j += 1
        while j < len(toks) and toks[j] in UNITS:
            digits += str(UNITS[toks[j]])
            j += 1
        value += Decimal(f"0.{digits}")
    elif tuple(toks[j : j + 3]) == ("and", "a", "half"):
        value, j = value + Decimal("0.5"), j + 3
    return value, j


def extract_text(text: str, ctx: Context) -> Extraction | None:
    cleaned = " ".join(text[:MAX_INPUT_CHARS].split())
    if not any(t not in FILLERS for t in tokens(cleaned)):
        return None
    return Extraction(value=cleaned, confidence=1.0)


def _yes_no_rules() -> tuple[tuple[str, str], ...]:
    def said(polarity: str) -> str:
        return jsgf.alt(p for p, kind, _ in _YES_NO_TABLE if kind == polarity)

    return (
        ("yes", said("yes")), ("no", said("no")), ("unsure", said("unsure")),
        ("tail", jsgf.alt(("that works", "that's fine", "thanks", "thank you", "please",
                           "that's right", "sounds good"))),
    )


_YES_NO_PHRASES = ("yes", "yes that works", "yeah sure", "sounds good", "correct", "no",
                   "no thanks", "not really", "nope", "i don't think so")


def yes_no_hints() -> SpeechHints:
    grammar = jsgf.grammar("yes_no", "( <yes> | <no> | <unsure> ) [ <tail> ]", _yes_no_rules())
    return SpeechHints(phrases=_YES_NO_PHRASES, grammar=grammar)


def consent_hints() -> SpeechHints:
    """The yes/no hints of a question whose yes commits the caller (the booking's read-back):
    its grammar also holds refusals said as sentences ("that won't work for me", "i can't make
    that"), so that a refusal one word away from a yes ("that works for me") can be heard as
    one by the grammar pass, and a recogniser that hears a yes in one pass and a refusal in
    the other asks again (``SpeechHints.consent``). Only here: in every yes/no grammar these
    sentences drew a plain yes ("yes that's the one") into half-agreement and doubt."""
    rules = (
        ("subject", jsgf.alt(("that", "it", "this", "that one", "that time", "that day"))),
        ("will_not", jsgf.alt(("won't", "will not", "doesn't", "does not", "isn't going to",
                               "is not going to", "wouldn't", "would not", "can't", "cannot"))),
        ("suit", jsgf.alt(("work", "suit me", "be possible", "do"))),
        ("i_cannot", jsgf.alt(("i can't", "i cannot", "i can not", "i won't be able to",
                               "i'm not able to", "i couldn't"))),
        ("make", jsgf.alt(("make", "do", "come"))),
        ("then", jsgf.alt(("that", "it", "then", "that time", "that day"))),
        ("is_not", jsgf.alt(("that's not", "that is not", "that isn't", "it's not", "it isn't"))),
        ("wanted", jsgf.alt(("right", "good", "what i wanted", "what i want", "what i asked for",
                             "going to work", "a good time", "convenient"))),
        ("do_not", jsgf.alt(("don't", "do not", "please don't", "please do not"))),
        ("book", jsgf.alt(("book", "do", "take"))),
        ("rather", jsgf.alt(("i'd rather not", "i would rather not", "not for me",
                             "not that one", "not that time", "not that day"))),
    )
    refusal = jsgf.alt((
        "<subject> <will_not> <suit> [ for me ]", "<i_cannot> <make> [ <then> ]",
        "<is_not> <wanted>", "<do_not> <book> ( it | that )", "<rather>",
    ))
    grammar = jsgf.grammar(
        "consent",
        "( <yes> | <no> | <unsure> ) [ <tail> ] | [ no ] <refusal> [ <tail> ]",
        (*_yes_no_rules(), *rules, ("refusal", refusal)),
    )
    # the phrases (the language model's boost) stay the yes/no question's: boosting refusals
    # moved the LM's posteriors ("yes that's the one": "one" 0.89 -> 0.26, doubted)
    return SpeechHints(phrases=_YES_NO_PHRASES, grammar=grammar, consent=True)


def choice_hints(options: Sequence[ChoiceOption]) -> SpeechHints:
    """The options as the caller would say them. Words come from configuration, so a grammar
    may hold words outside the recogniser's dictionary: the recogniser decides what to do."""
    said = tuple(dict.fromkeys(
        spoken for option in options for phrase in option.phrases
        if (spoken := " ".join(tokens(spell_numerals(phrase.lower()))))
    ))
    if not said:
        return SpeechHints()
    phrases = (*said, *(f"the {p}" for p in said), "the first one", "the second one")
    rules = (("option", jsgf.alt(said)),)
    public = ("[ i'd like | i want | let's do | um | uh ] [ the | a | an ] ( <option> | first one "
              "| second one | last one ) [ please ]")
    return SpeechHints(phrases=phrases, grammar=jsgf.grammar("choice", public, rules))


def number_hints() -> SpeechHints:
    rules = (
        ("unit", jsgf.alt(UNITS)),
        ("teen", jsgf.alt(TEENS)),
        ("tens", jsgf.alt(TENS)),
        ("below_hundred", "<unit> | <teen> | <tens> [ <unit> ]"),
        ("amount", "<below_hundred> | ( a | <unit> ) hundred [ and ] [ <below_hundred> ]"),
        ("lead", jsgf.alt(("about", "around", "maybe", "just", "i need", "we need",
                           "there are", "there will be", "for", "um", "uh"))),
        ("tail", jsgf.alt(("please", "people", "of us", "i think"))),
    )
    phrases = tuple(" ".join(tokens(spell_numerals(str(n)))) for n in range(1, 21))
    grammar = jsgf.grammar(
        "number", "[ <lead> ] <amount> [ point <unit>+ ] [ <tail> ]", rules
    )
    return SpeechHints(phrases=phrases, grammar=grammar)
