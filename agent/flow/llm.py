"""The LLM's jobs in a flow, performed through the ``ChatModel`` protocol (no other I/O).

The engine asks (``AskModel``, ``JudgeConditions`` in :mod:`agent.flow.messages`); the
responder hands the request to :class:`LlmPerformer` with the conversation so far
(:class:`History`) and gives the engine the result:

- extraction: a tool ``record_answer`` whose parameters are the node's variables with their
  extractor's type (``{"user_email": {"type": "string", "format": "email"}}``); the values come
  back as text and the engine re-reads them (``agent.flow.llm_steps.accept``);
- free answers (``answer_questions``): text the model writes instead of calling the tool is
  spoken clause by clause while it streams, then the node asks its question again;
- described branch conditions: a tool ``judge_conditions`` with one boolean per condition;
- lines (``WriteLine``, a node with a ``prompt``): the model writes the agent's line from the
  prompt, the conversation and the flow's variables; each clause is spoken as soon as it is
  complete (:mod:`agent.flow.clauses`), so the caller hears the first clause while the rest is
  still being written.

The context is the flow's persona and instructions, the node's instructions, and only what the
caller heard: :class:`History` replaces an agent line cut by barge-in with its heard part.

Every request is bounded by ``timeout_s``. A model that fails or runs out of time yields an
empty result (no values, nothing said, every condition false) and is reported to
``on_error``; text already spoken before the failure still counts as said. A line is bounded
by ``timeout_s`` to its first token and then by ``line_stall_s`` between tokens (the caller
is listening to silence meanwhile); a line that fails keeps what was spoken and is ended by
the node's ``say`` (the responder speaks it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import asdict, dataclass
from typing import Any

from slotline.agent.flow.clauses import ClauseSplitter
from slotline.agent.flow.messages import (
    AskModel,
    ConditionsJudged,
    JudgeConditions,
    ModelAnswered,
    ModelRequest,
    ModelResult,
    Wanted,
    WriteLine,
)
from slotline.providers.base import (
    ChatMessage,
    ChatModel,
    TextDelta,
    ToolCall,
    ToolCallsReady,
    ToolSpec,
)
from slotline.providers.errors import ProviderError, ProviderTimeout

log = logging.getLogger(__name__)

# A spoken turn: the caller is waiting in silence while the model thinks, and a hosted model
# answers in well under a second; past this a reprompt serves the caller better than waiting.
DEFAULT_LLM_TIMEOUT_S = 4.0
PROVIDER = "llm"  # the metrics label of a request that ran out of our own time budget
RECORD_TOOL = "record_answer"
JUDGE_TOOL = "judge_conditions"
MAX_HISTORY = 16  # lines of conversation sent as context (a booking call has about a dozen)
# Between two tokens of a line being spoken: a hosted model streams ~50 tokens a second, so a
# gap this long is a stalled stream, and the caller is already hearing silence.
LINE_STALL_S = 1.5
# The line the emulated model (providers.emulators.openai) echoes; a real model reads it as
# the author's example of what to say.
EXAMPLE_LINE = "Example line"

# JSON Schema of a value of each extractor kind, as the model should write it.
_KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "text": {"type": "string", "description": "What the caller said, in a few words."},
    "name": {"type": "string", "description": "The caller's name as they said it."},
    "email": {"type": "string", "format": "email"},
    "phone": {"type": "string", "description": "E.164, e.g. +15551234567."},
    "date": {"type": "string", "format": "date", "description": "YYYY-MM-DD."},
    "time": {"type": "string", "description": "24-hour HH:MM, or a range HH:MM-HH:MM.",
             "pattern": r"^\d{2}:\d{2}(-\d{2}:\d{2})?$"},  # fmt: skip
    "time_of_day": {"type": "string", "enum": ["morning", "afternoon", "evening"]},
    "yes_no": {"type": "boolean"},
    "number": {"type": "number"},
    "timezone": {"type": "string", "description": "IANA zone, e.g. America/Chicago."},
}


def value_schema(want: Wanted) -> dict[str, Any]:
    """The JSON Schema of one wanted variable (a choice is an enum of its option values)."""
    if want.kind == "choice":
        return {"type": "string", "enum": [c.split("|")[0].strip() for c in want.choices]}
    return dict(_KIND_SCHEMAS[want.kind])


def record_tool(wanted: tuple[Wanted, ...]) -> ToolSpec:
    parameters = {
        "type": "object",
        "properties": {w.variable: value_schema(w) for w in wanted},
        "required": [wanted[0].variable] if len(wanted) == 1 else [],
        "additionalProperties": False,
    }
    return ToolSpec(RECORD_TOOL, "Record the caller's answer to the agent's question.",
                    json.dumps(parameters))


def judge_tool(conditions: tuple[tuple[int, str], ...]) -> ToolSpec:
    properties = {f"condition_{i}": {"type": "boolean", "description": when}
                  for i, when in conditions}  # fmt: skip
    parameters = {"type": "object", "properties": properties, "required": list(properties),
                  "additionalProperties": False}  # fmt: skip
    return ToolSpec(JUDGE_TOOL, "Say which statements about the caller are true.",
                    json.dumps(parameters))


# ---- the conversation the model sees ---------------------------------------------------------


class History:
    """The conversation as the caller experienced it: their words and the agent lines they
    heard. An agent line cut by barge-in keeps only its heard part (``ReplyInterrupted``
    reports it for the last line cut; earlier lines of the same reply, still queued for
    playout when the caller spoke, are kept whole: the session reports no more than that)."""

    def __init__(self, max_lines: int = MAX_HISTORY) -> None:
        self._lines: deque[tuple[str, str]] = deque(maxlen=max_lines)

    def copy(self) -> History:
        twin = History(self._lines.maxlen or MAX_HISTORY)
        twin._lines.extend(self._lines)
        return twin

    def caller(self, text: str) -> None:
        if text.strip():
            self._lines.append(("user", text.strip()))

    def agent(self, text: str) -> None:
        if text.strip():
            self._lines.append(("assistant", text.strip()))

    def interrupted(self, heard_text: str) -> None:
        for index in range(len(self._lines) - 1, -1, -1):
            if self._lines[index][0] == "assistant":
                if heard_text.strip():
                    self._lines[index] = ("assistant", heard_text.strip())
                else:
                    del self._lines[index]
                return

    def messages(self) -> tuple[ChatMessage, ...]:
        """Consecutive lines of one speaker merged (some servers require alternation)."""
        merged: list[tuple[str, str]] = []
        for role, text in self._lines:
            if merged and merged[-1][0] == role:
                merged[-1] = (role, f"{merged[-1][1]} {text}")
            else:
                merged.append((role, text))
        return tuple(ChatMessage(role, text) for role, text in merged)


# ---- prompts ---------------------------------------------------------------------------------


def _context(persona: str, instructions: str) -> list[str]:
    lines = ["You help the agent of a phone call. Everything you write is spoken aloud."]
    if persona:
        lines.append(f"The agent: {persona}")
    if instructions:
        lines.append(f"Instructions:\n{instructions}")
    return lines


def ask_prompt(request: AskModel) -> str:
    names = " or ".join(w.variable for w in request.wanted)
    lines = [
        *_context(request.persona, request.instructions),
        f"Today is {request.today}.",
        f'The agent asked: "{request.question}"',
        f"If the caller's last words give {names}, call {RECORD_TOOL} with it and write "
        "nothing. Never record a value the caller did not say.",
    ]
    if request.answer_questions:
        lines.append(
            "If instead the caller asks a question, answer it in one or two short sentences, "
            "using only the instructions above; if they do not cover it, say you are not sure. "
            "Do not ask the agent's question: the agent asks it again after your answer."
        )
    lines.append("Otherwise do not call the tool and write nothing.")
    return "\n".join(lines)


def judge_prompt(request: JudgeConditions) -> str:
    listed = "\n".join(f"condition_{i}: {when}" for i, when in request.conditions)
    return "\n".join((
        *_context(request.persona, request.instructions),
        "From the conversation so far, judge whether each statement below is true of the "
        f"caller, and call {JUDGE_TOOL} with true or false for each (false when unsure). "
        "Write nothing else.",
        listed,
    ))


def line_prompt(line: WriteLine) -> str:
    lines = [
        *_context(line.persona, line.instructions),
        "Write the agent's next line of this phone call: only the words to say, in one to "
        "three short sentences, with no lists, markup or stage directions. Do not repeat what "
        "the agent already said.",
        f"What the line should do: {line.prompt}",
    ]
    known = {k: v for k, v in line.variables.items() if v}
    if known:
        facts = "\n".join(f"- {k}: {v}" for k, v in sorted(known.items()))
        lines.append(f"Known so far:\n{facts}")
    lines.append(f'{EXAMPLE_LINE}: "{line.fallback}"')
    return "\n".join(lines)


def line_messages(line: WriteLine, history: tuple[ChatMessage, ...]) -> tuple[ChatMessage, ...]:
    return (ChatMessage("system", line_prompt(line)), *history)


def request_messages(
    request: ModelRequest, history: tuple[ChatMessage, ...]
) -> tuple[ChatMessage, ...]:
    """System prompt, then the conversation; an extraction ends on the caller's words."""
    if isinstance(request, JudgeConditions):
        return (ChatMessage("system", judge_prompt(request)), *history)
    said = request.said.strip()
    if not history or history[-1] != ChatMessage("user", said):
        history = (*history, ChatMessage("user", said))
    return (ChatMessage("system", ask_prompt(request)), *history)


