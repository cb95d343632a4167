"""What the engine asks a model, and how it checks what the model answers.

The model only ever proposes: every value it returns is read again by the same rules extractor
the node uses (``"December 1st"`` becomes ``2026-12-01``) or, when already in the kind's
canonical form (``14:00-16:00``, ``+15551234567``), type-checked. A value that passes neither
counts as no answer, exactly like an utterance the rules could not read. Pure: no I/O.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

import phonenumbers

from slotline.agent.flow.messages import AskModel, JudgeConditions, Wanted
from slotline.agent.flow.model import BranchNode, ConversationNode
from slotline.agent.flow.state import Ctx, LlmSetup
from slotline.agent.flow.templates import render

MAX_FREE_ANSWERS = 3  # per visit of a node: then questions are only read for the answer
_MAX_VALUE_CHARS = 200  # longer is not a value the caller said but a model rambling

_CANONICAL: dict[str, re.Pattern[str]] = {
    "date": re.compile(r"\d{4}-\d{2}-\d{2}"),
    "time": re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d(?:-(?:[01]\d|2[0-3]):[0-5]\d)?"),
    "time_of_day": re.compile(r"morning|afternoon|evening"),
    "yes_no": re.compile(r"yes|no"),
    "phone": re.compile(r"\+[1-9]\d{6,14}"),
    "number": re.compile(r"-?\d+(?:\.\d+)?"),
}
_NAME = re.compile(r"[^\W\d_]+(?:['. -]+[^\W\d_]+){0,4}\.?")  # up to 5 words of letters
# How a spoken question starts. Only consulted for `text` nodes, whose rules accept anything.
_QUESTION = re.compile(
    r"^(?:what|when|where|which|who|why|how|do|does|did|is|are|was|can|could|will|would|"
    r"should|may|have|has)\b",
    re.IGNORECASE,
)


def wanted(node: ConversationNode) -> tuple[Wanted, ...]:
    """The node's variable, then its `or_collect` one: the order answers are accepted in."""
    found = [Wanted(node.collect, node.extractor, node.choices)]
    if node.or_collect is not None:
        also = node.or_collect
        found.append(Wanted(also.variable, also.extractor, also.choices))
    return tuple(found)


def may_answer_questions(ctx: Ctx, node: ConversationNode) -> bool:
    return ctx.llm is not None and node.answer_questions and ctx.questions < MAX_FREE_ANSWERS


def is_question_for_text(ctx: Ctx, node: ConversationNode, text: str) -> bool:
    """A `text` answer is anything, so the rules cannot tell a question from an answer: one
    that starts like a question goes to the model when the node answers questions."""
    return (node.extractor == "text" and may_answer_questions(ctx, node)
            and _QUESTION.match(text) is not None)


def ask(ctx: Ctx, node: ConversationNode, text: str, llm: LlmSetup) -> AskModel:
    return AskModel(
        node_id=ctx.node_id,
        said=text,
        question=render(node.say, ctx.variables),
        wanted=wanted(node),
        answer_questions=may_answer_questions(ctx, node),
        persona=llm.persona,
        instructions=_joined(llm.instructions, node.instructions),
        today=_today(ctx.now, ctx.timezone),
    )


def judge(ctx: Ctx, node: BranchNode, first: int, llm: LlmSetup) -> JudgeConditions:
    """Ask about every described condition from index ``first`` on (the variable ones are
    evaluated by the engine when the answer comes back)."""
    described = tuple(
        (index, condition.when)
        for index, condition in enumerate(node.conditions)
        if index >= first and condition.when is not None
    )
    return JudgeConditions(ctx.node_id, described, llm.persona,
                           _joined(llm.instructions, node.instructions))


def accept(ctx: Ctx, want: Wanted, proposed: str) -> str | None:
    """The canonical value of a model's proposal, or None when it does not validate."""
    value = proposed.strip()
    if not value or len(value) > _MAX_VALUE_CHARS:
        return None
    pattern = _CANONICAL.get(want.kind)
    if pattern is not None and pattern.fullmatch(value.lower()):
        return _checked_canonical(want.kind, value.lower())
    if want.kind == "name" and _NAME.fullmatch(value):
        # As the model wrote it: the rules would drop a hyphen or an apostrophe.
        return value.title() if value.islower() else value
    return ctx.read(want.kind, value, want.choices)


def _checked_canonical(kind: str, value: str) -> str | None:
    if kind == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            return None  # 2026-02-30
    if kind == "phone" and not _possible_number(value):
        return None  # "+10000000" has the shape of E.164 but is no number anywhere
    if kind == "time" and "-" in value:
        start, end = value.split("-")
        if end <= start:
            return None
    return value


def _possible_number(e164: str) -> bool:
    try:
        return bool(phonenumbers.is_possible_number(phonenumbers.parse(e164)))
    except phonenumbers.NumberParseException:
        return False


def _joined(*parts: str) -> str:
    return "\n".join(part.strip() for part in parts if part.strip())


def _today(now: datetime, timezone: str) -> str:
    local = now.astimezone(ZoneInfo(timezone)) if now.tzinfo is not None else now
    return f"{local:%A %Y-%m-%d %H:%M} {timezone}"
