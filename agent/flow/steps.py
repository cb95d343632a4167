"""Step functions for every node type except booking and reschedule (see ``booking_steps``).

``enter_*`` runs when the conversation arrives at a node; the others answer one event in one
phase. Each returns a :class:`~agent.flow.state.Step`; none changes state (the engine applies).
"""

from __future__ import annotations

from collections.abc import Mapping

from slotline.agent.booking.speech import speak_email
from slotline.agent.flow import llm_steps, read_back
from slotline.agent.flow.corrections import email_correction_hints, heard_email
from slotline.agent.flow.messages import (
    CallerSaid,
    CallWebhook,
    CancelFinished,
    ConditionsJudged,
    Hangup,
    Listen,
    Lookup,
    ModelAnswered,
    OptOut,
    RunCancel,
    Say,
    SendSms,
    Transfer,
    Wanted,
    WebhookFinished,
    WriteLine,
)
from slotline.agent.flow.model import (
    BranchNode,
    CancelNode,
    Condition,
    ConversationNode,
    EndCallNode,
    GreetingNode,
    JumpNode,
    MessageNode,
    SendSmsNode,
    TransferNode,
    WebhookNode,
)
from slotline.agent.flow.state import (
    DO_NOT_CALL,
    OPT_OUT_GOODBYE,
    OPTED_OUT,
    READ_BACK_KINDS,
    REPROMPT_PREFIX,
    Ctx,
    Phase,
    Step,
)
from slotline.agent.flow.templates import render
from slotline.providers.base import SpeechHints
from slotline.providers.llm import rules
from slotline.providers.llm.rules.region import region_for


def said(ctx: Ctx, text: str) -> tuple[Say, ...]:
    """``Say`` the rendered template, or nothing for an empty one."""
    return (Say(render(text, ctx.variables)),) if text else ()


Prompted = GreetingNode | MessageNode | ConversationNode | EndCallNode


def line(ctx: Ctx, node: Prompted) -> tuple[Say | WriteLine, ...]:
    """The node's line: written by the model from its ``prompt`` when a model is configured,
    else its ``say`` (the fallback the validator requires beside every prompt)."""
    if not node.prompt.strip() or ctx.llm is None:
        return said(ctx, node.say)
    return (WriteLine(
        node_id=ctx.node_id,
        prompt=render(node.prompt, ctx.variables),
        fallback=render(node.say, ctx.variables),
        persona=ctx.llm.persona,
        instructions=ctx.llm.instructions,
        variables=dict(ctx.variables),
    ),)


def enter_message(ctx: Ctx, node: GreetingNode | MessageNode) -> Step:
    return Step(line(ctx, node), edge="next")


def enter_jump(ctx: Ctx, node: JumpNode) -> Step:
    return Step(edge="goto")


def enter_end_call(ctx: Ctx, node: EndCallNode) -> Step:
    return Step((*line(ctx, node), Hangup(node.reason)), phase=Phase.ENDED)


def opt_out(ctx: Ctx) -> Step:
    """The caller asked not to be called again (at any node: the engine hears it before the
    node does). ``OptOut`` comes first so the number is on the list before the goodbye says it
    is; ``opted_out`` tells the call log and the dialer what became of the call."""
    return Step((OptOut(), Say(OPT_OUT_GOODBYE), Hangup(DO_NOT_CALL)),
                variables={OPTED_OUT: "yes"}, phase=Phase.ENDED)


def enter_transfer(ctx: Ctx, node: TransferNode) -> Step:
    return Step((*said(ctx, node.say), Transfer(node.number)), phase=Phase.ENDED)


def enter_send_sms(ctx: Ctx, node: SendSmsNode) -> Step:
    sms = SendSms(render(node.template, ctx.variables), render(node.to, ctx.variables))
    return Step((sms,), edge="next")


# ---- conversation ----------------------------------------------------------------------------


def conversation_hints(node: ConversationNode) -> tuple[SpeechHints, ...]:
    found = [rules.hints(node.extractor, choices=node.choices)]
    if node.or_collect is not None:
        found.append(rules.hints(node.or_collect.extractor, choices=node.or_collect.choices))
    return tuple(found)


