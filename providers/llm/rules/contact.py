"""E-mail addresses and phone numbers, spoken ("john dot smith at example dot com", "five
five five one two three four five six seven") or written by a cloud recogniser.

An address is checked by ``email-validator`` (syntax only: no DNS during a call) and kept with
its letters as said: "zoë at example dot com" is ``zoë@example.com``, never ``zo@example.com``.
A number is read by ``phonenumbers`` in the caller's region (``Context.region``), so a UK
caller's "oh seven seven oh oh nine oh oh one two three" is ``+447700900123``; only a number
too short to dial from anywhere (a local number without its area code) stays a bare digit
string, as a low-confidence guess the flow may confirm.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from slotline.providers.base import SpeechHints

from . import jsgf
from .extraction import Context, Extraction
from .normalize import MAX_INPUT_CHARS, TEENS, TENS, UNITS, parse_cardinal, tokens
from .vocab import DIGITS, EMAIL_DOMAINS, FIRST_NAMES, LAST_NAMES, LETTERS, TOP_LEVEL_DOMAINS

# Letters and digits of any script ([^\W_]): a recogniser writes "zoë" and "müller" as said.
_WRITTEN_EMAIL_RE = re.compile(r"[^\W_][\w.%+-]*@[^\W_][\w-]*(?:\.[\w-]+)+")
_EMAIL_TOKEN_RE = re.compile(r"(?:[^\W_]|')+|[.@_+-]")
_MAX_EMAIL_CHARS = 254  # RFC 5321's path limit, less the angle brackets
_SYMBOLS = {
    "dot": ".", "period": ".", "point": ".", "at": "@", "underscore": "_", "dash": "-",
    "hyphen": "-", "minus": "-", "plus": "+",
}
# Words that end the spoken address on the left ("my email is ...") or the right ("... thanks").
_LEFT_STOPS = frozenset((
    "is", "it's", "its", "it", "email", "address", "me", "my", "at", "that's", "thats", "sure",
    "yes", "yeah", "okay", "ok", "um", "uh", "so", "the", "reach", "use", "you", "can", "and",
    "here", "try", "send", "to", "i'm", "mail",
))
_RIGHT_STOPS = frozenset((
    "please", "thanks", "thank", "that's", "thats", "is", "and", "okay", "ok", "right", "um",
    "uh", "so", "yes", "yeah", "bye", "goodbye",
))
_DIGIT_WORDS = {**{word: str(value) for word, value in UNITS.items()}, "oh": "0", "o": "0"}
_PHONE_FILLERS = frozenset(("uh", "um", "dash", "hyphen", "er", "hmm", "then"))
_REPEATS = {"double": 2, "triple": 3}
_SOUND_ALIKES = {"for": "4", "to": "2", "too": "2"}  # only between digits: "five for five"


def extract_email(text: str, ctx: Context) -> Extraction | None:
    lowered = text[:MAX_INPUT_CHARS].lower()
    written = _WRITTEN_EMAIL_RE.search(lowered)
    checked = _valid_email(written.group(0)) if written is not None else None
    if checked is not None:
        return Extraction(value=checked, confidence=0.95)
    toks = _EMAIL_TOKEN_RE.findall(lowered)
    pieces = [_SYMBOLS.get(t, t) for t in toks]
    for at in range(len(pieces) - 1, 0, -1):
        if pieces[at] != "@":
            continue
        local = _spoken_part(toks[:at], reverse=True)
        domain = _spoken_part(toks[at + 1 :], reverse=False)
        if local is None or domain is None:
            continue
        checked = _valid_email(f"{local}@{domain}".strip("."))
        if checked is not None:
            return Extraction(value=checked, confidence=0.9)
    return None


def _spoken_part(toks: Sequence[str], *, reverse: bool) -> str | None:
    """The address text on one side of "at": words up to a stop word (scanning leftwards for
    the local part), spelled letters and digit words joined, symbol words replaced."""
    stops = _LEFT_STOPS if reverse else _RIGHT_STOPS
    taken: list[str] = []
    for token in reversed(toks) if reverse else toks:
        if token in stops:
            break
        taken.append(token)
    if reverse:
        taken.reverse()
    out: list[str] = []
    i = 0
    while i < len(taken):
        token = taken[i]
        if token in _REPEATS and i + 1 < len(taken):
            following = taken[i + 1]
            if following in ("u", "you"):  # "double u" is the letter w
                out.append("w")
            else:
                out.append(_email_piece(following) * _REPEATS[token])
            i += 2
            continue
        number = parse_cardinal(taken, i) if token in TEENS or token in TENS else None
        if number is not None:
            out.append(str(number[0]))
            i = number[1]
            continue
        out.append(_email_piece(token))
        i += 1
    joined = "".join(out)
    return joined or None


def _email_piece(token: str) -> str:
    if token in _SYMBOLS:
        return _SYMBOLS[token]
    if token in UNITS:
        return str(UNITS[token])
    return token.replace("'", "")


def _valid_email(address: str) -> str | None:
    """``address`` as ``email-validator`` normalises it (the domain lower-cased, IDNA-checked),
    or None. A top-level domain of one letter or with digits is a word the caller did not
    finish ("dot c"), not an address."""
    if len(address) > _MAX_EMAIL_CHARS:
        return None
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return None
    top = checked.domain.rsplit(".", 1)[-1]
    return checked.normalized if len(top) >= 2 and top.isalpha() else None


def extract_phone(text: str, ctx: Context) -> Extraction | None:
    """The longest run of digits said together; "plus" starts an international number."""
    toks = tokens(text)
    runs: list[tuple[str, bool]] = []  # (digits, led by "plus")
    digits, plus = "", False
    i = 0
    while i < len(toks):
        token = toks[i]
        said, i_next = _phone_digits(toks, i)
        if said:
            digits += said
        elif token in ("+", "plus"):
            runs.append((digits, plus))
            digits, plus = "", True
        elif not (digits and token in _PHONE_FILLERS):
            runs.append((digits, plus))
            digits, plus = "", False
        i = i_next
    runs.append((digits, plus))
    longest, led_by_plus = max(runs, key=lambda run: len(run[0]))
    return _phone_value(longest, led_by_plus, ctx.region)


def _phone_digits(toks: Sequence[str], i: int) -> tuple[str, int]:
    """Digits said at ``toks[i]`` ("five", "oh", "double five", "fifty five", "eight
    hundred", "555-1234") and the index after them; "" when ``toks[i]`` says none."""
    token = toks[i]
    following = toks[i + 1] if i + 1 < len(toks) else ""
    if token.replace("-", "").isdigit():
        return token.replace("-", ""), i + 1
    if token in UNITS and following in ("hundred", "thousand"):  # "eight hundred" is 800
        return str(UNITS[token]) + ("00" if following == "hundred" else "000"), i + 2
    if token in _DIGIT_WORDS:
        return _DIGIT_WORDS[token], i + 1
    if token in _REPEATS and following in _DIGIT_WORDS:
        return _DIGIT_WORDS[following] * _REPEATS[token], i + 2
    if token in TEENS or token in TENS:  # "fifty five", "twelve"
        found = parse_cardinal(toks, i)
        if found is not None:
            return str(found[0]), found[1]
    if token in _SOUND_ALIKES and i > 0 and toks[i - 1] in _DIGIT_WORDS:
        if following in _DIGIT_WORDS:
            return _SOUND_ALIKES[token], i + 1
    return "", i + 1


def _phone_value(digits: str, plus: bool, region: str) -> Extraction | None:
    """``digits`` in E.164 as ``phonenumbers`` reads them in ``region`` (a national number, a
    national number with its trunk "0" or "1", or one led by the international prefix, "double
    oh four four ..."); "plus" makes them international. A valid number is said explicitly; a
    merely possible one (the right length, an unassigned range) is less sure."""
    if not 7 <= len(digits) <= 15:
        return None
    try:
        number = phonenumbers.parse(f"+{digits}" if plus else digits, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None:
        possible = phonenumbers.is_possible_number_with_reason(number)
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if possible == phonenumbers.ValidationResult.IS_POSSIBLE:
            return Extraction(value=e164, confidence=0.9 if _valid(number) else 0.8)
    if plus:
        return None
    # A local number without its area code ("five five five twelve thirty four"): no E.164
    # form exists, so the digits as said, for the flow to confirm or ask again.
    return Extraction(value=digits, confidence=0.6)


def _valid(number: phonenumbers.PhoneNumber) -> bool:
    return bool(phonenumbers.is_valid_number(number))


def email_hints() -> SpeechHints:
    rules = (
        ("lead", jsgf.alt(("my email is", "my email address is", "it's", "it is", "sure it's",
                           "you can reach me at", "the email is", "um", "uh"))),
        ("tail", jsgf.alt(("please", "thanks", "thank you"))),
        ("piece", jsgf.alt((*LETTERS, *DIGITS[:1], *DIGITS[2:], *FIRST_NAMES, *LAST_NAMES))),
        ("separator", jsgf.alt(("dot", "underscore", "dash", "hyphen"))),
        ("local", "<piece> ( [ <separator> ] <piece> )*"),
        ("domain", f"{jsgf.alt(EMAIL_DOMAINS)} ( dot {jsgf.alt(TOP_LEVEL_DOMAINS)} )+"),
    )
    phrases = (
        "john dot smith at example dot com", "jane doe at gmail dot com",
        "j o h n at gmail dot com", "my email is john underscore smith at yahoo dot com",
        *(
            f"{name} at {domain} dot com"
            for name, domain in zip(FIRST_NAMES, EMAIL_DOMAINS, strict=False)
        ),
    )
    grammar = jsgf.grammar("email", "[ <lead> ] <local> at <domain> [ <tail> ]", rules)
    return SpeechHints(phrases=phrases, grammar=grammar)


def phone_hints() -> SpeechHints:
    rules = (
        ("lead", jsgf.alt(("my number is", "my phone number is", "it's", "it is",
                           "the number is", "you can reach me at", "my cell is", "um", "uh"))),
        ("tail", jsgf.alt(("please", "thanks", "thank you"))),
        ("digit", jsgf.alt(DIGITS)),
        ("group", "<digit> | double <digit> | triple <digit> | eight hundred"),
    )
    phrases = (
        "five five five one two three four five six seven",
        "my number is five five five one two three four five six seven",
        "five five five oh one two three double four five six",
        "plus four four two zero seven nine four six zero nine five eight",
    )
    grammar = jsgf.grammar("phone", "[ <lead> ] [ plus ] <group>+ [ <tail> ]", rules)
    return SpeechHints(phrases=phrases, grammar=grammar)
