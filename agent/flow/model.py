"""Flow files as typed, frozen models (the Flow Designer model), and the JSON Schema they define.

A flow file is YAML::

    name: demo_booking
    agent_name: Ava
    start: greet
    intents:
      - {phrases: ["cancel my appointment"], goto: cancel}
    nodes:
      greet:    {type: greeting, say: "Hi, this is {agent_name}.", next: ask_name}
      ask_name: {type: conversation, say: "May I have your name?", collect: user_name,
                 extractor: name, next: goodbye}
      goodbye:  {type: end_call, say: "Thanks {user_name}, goodbye!"}

Every node has a ``type``; the fields naming another node (``next``, ``fallback``, ``success``,
``failure``, ``goto``, ``default`` and a branch condition's ``goto``) are its edges (see
:mod:`agent.flow.table`). Texts are templates over the flow's variables (``{user_name}``).
The models only check each node on its own; :func:`agent.flow.validate.validate` checks the
flow as a whole (edges, reachability, which variables are known where).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

ExtractorKind = Literal[
    "text", "name", "email", "phone", "date", "time", "time_of_day", "yes_no", "choice", "number",
    "timezone",
]
"""What a conversation node's answer is read as (``providers.llm.rules.KINDS``)."""

NODE_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
VARIABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
NodeId = Annotated[str, Field(pattern=NODE_ID_PATTERN, description="A node id in `nodes`.")]
VarName = Annotated[str, Field(pattern=VARIABLE_PATTERN, description="A flow variable name.")]
Template = Annotated[str, Field(description="Text to speak; `{variable}` inserts a variable.")]


def _scalar_text(value: object) -> object:
    """YAML reads ``yes``/``true`` as booleans and ``5`` as a number; variables are text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)
    return value


Value = Annotated[
    str, BeforeValidator(_scalar_text, json_schema_input_type=str | int | float | bool)
]


class FieldError(ValueError):
    """A check across fields failed; ``field`` names the one to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class _Node(_Model):
    description: str = Field(default="", description="A note for people reading the flow.")


PROMPT_NEEDS_SAY = (
    "required with `prompt`: the line said instead when no model is configured "
    "(llm.provider: rules) or the model fails before it has said anything"
)


class _Prompted(_Node):
    """A node whose line the model may write (the conversation node of Synthflow): with a
    model configured, ``prompt`` and the conversation so far give the line, streamed to speech
    clause by clause; ``say`` is still required, as the line spoken without a model and the
    one that ends a line the model failed to finish (``agent.flow.llm.LlmPerformer.write``)."""

    prompt: Template = Field(
        default="",
        description="What the model should say here, in words (\"greet the caller and offer "
        "to book a demo\"); the model writes the line from it, the conversation so far and "
        "the flow's variables. `say` is the line without a model.",
    )

    @model_validator(mode="after")
    def _prompt_has_fallback(self) -> _Prompted:
        if self.prompt.strip() and not getattr(self, "say", "").strip():
            raise FieldError("say", PROMPT_NEEDS_SAY)
        return self


class GreetingNode(_Prompted):
    """What the agent says first."""

    type: Literal["greeting"]
    say: Template
    next: NodeId


class MessageNode(_Prompted):
    """Say something, then go on."""

    type: Literal["message"]
    say: Template
    next: NodeId


class AlsoCollect(_Model):
    """A second variable the same question may be answered with ("morning" for "what time?")."""

    variable: VarName
    extractor: ExtractorKind
    choices: tuple[str, ...] = ()


class ConversationNode(_Prompted):
    """Ask, then collect one variable from the caller's answer."""

    type: Literal["conversation"]
    say: Template
    collect: VarName
    extractor: ExtractorKind
    choices: tuple[str, ...] = Field(
        default=(), description='Options of a `choice`: "value|synonym|synonym".'
    )
    or_collect: AlsoCollect | None = Field(
        default=None, description="Tried when the answer does not give `collect`."
    )
    optional: bool = Field(
        default=False, description="A 'no' (thanks) from the caller skips the question."
    )
    reprompt: Template = Field(default="", description="Said after an answer not understood.")
    max_attempts: int = Field(
        default=2, ge=1, le=5, description="Answers heard before the `fallback` edge."
    )
    read_back: bool = Field(
        default=False,
        description="Read an e-mail address back as heard (\"That's j o h n at gmail dot com. "
        "Is that right?\") and go on only once the caller says it is: for an address used "
        "before a booking (which reads back one not yet confirmed with the slot). Only with "
        "the email extractor.",
    )
    answer_questions: bool = Field(
        default=False,
        description="With a model provider: a question from the caller (\"do you have "
        "parking?\") gets a short answer within the instructions, then the question is asked "
        "again. No effect with llm.provider: rules.",
    )
    instructions: str = Field(
        default="", description="What the model may say at this node (with the flow's persona)."
    )
    next: NodeId
    fallback: NodeId | None = Field(
        default=None, description="Where to go when no answer was understood; none = end politely."
    )

    @model_validator(mode="after")
    def _read_back_email(self) -> ConversationNode:
        if self.read_back and self.extractor != "email":
            raise FieldError("read_back", "read_back is for the email extractor only")
        return self

    @model_validator(mode="after")
    def _choices_match_kind(self) -> ConversationNode:
        for kind, choices, where in _kinds_and_choices(self):
            if kind == "choice" and not choices:
                raise FieldError(where, "the choice extractor needs `choices`")
            if kind != "choice" and choices:
                raise FieldError(where, f"`choices` only apply to the choice extractor, not {kind}")
        return self