def listen_for(ctx: Ctx, node: ConversationNode) -> Listen:
    """What a conversation node listens for, every time it asks (again)."""
    region = region_for(ctx.region, ctx.timezone)  # a phone number's completeness needs it
    return ctx.listen(*conversation_hints(node)).expecting(node.extractor, region=region)


def enter_conversation(ctx: Ctx, node: ConversationNode) -> Step:
    listen = listen_for(ctx, node)
    return Step((*line(ctx, node), listen), phase=Phase.ANSWER)


def answer(ctx: Ctx, node: ConversationNode, event: CallerSaid) -> Step:
    """Collect the variable and go on; when the rules read nothing and a model is configured,
    ask the model; else reprompt, or after ``max_attempts`` the fallback."""
    text = event.text.strip()
    declines = node.optional and node.extractor != "yes_no"
    if text and declines and ctx.read("yes_no", text) == "no":
        return Step(edge="next")
    if text and not llm_steps.is_question_for_text(ctx, node, text):
        for want in llm_steps.wanted(node):
            value = ctx.read(want.kind, text, want.choices)
            if value is not None:  # the rules read it: the model is skipped
                return collected(ctx, node, want, value)
    if text and ctx.llm is not None:
        ask = llm_steps.ask(ctx, node, text, ctx.llm)
        return Step((ask,), phase=Phase.THINKING, attempts=ctx.attempts, questions=ctx.questions)
    return not_understood(ctx, node)


def collected(ctx: Ctx, node: ConversationNode, want: Wanted, value: str) -> Step:
    """``value`` collected into ``want``'s variable: go on. A kind often misheard (an e-mail
    address) is marked heard, so a booking reads it back before it is used; a node with
    ``read_back`` reads it back itself first."""
    if want.kind not in READ_BACK_KINDS:
        return Step(variables={want.variable: value}, edge="next")
    if node.read_back:
        return _verify(ctx, want.variable, value, ctx.attempts)
    return Step(variables={want.variable: value}, edge="next",
                heard=frozenset((want.variable,)))


def _verify(ctx: Ctx, variable: str, value: str, attempts: int) -> Step:
    """Read ``value`` back and ask whether it is right (VERIFY); it is set, not yet confirmed."""
    question = Say(read_back.verify_question(speak_email(value)))
    listen = ctx.listen(rules.hints("yes_no"), email_correction_hints(), rules.hints("email"))
    return Step((question, listen.expecting("yes_no")), variables={variable: value},
                heard=frozenset((variable,)), phase=Phase.VERIFY, attempts=attempts,
                questions=ctx.questions)


def verify_answer(ctx: Ctx, node: ConversationNode, event: CallerSaid) -> Step:
    """After "That's <address>. Is that right?": yes goes on with it confirmed; another
    address is read back instead; "no" clears it and asks the question again; an answer not
    understood asks again for a yes or no. Out of attempts, the address is cleared (never kept
    unconfirmed) and the node's fallback taken."""
    text = event.text.strip()
    current = ctx.var(node.collect)
    change = heard_email(ctx, text, read_back=current) if text else None
    if change is not None and change.email:
        return _verify(ctx, node.collect, change.email, ctx.attempts)
    answer = ctx.read("yes_no", text) if text else None
    if answer == "yes" and change is None:
        return Step(edge="next", confirmed=frozenset((node.collect,)))
    attempts = ctx.attempts + 1
    if attempts >= node.max_attempts:
        return Step(variables={node.collect: ""}, edge="fallback")
    if answer == "no" or change is not None:
        again = f"Sorry about that. {node.reprompt or node.say}"
        return Step((*said(ctx, again), listen_for(ctx, node)), variables={node.collect: ""},
                    phase=Phase.ANSWER, attempts=attempts, questions=ctx.questions)
    return _verify(ctx, node.collect, current, attempts)


def model_answered(ctx: Ctx, node: ConversationNode, event: ModelAnswered) -> Step:
    """The model's reading of the answer: a value that validates is collected; a free answer
    was spoken, so the question is asked again; anything else is an answer not understood."""
    if event.cancelled:  # the caller talked over it: listen to what they say now
        listen = listen_for(ctx, node)
        return Step((listen,), phase=Phase.ANSWER, attempts=ctx.attempts,
                    questions=ctx.questions)
    for want in llm_steps.wanted(node):
        proposed = event.values.get(want.variable, "")
        value = llm_steps.accept(ctx, want, proposed) if proposed else None
        if value is not None:
            return collected(ctx, node, want, value)
    if event.spoken:
        listen = listen_for(ctx, node)
        return Step((*said(ctx, node.say), listen), phase=Phase.ANSWER, attempts=ctx.attempts,
                    questions=ctx.questions + 1)
    return not_understood(ctx, node)


