"""The result type every extractor returns and the context every extractor receives."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

Choices = Sequence[str] | Mapping[str, Sequence[str]]
"""Options of a ``choice`` variable: a list of ``"option|synonym|synonym"`` strings (the part
before the first ``|`` is the canonical value) or a mapping of option to its synonyms."""


@dataclass(frozen=True, slots=True)
class Extraction:
    """One value understood in a caller's utterance.

    ``value`` is canonical for its kind (``2026-12-01``, ``15:00``, ``09:00-12:00``, ``morning``,
    ``yes``, ``+15551234567``, ``john.smith@example.com``, the option name, ``25``).
    ``confidence`` is 0.9 or more when the caller said the value explicitly, about 0.7-0.8 when
    a heuristic completed it (an hour without am/pm, a bare name) and 0.6 or less for a guess
    the flow may want to confirm.
    """

    value: str
    confidence: float


@dataclass(frozen=True, slots=True)
class ChoiceOption:
    """A choice's canonical ``value`` and every phrase (itself included) that selects it."""

    value: str
    phrases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Context:
    """What an extractor may consult besides the text: the local wall-clock time (naive) in
    the IANA ``timezone`` the flow runs in, the options of a ``choice``, and the ISO country
    (``region``) spoken phone numbers and numeric dates are read in."""

    now_local: datetime
    timezone: str
    choices: tuple[ChoiceOption, ...] = ()
    region: str = "US"


def parse_choices(choices: Choices) -> tuple[ChoiceOption, ...]:
    """Read either spelling of :data:`Choices` into options; ``ValueError`` on a bad one."""
    if isinstance(choices, str):
        raise ValueError("choices must be a list of options, not one string")
    if isinstance(choices, Mapping):
        pairs = [(str(key), tuple(str(s) for s in synonyms)) for key, synonyms in choices.items()]
    else:
        pairs = []
        for entry in choices:
            head, *rest = entry.split("|")
            pairs.append((head, tuple(rest)))
    options: list[ChoiceOption] = []
    for value, synonyms in pairs:
        value = value.strip()
        if not value:
            raise ValueError(f"empty choice option in {choices!r}")
        phrases = tuple(dict.fromkeys(p.strip() for p in (value, *synonyms) if p.strip()))
        options.append(ChoiceOption(value=value, phrases=phrases))
    return tuple(options)