# ---- reading the model's answers -------------------------------------------------------------


def _arguments(calls: tuple[ToolCall, ...], name: str) -> dict[str, Any]:
    """The JSON object of the first call to ``name``; {} when there is none or it is not one."""
    for call in calls:
        if call.name == name:
            try:
                arguments = json.loads(call.arguments or "{}")
            except ValueError:
                log.info("model called %s with arguments that are not JSON", name)
                return {}
            return arguments if isinstance(arguments, dict) else {}
    return {}


def parse_values(calls: tuple[ToolCall, ...], wanted: tuple[Wanted, ...]) -> dict[str, str]:
    """The wanted variables the model recorded, as text (a boolean as yes/no)."""
    arguments = _arguments(calls, RECORD_TOOL)
    found: dict[str, str] = {}
    for want in wanted:
        value = arguments.get(want.variable)
        if isinstance(value, bool):
            found[want.variable] = "yes" if value else "no"
        elif isinstance(value, int | float):
            found[want.variable] = f"{value:g}"
        elif isinstance(value, str) and value.strip():
            found[want.variable] = value.strip()
    return found


def parse_judgement(
    calls: tuple[ToolCall, ...], conditions: tuple[tuple[int, str], ...]
) -> frozenset[int]:
    """Indices of the conditions judged true (only a JSON ``true`` counts)."""
    arguments = _arguments(calls, JUDGE_TOOL)
    return frozenset(i for i, _ in conditions if arguments.get(f"condition_{i}") is True)