def not_understood(ctx: Ctx, node: ConversationNode) -> Step:
    attempts = ctx.attempts + 1
    if attempts >= node.max_attempts:
        return Step(edge="fallback")
    reprompt = node.reprompt or f"{REPROMPT_PREFIX} {node.say}"
    listen = listen_for(ctx, node)
    return Step((*said(ctx, reprompt), listen), phase=Phase.ANSWER, attempts=attempts,
                questions=ctx.questions)


# ---- branch ----------------------------------------------------------------------------------


def holds(condition: Condition, variables: Mapping[str, str]) -> bool:
    """Whether a variable ``condition`` holds; comparisons ignore case and surrounding spaces.
    A described one (``when``) is false here: only the model judges it."""
    if condition.variable is None:
        return False
    value = _fold(variables.get(condition.variable, ""))
    test = condition.test
    if test == "is_set":
        return value != ""
    if test == "is_not_set":
        return value == ""
    if test == "equals":
        return value == _fold(condition.equals or "")
    if test == "not_equals":
        return value != _fold(condition.not_equals or "")
    return value in {_fold(option) for option in condition.in_ or ()}


def _fold(text: str) -> str:
    return text.strip().casefold()


def enter_branch(ctx: Ctx, node: BranchNode) -> Step:
    """The first condition that holds. Variable conditions before the first described one are
    decided here (no model needed); from there on the model judges the described ones."""
    for index, condition in enumerate(node.conditions):
        if condition.when is not None and ctx.llm is not None:
            judge = llm_steps.judge(ctx, node, index, ctx.llm)
            return Step((judge,), phase=Phase.JUDGING)
        if holds(condition, ctx.variables):
            return Step(edge=f"if:{index}")
    return Step(edge="default")


def conditions_judged(ctx: Ctx, node: BranchNode, event: ConditionsJudged) -> Step:
    for index, condition in enumerate(node.conditions):
        described = condition.when is not None
        if index in event.holding if described else holds(condition, ctx.variables):
            return Step(edge=f"if:{index}")
    return Step(edge="default")


# ---- cancel and webhook ----------------------------------------------------------------------


def lookup(ctx: Ctx, reference_variable: str | None, phone_variable: str | None) -> Lookup | None:
    """How to find the caller's booking, or None when neither lookup variable is known."""
    found = Lookup(booking_reference=ctx.var(reference_variable), phone=ctx.var(phone_variable))
    return found if found.booking_reference or found.phone else None


def enter_cancel(ctx: Ctx, node: CancelNode) -> Step:
    found = lookup(ctx, node.reference_variable, node.phone_variable)
    if found is None:
        return Step(variables={"cancel_success": "no"}, edge="failure")
    return Step((*said(ctx, node.say), RunCancel(ctx.node_id, found)), phase=Phase.CANCELLING)


def cancel_finished(ctx: Ctx, node: CancelNode, event: CancelFinished) -> Step:
    if not event.success:
        return Step(variables={"cancel_success": "no"}, edge="failure")
    slot = event.cancelled
    variables = {
        "cancel_success": "yes",
        "cancelled_date": slot.date_spoken if slot else "",
        "cancelled_time": slot.time_spoken if slot else "",
        "booking_id": event.booking_id,
    }
    return Step(variables=variables, edge="success")


def enter_webhook(ctx: Ctx, node: WebhookNode) -> Step:
    sent = {name: ctx.var(name) for name in node.send}
    call = CallWebhook(ctx.node_id, node.webhook, sent)
    return Step((*said(ctx, node.say), call), phase=Phase.WEBHOOK)


def webhook_finished(ctx: Ctx, node: WebhookNode, event: WebhookFinished) -> Step:
    """Success needs every ``receive`` variable back (the success edge promises them)."""
    if not event.success or any(name not in event.variables for name in node.receive):
        return Step(edge="failure")
    return Step(variables={name: event.variables[name] for name in node.receive}, edge="success")