def _kinds_and_choices(node: ConversationNode) -> list[tuple[str, tuple[str, ...], str]]:
    found: list[tuple[str, tuple[str, ...], str]] = [(node.extractor, node.choices, "choices")]
    if node.or_collect is not None:
        found.append((node.or_collect.extractor, node.or_collect.choices, "or_collect.choices"))
    return found


class Condition(_Model):
    """One branch condition and where to go when it holds: a variable with exactly one test, or
    `when`, a condition described in words that the model judges (false without a model)."""

    variable: VarName | None = None
    equals: Value | None = None
    not_equals: Value | None = None
    in_: tuple[Value, ...] | None = Field(default=None, alias="in")
    is_set: Literal[True] | None = None
    is_not_set: Literal[True] | None = None
    when: str | None = Field(
        default=None,
        min_length=1,
        description='Described in words ("the caller sounds like an existing customer") and '
        "judged by the model; always false with llm.provider: rules.",
    )
    goto: NodeId

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        if self.when is not None:
            if self.variable is not None or self.tests():
                raise FieldError("when", "a described condition (`when`) takes no variable "
                                 "or test")
            return self
        if self.variable is None:
            raise FieldError("variable", "required: a variable with one test, or `when` "
                             "(a condition described in words)")
        if len(self.tests()) != 1:
            raise FieldError("", "give exactly one of equals, not_equals, in, is_set, is_not_set")
        return self

    def tests(self) -> list[str]:
        """The names of the tests given (exactly one once validated, none when described)."""
        given = {
            "equals": self.equals,
            "not_equals": self.not_equals,
            "in": self.in_,
            "is_set": self.is_set,
            "is_not_set": self.is_not_set,
        }
        return [name for name, value in given.items() if value is not None]

    @property
    def test(self) -> str:
        """The test's name; "when" for a described condition."""
        return "when" if self.when is not None else self.tests()[0]


class BranchNode(_Node):
    """Go to the first condition's `goto` that holds, else `default`."""

    type: Literal["branch"]
    conditions: tuple[Condition, ...] = Field(min_length=1)
    instructions: str = Field(
        default="", description="Guidance for the model judging the described conditions."
    )
    default: NodeId


class BookingNode(_Node):
    """Book with a configured booking action; offers alternatives when the time is not free."""

    type: Literal["booking"]
    action: str = Field(min_length=1, description="A name in `booking_actions` of the config.")
    say: Template = Field(default="", description='Said on entering ("Let me check.").')
    confirm: bool = Field(
        default=False,
        description="Ask yes/no before booking a slot. Asked anyway while an e-mail address "
        "the caller gave is not yet confirmed: it is read back in the same question.",
    )
    max_attempts: int = Field(default=2, ge=1, le=5)
    success: NodeId
    failure: NodeId | None = None


class RescheduleNode(_Node):
    """Find a booking (by reference or phone) and move it to the preferred time."""

    type: Literal["reschedule"]
    action: str = Field(default="", description='"" = the action the booking was made with.')
    reference_variable: VarName | None = None
    phone_variable: VarName | None = None
    say: Template = ""
    confirm: bool = False
    max_attempts: int = Field(default=2, ge=1, le=5)
    success: NodeId
    failure: NodeId | None = None

    @model_validator(mode="after")
    def _has_lookup(self) -> RescheduleNode:
        _require_lookup(self.reference_variable, self.phone_variable)
        return self


class CancelNode(_Node):
    """Find a booking (by reference or phone) and cancel it."""

    type: Literal["cancel"]
    reference_variable: VarName | None = None
    phone_variable: VarName | None = None
    say: Template = ""
    success: NodeId
    failure: NodeId | None = None

    @model_validator(mode="after")
    def _has_lookup(self) -> CancelNode:
        _require_lookup(self.reference_variable, self.phone_variable)
        return self


