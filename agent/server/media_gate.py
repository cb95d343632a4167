"""The door of ``/twilio/media``: a stream's ``start`` must carry its call's token.

The check happens here, before a ``CallSession`` exists, so a refused stream never reaches the
call log, the metrics of live calls or a provider. The first messages (``connected``, ``start``)
are read off the socket, the token is checked (``agent.server.stream_token``), and the socket is
handed to the session as a ``ReplayingWebSocket`` that gives those messages out again, in order,
with the token taken out of ``customParameters`` — a used token has no business in the call log or
in a flow's webhooks, where a copy could still be replayed on another worker before it expires.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import Final

from aiohttp import WSCloseCode, WSMessage, WSMsgType

from slotline.agent.call.media_socket import START_TIMEOUT_S
from slotline.agent.server.direct_ws import DirectWebSocket, Sink
from slotline.agent.server.metrics import Metrics
from slotline.agent.server.stream_token import PARAMETER, StreamTokens, UsedNonces
from slotline.providers.errors import ProtocolError
from slotline.providers.telephony import twilio_media as tw

log = logging.getLogger(__name__)

# Twilio sends `connected` then `start`; a socket that sends more than this before starting is
# not Twilio, and is not worth buffering for.
MAX_MESSAGES_BEFORE_START: Final = 8


class ReplayingWebSocket(DirectWebSocket):
    """A media socket whose first messages were read before the session took it over."""

    def __init__(self, *, max_msg_size: int) -> None:
        super().__init__(max_msg_size=max_msg_size)
        self.replay: deque[WSMessage] = deque()

    # aiohttp's signature, kept so the session calls it unchanged
    async def receive(self, timeout: float | None = None) -> WSMessage:  # noqa: ASYNC109
        if self.replay:
            return self.replay.popleft()
        return await super().receive(timeout)

    def direct(self, sink: Sink | None) -> bool:
        # not while messages wait to be replayed: the sink would take later ones before them
        return not (sink is not None and self.replay) and super().direct(sink)

    async def read_ahead(self) -> WSMessage:
        """The peer's next message, not one waiting to be replayed."""
        return await super().receive()


async def admit(
    ws: ReplayingWebSocket, tokens: StreamTokens, metrics: Metrics, shared: UsedNonces | None
) -> str | None:
    """Read up to the ``start`` and check its token. None: go ahead (the read messages wait in
    ``ws.replay``); otherwise why the stream was refused — counted in
    ``slotline_protocol_errors_total{code="stream_refused"}``, then the socket is closed."""
    stream = tw.InboundStream()
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            for _ in range(MAX_MESSAGES_BEFORE_START):
                msg = await ws.read_ahead()
                if msg.type is not WSMsgType.TEXT:
                    ws.replay.append(msg)
                    if msg.type is WSMsgType.BINARY:
                        continue  # the session reports it
                    return None  # closed before a start: no call, nothing to guard
                try:
                    parsed = stream.receive(msg.data)
                except ProtocolError:
                    ws.replay.append(msg)  # the session reports it
                    continue
                if isinstance(parsed, tw.Start):
                    refusal = await _check(ws, tokens, shared, parsed, msg)
                    if refusal is None:
                        return None
                    break
                ws.replay.append(msg)
            else:
                refusal = "no start"
    except TimeoutError:
        refusal = "no start in time"
    metrics.protocol_errors.inc("stream_refused")
    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"stream refused")
    return refusal


async def _check(
    ws: ReplayingWebSocket, tokens: StreamTokens, shared: UsedNonces | None, start: tw.Start,
    msg: WSMessage,
) -> str | None:
    token = start.custom_parameters.get(PARAMETER)
    refusal = await tokens.admit_once(start.call_sid, token, shared)
    if refusal is not None:
        log.warning("media stream refused call_sid=%s: %s stream token", start.call_sid, refusal)
        return f"{refusal} token"
    ws.replay.append(WSMessage(WSMsgType.TEXT, _without_token(msg.data), None))
    return None


def _without_token(text: str) -> str:
    """The start message as received, less ``customParameters.token`` (it parsed already, so
    it is a JSON object with a ``start`` object)."""
    message = json.loads(text)
    params = message["start"].get("customParameters")
    if isinstance(params, dict):
        params.pop(PARAMETER, None)
    return json.dumps(message)
