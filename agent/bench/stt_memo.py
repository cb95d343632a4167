"""Transcripts the bench's Deepgram emulator already knows, so it decodes each utterance once.

The bench's callers say the same few recordings over and over; a real pocketsphinx decode of
each repeat would cost the emulators a core and make STT results late. Spans arrive with more or
less digital silence around them (a Finalize cuts when it comes), which does not change the
words: the key is the span without its leading and trailing zero bytes. Under load the cut can
also fall at a different frame — the server's Finalize is later, or an interim comes at another
point — and the exact key misses. Then a span that begins like a known one and is within
``NEAR_BYTES`` or ``NEAR_FRACTION`` of its length gets that transcript (``near``): the words of
a cut a few frames away. "Begins" is counted from where the words do — the first sample louder
than ``ANCHOR_LEVEL`` — not from the span's first byte: how much of the recording's quiet
lead-in a span holds depends on when the emulator last cut (its pre-roll is emptied at every
final, and through a silence every ``_IDLE_FINAL_MS``), so the same utterance came with up to
8 different beginnings in a 50-call run and each was decoded for real. Only a span unlike
any known one is decoded for real: the first hearing of an utterance (``decoded``), or a known
beginning cut much shorter or longer (``redecoded``: a real decode the bench reports loudly,
since it is the harness, not the server, that then slows down).

Sans-I/O: ``lookup`` and ``remember``; ``entries``/``load`` let ``vendors`` keep the memo in a
file between runs (the same recordings give the same spans run after run, so a warm bench
decodes nothing); the recogniser that decodes lives in ``vendors``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import numpy as np

T = TypeVar("T")

HEAD_BYTES = 16_000  # 0.5 s of 8 kHz 16-bit speech: the same beginning, the same utterance
NEAR_BYTES = 4_800  # 0.3 s: a Finalize or an interim this far off still has the same words
NEAR_FRACTION = 0.1  # ... or a tenth of a long utterance
MAX_ENTRIES = 4096  # distinct spans kept
# Where the words begin: every caller recording (agent/assets/caller) passes it 217-397 ms in,
# after lead-in noise below ~120 (a soft first sound, "th", reaches ~990 before it). Any fixed
# point of the utterance that every cut of it holds will do; this one is inside the pre-roll's
# reach of the VAD's onset.
ANCHOR_LEVEL = 1024

Found = Literal["hit", "near", "decode", "redecode"]


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Key:
    exact: bytes
    head: bytes
    length: int


def key_of(pcm16: bytes) -> Key:
    """The span's key: all of it without the silence around it (``exact``), and from where
    its words begin (``head``: the next ``HEAD_BYTES``; ``length``: the bytes to its end)."""
    words = pcm16.strip(b"\x00")
    spoken = pcm16[_anchor(pcm16):]
    return Key(_digest(words), _digest(spoken[:HEAD_BYTES]), len(spoken.rstrip(b"\x00")))


def _anchor(pcm16: bytes) -> int:
    """Byte offset of the first sample louder than ``ANCHOR_LEVEL`` (of the first non-zero
    byte's sample when none is)."""
    samples = np.frombuffer(pcm16, dtype="<i2", count=len(pcm16) // 2).astype(np.int32)
    loud = np.flatnonzero(np.abs(samples) > ANCHOR_LEVEL)
    if loud.size:
        return 2 * int(loud[0])
    return (len(pcm16) - len(pcm16.lstrip(b"\x00"))) // 2 * 2


class TranscriptMemo(Generic[T]):
    """Transcripts by span; counts what each lookup found."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max = max_entries
        self._exact: OrderedDict[bytes, T] = OrderedDict()
        self._heads: dict[bytes, dict[int, bytes]] = {}  # head -> length -> exact key
        self.counts: dict[Found, int] = {"hit": 0, "near": 0, "decode": 0, "redecode": 0}

    def lookup(self, key: Key) -> tuple[Found, T | None]:
        """A known transcript (``hit``, ``near``), or None and why a decode is needed."""
        found = self._exact.get(key.exact)
        if found is not None:
            self._exact.move_to_end(key.exact)
            return self._count("hit"), found
        lengths = self._heads.get(key.head)
        if lengths:
            nearest = min(lengths, key=lambda length: abs(length - key.length))
            if abs(nearest - key.length) <= max(NEAR_BYTES, NEAR_FRACTION * key.length):
                near = self._exact.get(lengths[nearest])
                if near is not None:
                    return self._count("near"), near
            return self._count("redecode"), None
        return self._count("decode"), None

    def remember(self, key: Key, transcript: T) -> None:
        self._exact[key.exact] = transcript
        self._heads.setdefault(key.head, {})[key.length] = key.exact
        while len(self._exact) > self._max:
            old, _ = self._exact.popitem(last=False)
            for lengths in self._heads.values():
                for length, exact in list(lengths.items()):
                    if exact == old:
                        del lengths[length]

    def entries(self) -> list[tuple[Key, T]]:
        """Every remembered span, oldest first (what ``load`` takes back)."""
        keys = {exact: Key(exact, head, length) for head, lengths in self._heads.items()
                for length, exact in lengths.items()}
        return [(keys[exact], value) for exact, value in self._exact.items() if exact in keys]

    def load(self, entries: list[tuple[Key, T]]) -> None:
        for key, value in entries:
            self.remember(key, value)

    def _count(self, found: Found) -> Found:
        self.counts[found] += 1
        return found
