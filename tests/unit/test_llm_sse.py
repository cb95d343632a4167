"""The SSE parser, fed bytes exactly as a socket might deliver them (no socket)."""

from __future__ import annotations

import pytest

from slotline.providers.llm.sse import SseEvent, SseParser

STREAM = (
    b": keep-alive comment\n"
    b'data: {"a": 1}\n'
    b"\n"
    b"event: update\n"
    b"id: 7\n"
    b"data: line one\n"
    b"data: line two\n"
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)
EXPECTED = [
    SseEvent('{"a": 1}'),
    SseEvent("line one\nline two", event="update", last_event_id="7"),
    SseEvent("[DONE]", last_event_id="7"),
]


def feed_in_pieces(stream: bytes, size: int) -> list[SseEvent]:
    parser = SseParser()
    events: list[SseEvent] = []
    for i in range(0, len(stream), size):
        events.extend(parser.feed(stream[i : i + size]))
    return events


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 10_000])
def test_events_are_the_same_whatever_the_chunking(size: int) -> None:
    assert feed_in_pieces(STREAM, size) == EXPECTED


@pytest.mark.parametrize("newline", [b"\r\n", b"\r", b"\n"])
@pytest.mark.parametrize("size", [1, 4, 1000])
def test_crlf_cr_and_lf_line_ends(newline: bytes, size: int) -> None:
    assert feed_in_pieces(STREAM.replace(b"\n", newline), size) == EXPECTED


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    parser = SseParser()
    assert parser.feed(b"data: x\r") == []
    # The LF completes the CR (not a blank line); the next CR is the blank line.
    assert parser.feed(b"\n\r") == [SseEvent("x")]
    assert parser.feed(b"\ndata: y\r\n\r\n") == [SseEvent("y")]


def test_multibyte_utf8_split_across_chunks() -> None:
    data = "data: caf\u00e9 \u2014 ok\n\n".encode()
    split = data.index(b"\xa9")  # inside the two-byte "é"
    parser = SseParser()
    assert parser.feed(data[:split]) == []
    assert parser.feed(data[split:]) == [SseEvent("caf\u00e9 \u2014 ok")]


def test_field_details() -> None:
    parser = SseParser()
    events = parser.feed(
        b"\xef\xbb\xbfdata:no-space\n\n"  # BOM stripped; the space after ':' is optional
        b"data:  two spaces\n\n"  # only one space is removed
        b"data\n\n"  # a bare field name: empty value
        b"retry: 1500\n"
        b"retry: soon\n"  # not digits: ignored
        b"unknown: field\n"
        b"event: ping\n"
        b"\n"  # no data: nothing dispatched, and the event type is reset
        b"data: after\n\n"
    )
    assert events == [
        SseEvent("no-space"),
        SseEvent(" two spaces"),
        SseEvent(""),
        SseEvent("after"),
    ]
    assert parser.retry_ms == 1500


def test_bom_split_across_chunks_is_still_stripped() -> None:
    parser = SseParser()
    assert parser.feed(b"\xef") == []
    assert parser.feed(b"\xbb\xbfdata: z\n\n") == [SseEvent("z")]


def test_an_unterminated_event_is_discarded_at_close() -> None:
    parser = SseParser()
    assert parser.feed(b"data: complete\n\ndata: half") == [SseEvent("complete")]
    parser.close()
    assert parser.feed(b"\n\n") == []
