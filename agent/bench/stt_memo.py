"""Transcripts the bench's Deepgram emulator already knows, so it decodes each utterance once.

The bench's callers say the same few recordings over and over; a real pocketsphinx decode of
each repeat would cost the emulators a core and make STT results late. Spans arrive with more or
less digital silence around them (a Finalize cuts when it comes), which does not change the
words: the key is the span without its leading and trailing zero bytes. Under load the cut can
also fall at a different frame — the server's Finalize is later, or an interim comes at another
point — and the exact key misses. Then a span that begins like a known one (its first
``HEAD_BYTES``) and is within ``NEAR_BYTES`` or ``NEAR_FRACTION`` of its length gets that
transcript (``near``): the words of a cut a few frames away. Only a span unlike any known one
is decoded for real: the first hearing of an utterance (``decoded``), or a known beginning cut
much shorter or longer (``redecoded``: a real decode the bench reports loudly, since it is the
harness, not the server, that then slows down).

Sans-I/O: ``lookup`` and ``remember``; ``entries``/``load`` let ``vendors`` keep the memo in a
file between runs (the same recordings give the same spans run after run, so a warm bench
decodes nothing); the recogniser that decodes lives in ``vendors``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

HEAD_BYTES = 16_000  # 0.5 s of 8 kHz 16-bit speech: the same beginning, the same utterance
NEAR_BYTES = 4_800  # 0.3 s: a Finalize or an interim this far off still has the same words
NEAR_FRACTION = 0.1  # ... or a tenth of a long utterance
MAX_ENTRIES = 4096  # distinct spans kept

Found = Literal["hit", "near", "decode", "redecode"]


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Key:
    exact: bytes
    head: bytes
    length: int


def key_of(pcm16: bytes) -> Key:
    words = pcm16.strip(b"\x00")
    return Key(_digest(words), _digest(words[:HEAD_BYTES]), len(words))


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
