"""``{variable}`` templates: the variables a text uses, and the text with them filled in.

Only plain names are allowed (``{user_name}``); ``{{`` and ``}}`` are literal braces. Format
specs, conversions, attribute and index access are rejected, so a template can never reach
into Python objects.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """A template that cannot be read; the message says what is wrong."""


def template_variables(text: str) -> tuple[str, ...]:
    """The distinct variable names ``text`` uses, in order; ``TemplateError`` when malformed."""
    try:
        parts = list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise TemplateError(f"malformed template ({exc}); write {{{{ and }}}} for braces") from None
    names: list[str] = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not _NAME.fullmatch(name) or spec or conversion:
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise TemplateError(f"{{{shown}}} is not a variable: write {{name}}")
        if name not in names:
            names.append(name)
    return tuple(names)


def render(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with each ``{name}`` replaced by its value ("" when unknown: a validated flow
    never uses a variable it may not have)."""
    out: list[str] = []
    for literal, name, _, _ in _FORMATTER.parse(text):
        out.append(literal)
        if name is not None:
            out.append(variables.get(name, ""))
    return "".join(out)
