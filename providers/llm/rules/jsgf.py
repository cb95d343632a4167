"""A few helpers that write JSGF grammars for the offline recogniser.

Grammars are text: ``#JSGF V1.0;``, a grammar name, one public rule and private rules.
Every terminal is a lower-case dictionary word; rule names are ``<like_this>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .vocab import ESCAPES


def alt(items: Iterable[str]) -> str:
    """``( a | b | c )`` over distinct items, in order."""
    distinct = tuple(dict.fromkeys(items))
    if not distinct:
        raise ValueError("an alternative needs at least one item")
    return "( " + " | ".join(distinct) + " )"


def opt(item: str) -> str:
    return f"[ {item} ]"


def grammar(name: str, public: str, rules: Sequence[tuple[str, str]]) -> str:
    """A JSGF grammar whose public rule ``<name>`` is ``public``, or one of the shared
    escape answers, followed by the private ``rules`` as ``(name, body)`` pairs."""
    lines = [
        "#JSGF V1.0;",
        f"grammar {name};",
        f"public <{name}> = {public} | <escape>;",
        f"<escape> = {alt(ESCAPES)};",
    ]
    lines.extend(f"<{rule}> = {body};" for rule, body in rules)
    return "\n".join(lines) + "\n"

