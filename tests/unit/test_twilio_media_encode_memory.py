"""The media encoder's per-stream prefixes stop growing after ``STREAMS_CACHED`` streams (issue 17:
a long soak's memory must level off early, not after thousands of calls)."""

from __future__ import annotations

import tracemalloc

from slotline.providers.telephony import twilio_media_encode
from slotline.providers.telephony.twilio_media_encode import (
    encode_clear,
    encode_media,
)

FRAME = b"\xff" * 160
ONLY_THE_ENCODER = [tracemalloc.Filter(True, twilio_media_encode.__file__)]


def _streams(first: int, count: int) -> None:
    for i in range(first, first + count):
        sid = f"MZ{i:032x}"
        encode_media(sid, FRAME)
        encode_clear(sid)


def _held_by_encoder() -> int:
    snapshot = tracemalloc.take_snapshot().filter_traces(ONLY_THE_ENCODER)
    return sum(stat.size for stat in snapshot.statistics("filename"))


def test_memory_held_for_past_streams_levels_off() -> None:
    tracemalloc.start()  # before the streams: entries evicted later are traced, so are freed
    try:
        _streams(0, 3000)  # 3,000 calls, each with its own stream
        held = _held_by_encoder()
    finally:
        tracemalloc.stop()
    # ~470 bytes a stream kept: 3,000 kept would be ~1.4 MB; STREAMS_CACHED of them ~240 KB
    assert held < 400_000, f"{held} bytes held for past streams"