def nothing(request: ModelRequest, reason: str, spoken: str = "") -> ModelResult:
    """The result of a request the model could not answer: no match, every condition false."""
    if isinstance(request, JudgeConditions):
        return ConditionsJudged(request.node_id, reason=reason)
    return ModelAnswered(request.node_id, spoken=spoken, reason=reason)


# ---- the performer ---------------------------------------------------------------------------


@dataclass(slots=True)
class LlmStats:
    """One call's use of the model, for the call log and metrics."""

    caller_turns: int = 0  # caller utterances (and keys) the flow handled
    llm_turns: int = 0  # ... of which asked the model at least once
    extractions: int = 0  # AskModel requests
    free_answers: int = 0  # AskModel requests answered by speaking
    judgements: int = 0  # JudgeConditions requests
    failures: int = 0  # requests that failed or timed out
    cancelled: int = 0  # generations cut off by barge-in
    lines: int = 0  # WriteLine requests (agent lines the model wrote)
    early_started: int = 0  # requests started on the settled words of a pause
    early_used: int = 0  # ... whose final transcript said the same (the answer was used)

    @property
    def turns_without_llm(self) -> int:
        """Caller turns the rules answered alone ("turns that skipped the LLM")."""
        return self.caller_turns - self.llm_turns

    def add(self, other: LlmStats) -> None:
        """Count ``other``'s requests as this call's (an anticipated request, once used)."""
        for name in ("extractions", "free_answers", "judgements", "failures", "lines"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "turns_without_llm": self.turns_without_llm}


