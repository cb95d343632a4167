"""Early model requests: what the flow would ask the model if the caller's turn ended now.

While the caller pauses, the recogniser's words of the pause (its early finish) are usually
already the turn's final ones.
If the flow would hand those words to the model (the rules extractors read nothing, a branch
judges them), or its next line is one the model writes (a node with a ``prompt``:
``WriteLine``), the request can start during the end-of-turn silence instead of after it,
hiding the model's time to first token behind the endpointing wait.

Safe by construction: the question is put to a *fork* of the engine (``FlowEngine.fork``), so
nothing changes, and only a model request is ever started early — never a booking, a webhook,
an SMS, a transfer or a hang-up. If anything but speech comes before the model request in the
forked actions, there is nothing to anticipate. The request is used only if the final
transcript leads to the same request with the same conversation (``Anticipation.matches``);
otherwise it is cancelled and its answer never seen.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from slotline.agent.flow.engine import FlowEngine
from slotline.agent.flow.llm import History, LlmStats
from slotline.agent.flow.messages import (
    AskModel,
    CallerSaid,
    JudgeConditions,
    Listen,
    ModelRequest,
    Say,
    WriteLine,
)
from slotline.agent.flow.state import LISTENING
from slotline.providers.base import ChatMessage
from slotline.providers.errors import ProtocolError


@dataclass(frozen=True, slots=True)
class Ahead:
    """The model request the caller's words would lead to, and the conversation it would see."""

    request: ModelRequest | WriteLine
    history: tuple[ChatMessage, ...]


def model_request_ahead(engine: FlowEngine, history: History, text: str) -> Ahead | None:
    """What ``CallerSaid(text)`` would ask the model now; None when it would not ask it first
    (the rules read the answer, or a service, a transfer or the end of the call comes first)."""
    if not text.strip() or engine.phase not in LISTENING:
        return None
    try:
        actions = engine.fork().handle(CallerSaid(text))
    except ProtocolError:
        return None
    heard = history.copy()
    heard.caller(text)
    for action in actions:
        if isinstance(action, Say):
            heard.agent(action.text)  # said before the request, as the responder would
        elif isinstance(action, AskModel | JudgeConditions | WriteLine):
            return Ahead(action, heard.messages())
        elif not isinstance(action, Listen):
            return None
    return None


@dataclass(slots=True)
class Anticipation:
    """A model request started early, its streamed sentences kept until it is used."""

    text: str
    ahead: Ahead
    # a ModelResult for a ModelRequest, Written for a WriteLine: only the same kind of
    # request ever adopts it (``matches``)
    task: asyncio.Task[Any]
    sentences: asyncio.Queue[str | None]  # (a line's clauses)
    stats: LlmStats = field(default_factory=LlmStats)  # counted as the call's once used

    def matches(
        self, request: ModelRequest | WriteLine, history: tuple[ChatMessage, ...]
    ) -> bool:
        return self.ahead.request == request and self.ahead.history == history

    def cancel(self) -> None:
        if not self.task.done():
            self.task.cancel()
