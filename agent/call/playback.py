"""What the caller has heard: bookkeeping of the marks we send after each spoken chunk.

Twilio echoes a mark once the audio before it has played, and on ``clear`` echoes every pending
mark at once. So the text of a chunk was heard iff its mark came back before we sent ``clear``.
Sans-I/O: the session tells it what was sent and echoed; it answers what was heard.

Each chunk keeps its audio until it has been heard, so that after a false interruption (the
caller made a noise, said no words) the session can play the unheard chunks again — from the
first unheard sentence, in their original order — instead of synthesizing them anew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class ReplyPlayback:
    """The chunks of one agent reply."""

    reply_id: int
    texts: list[str] = field(default_factory=list)
    heard: list[bool] = field(default_factory=list)
    audio: list[bytes] = field(default_factory=list)  # emptied once the chunk is heard
    cleared: bool = False  # cut by a clear (and not resumed since)
    resumed: int = 0  # false interruptions this reply came back from

    @property
    def text(self) -> str:
        return " ".join(self.texts)

    @property
    def heard_text(self) -> str:
        return " ".join(t for t, h in zip(self.texts, self.heard, strict=True) if h)

    @property
    def unheard_text(self) -> str:
        return " ".join(t for t, h in zip(self.texts, self.heard, strict=True) if not h)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One sent chunk of a reply (a sentence): its text and, until heard, its audio."""

    reply: ReplyPlayback
    index: int

    @property
    def text(self) -> str:
        return self.reply.texts[self.index]

    @property
    def audio(self) -> bytes:
        return self.reply.audio[self.index]


def replies_of(chunks: list[Chunk]) -> list[ReplyPlayback]:
    """The distinct replies ``chunks`` belong to, oldest first."""
    found: list[ReplyPlayback] = []
    for chunk in chunks:
        if chunk.reply not in found:
            found.append(chunk.reply)
    return found


@dataclass(slots=True)
class HeldCut:
    """An interruption not confirmed yet: the chunks ``clear`` cut, in sending order, and
    the replies they (and a reply still being sent) belong to."""

    cut: list[Chunk] = field(default_factory=list)
    replies: list[ReplyPlayback] = field(default_factory=list)

    def add(self, chunks: list[Chunk], sending: Sequence[ReplyPlayback] = ()) -> None:
        """``chunks`` were cut; ``sending``: replies cut while still being sent."""
        self.cut.extend(chunks)
        for reply in [*replies_of(chunks), *sending]:
            reply.cleared = True
            if reply not in self.replies:
                self.replies.append(reply)


class Playback:
    """Marks in flight for one call."""

    def __init__(self) -> None:
        self._pending: dict[str, Chunk] = {}  # insertion order = sending order
        self._next_reply_id = 0
        self._resends = 0

    def new_reply(self) -> ReplyPlayback:
        self._next_reply_id += 1
        return ReplyPlayback(reply_id=self._next_reply_id)

    def chunk_sent(self, reply: ReplyPlayback, text: str, audio: bytes = b"") -> str:
        """Record a spoken chunk; returns the mark name to send right after its audio."""
        index = len(reply.texts)
        reply.texts.append(text)
        reply.heard.append(False)
        reply.audio.append(audio)
        name = f"r{reply.reply_id}c{index}"
        self._pending[name] = Chunk(reply, index)
        return name

    def resent(self, chunk: Chunk) -> str:
        """``chunk`` is being played again (after a false interruption); returns its new
        mark name (a fresh one: Twilio may still echo the old one)."""
        self._resends += 1
        name = f"r{chunk.reply.reply_id}c{chunk.index}x{self._resends}"
        self._pending[name] = chunk
        return name

    def mark_echoed(self, name: str) -> ReplyPlayback | None:
        """Twilio echoed ``name``. Returns the reply it belongs to (None if unknown)."""
        chunk = self._pending.pop(name, None)
        if chunk is None:
            return None
        reply = chunk.reply
        if not reply.cleared:
            reply.heard[chunk.index] = True
            reply.audio[chunk.index] = b""  # heard: it will never be played again
        return reply

    def cleared(self) -> list[Chunk]:
        """We sent ``clear``: everything still pending was not heard. Returns the chunks it
        cut, in the order they were sent."""
        cut = list(self._pending.values())
        for chunk in cut:
            chunk.reply.cleared = True
        self._pending.clear()
        return cut

    @staticmethod
    def resume(replies: list[ReplyPlayback]) -> None:
        """The interruption that cut ``replies`` was false: they go on being heard."""
        for reply in replies:
            reply.cleared = False
            reply.resumed += 1

    @property
    def playing(self) -> bool:
        """Audio has been sent whose mark has not come back yet."""
        return bool(self._pending)
