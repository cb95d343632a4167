"""Send a caller's text frames without a coroutine per frame, where aiohttp allows it.

``ClientWebSocketResponse.send_str`` is a coroutine: from a caller's 20 ms frame it costs a
task switch and three coroutine frames before aiohttp writes the frame to the transport, which
it does synchronously anyway (no compression: no lock, no executor). ``sync_sender(ws)`` gives a
plain function doing that same write, so a caller's frame can be sent from a timer callback
(``frame_clock.FrameClock.every``). It frames the message itself, as RFC 6455 has a client do
(FIN and the text opcode, the length, a fresh random 32-bit mask per frame, the payload masked
with aiohttp's own C routine), and writes header and payload in one ``transport.write``: half
the cost of aiohttp's general writer method (~0.6 against ~1.2 µs a frame), whose branches for
compression, flow-control counters and large frames a caller never needs. It reaches into
aiohttp (the writer behind the response, its mask routine): when that is not there (another
aiohttp) or frames are compressed it returns None and the caller keeps awaiting ``send_str``.

No flow control: a server that stops reading lets the transport buffer grow by the caller's
frames (~20 KB a minute of call) instead of stalling the caller's timers, which then see the
same late server through the missing replies.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

import aiohttp

_Mask = Callable[[bytes, bytearray], None]


def _find_mask() -> _Mask | None:
    """aiohttp's own masking routine (its C one where built), None in another aiohttp."""
    try:
        from aiohttp._websocket.helpers import websocket_mask
    except ImportError:
        return None
    return websocket_mask


_MASK = _find_mask()

TextSender = Callable[[str], None]
_FIN_TEXT = 0x81  # FIN + opcode 1 (text)
_MASKED = 0x80
_LEN16 = struct.Struct("!BBH").pack  # lengths 126..65535: the 16-bit extended length
_LEN64 = struct.Struct("!BBQ").pack


def sync_sender(ws: aiohttp.ClientWebSocketResponse) -> TextSender | None:
    """A function that writes one text frame to ``ws`` now (raising ``ConnectionError`` once
    the socket is closing, as ``send_str`` does), or None where that is not possible."""
    writer = getattr(ws, "_writer", None)
    transport = getattr(writer, "transport", None)
    if (writer is None or transport is None or _MASK is None
            or getattr(writer, "compress", 1) != 0 or not getattr(writer, "use_mask", False)):
        return None
    mask_bits = random.Random().getrandbits
    mask_payload = _MASK
    write, closing = transport.write, transport.is_closing

    def send(text: str) -> None:
        if writer._closing or closing():
            raise ConnectionResetError("Cannot write to closing transport")
        payload = bytearray(text, "utf-8")
        mask = mask_bits(32).to_bytes(4, "big")
        mask_payload(mask, payload)
        size = len(payload)
        if size < 126:
            header = bytes((_FIN_TEXT, _MASKED | size))
        elif size < 65536:
            header = _LEN16(_FIN_TEXT, _MASKED | 126, size)
        else:
            header = _LEN64(_FIN_TEXT, _MASKED | 127, size)
        write(header + mask + payload)

    return send
