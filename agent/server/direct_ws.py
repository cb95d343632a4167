"""A server WebSocket whose text messages can be handled where they are parsed, not awaited.

``web.WebSocketResponse.receive`` hands each message over through a queue: the parser, running
in the protocol's ``data_received``, appends it and wakes the receiving task through a future;
the loop schedules that task; the task resumes through five coroutine frames. For a call's
media, 50 messages a second that the per-frame path handles in microseconds and without
awaiting anything, that hand-over costs as much as the handling (``slotline bench``'s profile,
issue 16). ``DirectWebSocket.direct(sink)`` offers each text message to ``sink(text)`` first,
right where it is parsed; the sink returns False for anything it does not take, which then
goes the usual way, to ``receive()``, in order: while a message waits there, later ones wait
behind it, so the two paths never reorder messages.

It reaches into aiohttp (the queue the frame parser feeds is built in ``_post_start``). Where
that is not aiohttp 3.14's shape, ``direct`` returns False and every message is received as
before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

Sink = Callable[[str], bool]  # True: the text message was handled (it is not received)

try:  # aiohttp's own queue and frame parser, as ``WebSocketResponse._post_start`` builds them
    from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
    from aiohttp.helpers import DEFAULT_CHUNK_SIZE
except ImportError:  # another aiohttp: no direct path
    _READER = False
else:
    _READER = True

_TEXT = WSMsgType.TEXT


if _READER:

    class _OfferingQueue(WebSocketDataQueue):
        """aiohttp's message queue, offering each text message to ``sink`` before queueing."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.sink: Sink | None = None

        def feed_data(self, data: Any, size: int) -> None:
            sink = self.sink
            if sink is None or self._buffer or data[0] is not _TEXT or not sink(data[1]):
                super().feed_data(data, size)


class DirectWebSocket(web.WebSocketResponse):
    """``web.WebSocketResponse`` with ``direct``: text messages handled as they are parsed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._offering: Any = None  # the _OfferingQueue, once prepared on a known aiohttp

    def _post_start(self, request: Any, protocol: Any, writer: Any) -> None:
        if not _known_shape(self):
            super()._post_start(request, protocol, writer)
            return
        # aiohttp 3.14's _post_start, with the offering queue in place of its own
        self._ws_protocol = protocol
        self._writer = writer
        self._reset_heartbeat()
        loop = self._loop
        assert loop is not None
        queue = _OfferingQueue(request._protocol, DEFAULT_CHUNK_SIZE, loop=loop)
        self._reader = queue
        self._parser = WebSocketReader(queue, self._max_msg_size,
                                       compress=bool(self._compress),
                                       decode_text=self._decode_text)
        callback = None if self._heartbeat is None else self._on_data_received
        request.protocol.set_parser(self._parser, data_received_cb=callback)
        request.protocol.keep_alive(False)
        self._offering = queue

    def direct(self, sink: Sink | None) -> bool:
        """Offer each text message to ``sink`` from now on (None: stop offering); False when
        this aiohttp has no place for it (every message is then received as usual)."""
        if self._offering is None:
            return False
        self._offering.sink = sink
        return True


def _known_shape(ws: web.WebSocketResponse) -> bool:
    """Whether ``_post_start`` is aiohttp 3.14's: the names it sets and reads are all there."""
    if not _READER:
        return False
    names = ("_ws_protocol", "_writer", "_reader", "_parser", "_max_msg_size", "_compress",
             "_decode_text", "_heartbeat", "_loop")
    return all(hasattr(ws, name) for name in names) and hasattr(ws, "_on_data_received")