def _require_lookup(reference_variable: str | None, phone_variable: str | None) -> None:
    if reference_variable is None and phone_variable is None:
        raise FieldError(
            "reference_variable", "give reference_variable, phone_variable or both (the lookup)"
        )


class JumpNode(_Node):
    type: Literal["jump"]
    goto: NodeId


class TransferNode(_Node):
    """Hand the call to a person; the flow ends here."""

    type: Literal["transfer"]
    say: Template = ""
    number: str = Field(pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164 number.")


class SendSmsNode(_Node):
    type: Literal["send_sms"]
    template: Template
    to: Template = Field(default="", description='"" = the caller.')
    next: NodeId


class WebhookNode(_Node):
    """A custom action (e.g. take a deposit): variables in, variables out, success or failure."""

    type: Literal["webhook"]
    webhook: str = Field(min_length=1, description="The custom action's name (its URL is config).")
    say: Template = ""
    send: tuple[VarName, ...] = ()
    receive: tuple[VarName, ...] = Field(
        default=(), description="Variables the action must return for the success edge."
    )
    success: NodeId
    failure: NodeId | None = None


class EndCallNode(_Prompted):
    type: Literal["end_call"]
    say: Template = ""
    reason: str = "completed"


Node = Annotated[
    GreetingNode | MessageNode | ConversationNode | BranchNode | BookingNode | RescheduleNode
    | CancelNode | JumpNode | TransferNode | SendSmsNode | WebhookNode | EndCallNode,
    Field(discriminator="type"),
]
NODE_MODELS: Mapping[str, type[_Node]] = {
    "greeting": GreetingNode,
    "message": MessageNode,
    "conversation": ConversationNode,
    "branch": BranchNode,
    "booking": BookingNode,
    "reschedule": RescheduleNode,
    "cancel": CancelNode,
    "jump": JumpNode,
    "transfer": TransferNode,
    "send_sms": SendSmsNode,
    "webhook": WebhookNode,
    "end_call": EndCallNode,
}
"""Node type name -> model; the order is the order node types are documented in."""


class Intent(_Model):
    """A global intent: a caller utterance with one of `phrases` (or all `keywords`), heard
    while the agent waits for an answer anywhere in the flow, jumps to `goto`."""

    name: str = ""
    phrases: tuple[str, ...] = Field(default=(), description="Said anywhere in the utterance.")
    keywords: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9']+$")], ...] = Field(
        default=(), description="Single words that must all be said, in any order."
    )
    goto: NodeId

    @model_validator(mode="after")
    def _has_words(self) -> Intent:
        if not self.phrases and not self.keywords:
            raise FieldError("phrases", "an intent needs phrases or keywords")
        return self


class FlowHeader(_Model):
    """Everything in a flow file but its nodes."""

    name: str = Field(min_length=1)
    description: str = ""
    persona: str = Field(default="", description="How the agent behaves (for model providers).")
    instructions: str = Field(
        default="",
        description="What the agent may talk about (hours, address, prices) for model providers; "
        "with `persona`, part of every model request.",
    )
    agent_name: str = Field(default="", description="Available to templates as {agent_name}.")
    timezone: str = Field(
        default="",
        description="IANA zone of the business (empty: its calendar's). Each caller hears and "
        "books times in their own zone: the user_timezone call parameter, else their number's, "
        "else this one; they may also say theirs.",
    )
    region: str = Field(
        default="", pattern=r"^([A-Z]{2})?$",
        description="ISO country (GB, US) spoken phone numbers and numeric dates are read in; "
        "empty: the `region` setting, else the country of the time zone.",
    )
    variables: dict[VarName, Value] = Field(
        default_factory=dict, description="Defaults; a call parameter of the same name wins."
    )
    start: NodeId
    intents: tuple[Intent, ...] = ()

    def initial_variables(self) -> dict[str, str]:
        """The variables every call starts with: ``agent_name``, ``user_timezone``, defaults."""
        found: dict[str, str] = {}
        if self.agent_name:
            found["agent_name"] = self.agent_name
        if self.timezone:
            found["user_timezone"] = self.timezone
        found.update(self.variables)
        return found


class Flow(FlowHeader):
    nodes: dict[NodeId, Node] = Field(min_length=1)


def flow_json_schema() -> dict[str, Any]:
    """The JSON Schema of flow files (what ``agent/flow/flow.schema.json`` holds)."""
    schema = Flow.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://slotline.dev/schemas/flow.schema.json",
        **schema,
        "title": "Slotline flow",
    }
