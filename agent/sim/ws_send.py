"""Send a caller's text frames without a coroutine per frame, where aiohttp allows it.

``ClientWebSocketResponse.send_str`` is a coroutine: from a caller's 20 ms frame it costs a
task switch and three coroutine frames before aiohttp writes the frame to the transport, which
it does synchronously anyway (no compression: no lock, no executor). ``sync_sender(ws)`` gives a
plain function doing that same write — aiohttp's own framing and client masking — so a caller's
frame can be sent from a timer callback (``frame_clock.FrameClock.call_at``). It reaches into
aiohttp (the writer behind the response): when that is not there (another aiohttp) or frames
are compressed it returns None and the caller keeps awaiting ``send_str``.

No flow control: a server that stops reading lets the transport buffer grow by the caller's
frames (~20 KB a minute of call) instead of stalling the caller's timers, which then see the
same late server through the missing replies.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

TextSender = Callable[[str], None]
_TEXT = aiohttp.WSMsgType.TEXT


def sync_sender(ws: aiohttp.ClientWebSocketResponse) -> TextSender | None:
    """A function that writes one text frame to ``ws`` now (raising ``ConnectionError`` once
    the socket is closing, as ``send_str`` does), or None where that is not possible."""
    writer = getattr(ws, "_writer", None)
    write = getattr(writer, "_write_websocket_frame", None)
    if writer is None or write is None or getattr(writer, "compress", 1) != 0:
        return None

    def send(text: str) -> None:
        if writer._closing:
            raise ConnectionResetError("Cannot write to closing transport")
        write(text.encode(), _TEXT, 0)

    return send
