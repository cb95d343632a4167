"""A sans-I/O Server-Sent Events parser: bytes in, events out.

Follows the WHATWG "event stream" interpretation rules: lines end in CRLF, LF or a lone CR
(a CR at the end of one chunk and the LF at the start of the next are one line end), a line
starting with ``:`` is a comment, ``data:`` lines accumulate and are joined with ``\\n``, one
space after the colon is dropped, a blank line dispatches the event, and an event that never
saw its blank line (the stream ended mid-event) is discarded. No I/O and no asyncio: the
transport feeds whatever bytes arrived, in pieces of any size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event. ``last_event_id`` is the stream's id at dispatch time."""

    data: str
    event: str = "message"
    last_event_id: str = ""


class SseParser:
    """Incremental parser. ``feed`` returns the events completed by the new bytes."""

    __slots__ = (
        "_buffer",
        "_data",
        "_event",
        "_last_event_id",
        "_retry_ms",
        "_skip_lf",
        "_started",
    )

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._data: list[str] = []
        self._event = ""
        self._last_event_id = ""
        self._retry_ms: int | None = None
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF belongs to it
        self._started = False  # a BOM is only stripped at the very start of the stream

    @property
    def retry_ms(self) -> int | None:
        """The reconnection delay the server asked for, if it sent a ``retry:`` field."""
        return self._retry_ms

    def feed(self, data: bytes) -> list[SseEvent]:
        if not data:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        self._buffer += data
        if not self._started:
            if len(self._buffer) < len(_BOM) and _BOM.startswith(bytes(self._buffer)):
                return []  # could still be a BOM split across chunks
            self._started = True
            if self._buffer.startswith(_BOM):
                del self._buffer[: len(_BOM)]
        events: list[SseEvent] = []
        start = 0
        buffer = self._buffer
        end = len(buffer)
        while start < end:
            lf = buffer.find(b"\n", start)
            cr = buffer.find(b"\r", start, lf if lf >= 0 else end)
            if cr >= 0:
                line_end, next_start = cr, cr + 1
                if next_start < end and buffer[next_start] == 0x0A:
                    next_start += 1
                elif next_start == end:
                    self._skip_lf = True
            elif lf >= 0:
                line_end, next_start = lf, lf + 1
            else:
                break
            event = self._line(buffer[start:line_end].decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
            start = next_start
        del buffer[:start]
        return events

    def close(self) -> None:
        """The stream ended: drop a half-received event, as the standard says."""
        if self._buffer or self._data:
            logger.debug("event stream ended mid-event; %d bytes discarded", len(self._buffer))
        self._buffer.clear()
        self._data.clear()
        self._event = ""

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None  # comment (servers use them as keep-alives)
        field, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\x00" not in value:
                self._last_event_id = value
        elif field == "retry":
            if value.isascii() and value.isdigit():
                self._retry_ms = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        event_type, self._event = self._event or "message", ""
        if not self._data:
            return None
        data = "\n".join(self._data)
        self._data.clear()
        return SseEvent(data=data, event=event_type, last_event_id=self._last_event_id)
