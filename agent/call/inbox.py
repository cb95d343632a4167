"""A call's inbox: the caller's ended turns and keypresses, in order, for the conversation task.

Bounded, because the receive loop must never wait on the conversation (it carries the audio)
and a queue that only grows is a memory leak a client can drive. A keypress that finds
``MAX_PENDING_DTMF`` keypresses still waiting is refused: a person on a keypad cannot outrun the
agent like that, a client flooding digits can, and the session reports the refusal as a
protocol error, which spends that call's error budget (``agent.call.media_socket``). Ended turns
come a few a second at most (each needs speech and then silence, and audio cannot arrive faster than
real time), so they are refused only past ``MAX_PENDING`` items in all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from slotline.agent.call.responder import DtmfPressed
from slotline.agent.call.turns import EndReason, Patience

# A keypad answer is a handful of digits (a card number 16, a date 8); twice the longest one
# covers a caller typing ahead while the agent talks.
MAX_PENDING_DTMF = 32
MAX_PENDING = 64


@dataclass(frozen=True, slots=True)
class TurnDone:
    """The turn detector ended the caller's turn (times on the server's monotonic clock)."""

    last_voiced_at: float
    decided_at: float
    reason: EndReason = "silence"
    patience: Patience = "normal"


InboxItem = TurnDone | DtmfPressed


class CallInbox:
    __slots__ = ("_dtmf_pending", "_queue")

    def __init__(self) -> None:
        self._queue: asyncio.Queue[InboxItem] = asyncio.Queue(maxsize=MAX_PENDING)
        self._dtmf_pending = 0

    def put(self, item: InboxItem) -> bool:
        """Queue ``item`` without waiting; False when it was refused (the inbox is full)."""
        is_dtmf = isinstance(item, DtmfPressed)
        if is_dtmf and self._dtmf_pending >= MAX_PENDING_DTMF:
            return False
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        self._dtmf_pending += is_dtmf
        return True

    async def get(self) -> InboxItem:
        item = await self._queue.get()
        self._dtmf_pending -= isinstance(item, DtmfPressed)
        return item
