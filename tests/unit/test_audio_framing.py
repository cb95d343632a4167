from __future__ import annotations

import random

import pytest

from slotline.audio.framing import (
    FRAME_MS,
    FRAME_SAMPLES,
    PCM16_FRAME_BYTES,
    SAMPLE_RATE_HZ,
    ULAW_FRAME_BYTES,
    ULAW_SILENCE,
    Framer,
)
from slotline.audio.mulaw import ulaw_to_pcm16


def test_constants_describe_20ms_at_8khz() -> None:
    assert (SAMPLE_RATE_HZ, FRAME_MS, FRAME_SAMPLES) == (8000, 20, 160)
    assert (ULAW_FRAME_BYTES, PCM16_FRAME_BYTES) == (160, 320)
    assert ulaw_to_pcm16(bytes([ULAW_SILENCE]) * 4) == b"\x00" * 8


def test_arbitrary_chunks_become_whole_frames_in_order() -> None:
    rng = random.Random(3)
    stream = bytes(rng.randrange(256) for _ in range(10_007))
    framer = Framer(ULAW_FRAME_BYTES)
    frames: list[bytes] = []
    position = 0
    while position < len(stream):
        size = rng.choice([0, 1, 37, 159, 160, 161, 500, 2000])
        frames += framer.push(stream[position : position + size])
        position += size
    assert all(len(frame) == ULAW_FRAME_BYTES for frame in frames)
    assert b"".join(frames) == stream[: len(frames) * ULAW_FRAME_BYTES]
    assert len(frames) == len(stream) // ULAW_FRAME_BYTES
    assert framer.pending_bytes == len(stream) % ULAW_FRAME_BYTES
    assert framer.flush() == stream[len(frames) * ULAW_FRAME_BYTES :]
    assert framer.flush() is None


def test_exact_frame_passes_through_untouched() -> None:
    frame = bytes(range(160))
    framer = Framer(160)
    assert framer.push(frame) == [frame]
    assert framer.pending_bytes == 0


def test_large_chunk_yields_several_frames_and_keeps_the_rest() -> None:
    framer = Framer(4)
    assert framer.push(b"abcdefghij") == [b"abcd", b"efgh"]
    assert framer.push(b"kl") == [b"ijkl"]
    assert framer.push(b"") == []
    assert framer.flush() is None


def test_flush_pads_tail_with_silence() -> None:
    framer = Framer(ULAW_FRAME_BYTES)
    assert framer.push(b"\x01" * 100) == []
    tail = framer.flush(pad=bytes([ULAW_SILENCE]))
    assert tail == b"\x01" * 100 + b"\xff" * 60
    assert framer.flush(pad=bytes([ULAW_SILENCE])) is None


def test_flush_without_pad_returns_short_tail() -> None:
    framer = Framer(320)
    framer.push(b"\x00\x01" * 10)
    assert framer.flush() == b"\x00\x01" * 10


def test_reset_drops_the_tail() -> None:
    framer = Framer(160)
    framer.push(b"x" * 50)
    framer.reset()
    assert framer.push(b"y" * 160) == [b"y" * 160]


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        Framer(0)
    framer = Framer(160)
    framer.push(b"x")
    with pytest.raises(ValueError, match="one byte"):
        framer.flush(pad=b"\xff\xff")