class LlmPerformer:
    """Runs one model request at a time for one call. ``on_error`` hears every failure
    (``ProviderError``; ``ProviderTimeout`` labelled ``llm`` when our own budget ran out)."""

    def __init__(
        self,
        model: ChatModel,
        *,
        timeout_s: float = DEFAULT_LLM_TIMEOUT_S,
        on_error: Callable[[ProviderError], None] | None = None,
        stats: LlmStats | None = None,
        line_stall_s: float = LINE_STALL_S,
    ) -> None:
        self._model = model
        self._timeout_s = timeout_s
        self._line_stall_s = line_stall_s
        self._on_error = on_error
        self.stats = stats if stats is not None else LlmStats()

    async def perform(
        self,
        request: ModelRequest,
        history: tuple[ChatMessage, ...],
        speak: Callable[[str], None],
        *,
        call_sid: str = "",
        stats: LlmStats | None = None,
    ) -> ModelResult:
        """The model's answer to ``request``. Free-answer sentences go to ``speak`` as they
        stream. Never raises but ``CancelledError`` (barge-in: the generation is closed and
        its tool calls are dropped). ``stats``: where it is counted (default ``self.stats``;
        an anticipated request is counted only if it is used)."""
        stats = self.stats if stats is None else stats
        if isinstance(request, AskModel):
            stats.extractions += 1
            tools = (record_tool(request.wanted),)
        else:
            stats.judgements += 1
            tools = (judge_tool(request.conditions),)
        messages = request_messages(request, history)
        sentences = _Sentences(speak if isinstance(request, AskModel) and
                               request.answer_questions else None)
        calls: tuple[ToolCall, ...] = ()
        try:
            async with asyncio.timeout(self._timeout_s):
                async with aclosing(self._model.stream(messages, tools=tools)) as events:
                    async for event in events:
                        if isinstance(event, TextDelta):
                            sentences.feed(event.text)
                        elif isinstance(event, ToolCallsReady):
                            calls = event.calls
            sentences.flush()
        except (ProviderError, TimeoutError) as exc:
            error = exc if isinstance(exc, ProviderError) else ProviderTimeout(
                PROVIDER, f"no answer within {self._timeout_s:.1f} s")
            return self._failed(request, error, sentences.spoken, call_sid, stats)
        except Exception:  # a bug in a model adapter must cost one answer, not the call
            log.exception("call_sid=%s model request failed at node %s", call_sid,
                          request.node_id)
            return self._failed(request, None, sentences.spoken, call_sid, stats)
        if isinstance(request, JudgeConditions):
            holding = parse_judgement(calls, request.conditions)
            log.info("call_sid=%s node %s: conditions judged true: %s", call_sid,
                     request.node_id, sorted(holding))
            return ConditionsJudged(request.node_id, holding)
        values = parse_values(calls, request.wanted)
        if sentences.spoken:
            stats.free_answers += 1
        log.info("call_sid=%s node %s: model recorded %s%s", call_sid, request.node_id,
                 sorted(values) or "nothing", ", answered a question" if sentences.spoken else "")
        return ModelAnswered(request.node_id, values, spoken=sentences.spoken)

    async def write(
        self,
        line: WriteLine,
        history: tuple[ChatMessage, ...],
        speak: Callable[[str], None],
        *,
        call_sid: str = "",
        stats: LlmStats | None = None,
    ) -> Written:
        """Have the model write ``line``; each clause goes to ``speak`` as soon as it is
        complete. Never raises but ``CancelledError`` (barge-in closes the stream): a failure,
        a timeout or a line with no words is ``Written(finished=False)`` and reported.
        ``stats``: where it is counted (default ``self.stats``), as in ``perform``."""
        stats = self.stats if stats is None else stats
        stats.lines += 1
        clauses = ClauseSplitter()
        spoken: list[str] = []

        def say(found: list[str]) -> None:
            for clause in found:
                spoken.append(clause)
                speak(clause)

        loop = asyncio.get_running_loop()
        stall_s = self._line_stall_s
        error: ProviderError | None = None
        try:
            async with asyncio.timeout(self._timeout_s) as budget:
                stream = self._model.stream(line_messages(line, history))
                async with aclosing(stream) as events:
                    async for event in events:
                        if isinstance(event, TextDelta) and event.text:
                            say(clauses.feed(event.text))
                            budget.reschedule(loop.time() + stall_s)
            say(clauses.flush())
        except (ProviderError, TimeoutError) as exc:
            error = exc if isinstance(exc, ProviderError) else ProviderTimeout(
                PROVIDER, "the line stalled" if spoken or clauses.pending else
                f"no first token within {self._timeout_s:.1f} s")
        except Exception:  # a bug in a model adapter must cost one line, not the call
            log.exception("call_sid=%s line failed at node %s", call_sid, line.node_id)
            error = ProviderError(PROVIDER, "the model adapter failed")
        if error is None and spoken:
            log.info("call_sid=%s node %s: model wrote %d clauses", call_sid, line.node_id,
                     len(spoken))
            return Written(" ".join(spoken), finished=True)
        stats.failures += 1
        error = error or ProviderError(PROVIDER, "the model wrote no words")
        log.warning("call_sid=%s line at node %s failed after %d clauses: %s", call_sid,
                    line.node_id, len(spoken), error)
        if self._on_error is not None:
            self._on_error(error)
        return Written(" ".join(spoken), finished=False)

    def _failed(
        self,
        request: ModelRequest,
        error: ProviderError | None,
        spoken: str,
        call_sid: str,
        stats: LlmStats,
    ) -> ModelResult:
        stats.failures += 1
        if error is not None:
            log.warning("call_sid=%s model request failed at node %s: %s", call_sid,
                        request.node_id, error)
            if self._on_error is not None:
                self._on_error(error)
        if spoken:
            stats.free_answers += 1
        reason = "timeout" if isinstance(error, ProviderTimeout) else "error"
        return nothing(request, reason, spoken)


@dataclass(frozen=True, slots=True)
class Written:
    """A line the model wrote: what was spoken, and whether the model finished it (False:
    the node's ``say`` ends it)."""

    spoken: str
    finished: bool


class _Sentences:
    """Streamed text to clauses for ``speak``, as a line is (None: the text is not spoken)."""

    __slots__ = ("_clauses", "_said", "_speak")

    def __init__(self, speak: Callable[[str], None] | None) -> None:
        self._speak = speak
        self._clauses = ClauseSplitter()
        self._said: list[str] = []

    @property
    def spoken(self) -> str:
        return " ".join(self._said)

    def feed(self, text: str) -> None:
        if self._speak is not None:
            self._say(self._clauses.feed(text))

    def flush(self) -> None:
        if self._speak is not None:
            self._say(self._clauses.flush())

    def _say(self, clauses: list[str]) -> None:
        assert self._speak is not None
        for clause in clauses:
            self._said.append(clause)
            self._speak(clause)
