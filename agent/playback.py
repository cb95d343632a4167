"""What the caller has heard: bookkeeping of the marks we send after each spoken chunk.

Twilio echoes a mark once the audio before it has played, and on ``clear`` echoes every pending
mark at once. So the text of a chunk was heard iff its mark came back before we sent ``clear``.
Sans-I/O: the session tells it what was sent and echoed; it answers what was heard.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ReplyPlayback:
    """The chunks of one agent reply."""

    reply_id: int
    texts: list[str] = field(default_factory=list)
    heard: list[bool] = field(default_factory=list)
    cleared: bool = False

    @property
    def text(self) -> str:
        return " ".join(self.texts)

    @property
    def heard_text(self) -> str:
        return " ".join(t for t, h in zip(self.texts, self.heard, strict=True) if h)

    @property
    def unheard_text(self) -> str:
        return " ".join(t for t, h in zip(self.texts, self.heard, strict=True) if not h)


class Playback:
    """Marks in flight for one call."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[ReplyPlayback, int]] = {}
        self._next_reply_id = 0

    def new_reply(self) -> ReplyPlayback:
        self._next_reply_id += 1
        return ReplyPlayback(reply_id=self._next_reply_id)

    def chunk_sent(self, reply: ReplyPlayback, text: str) -> str:
        """Record a spoken chunk; returns the mark name to send right after its audio."""
        index = len(reply.texts)
        reply.texts.append(text)
        reply.heard.append(False)
        name = f"r{reply.reply_id}c{index}"
        self._pending[name] = (reply, index)
        return name

    def mark_echoed(self, name: str) -> ReplyPlayback | None:
        """Twilio echoed ``name``. Returns the reply it belongs to (None if unknown)."""
        entry = self._pending.pop(name, None)
        if entry is None:
            return None
        reply, index = entry
        if not reply.cleared:
            reply.heard[index] = True
        return reply

    def cleared(self) -> list[ReplyPlayback]:
        """We sent ``clear``: everything still pending was not heard. Returns the replies it
        cut, oldest first."""
        cut: list[ReplyPlayback] = []
        for reply, _ in self._pending.values():
            reply.cleared = True
            if reply not in cut:
                cut.append(reply)
        self._pending.clear()
        return cut

    @property
    def playing(self) -> bool:
        """Audio has been sent whose mark has not come back yet."""
        return bool(self._pending)
