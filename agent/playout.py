"""Twilio's side of the agent's audio, as the simulated caller models it (sans-I/O).

Audio the server sends is queued and plays in order at 8 bytes/ms (8 kHz mu-law); a server
``mark`` is echoed once playout reaches it; ``clear`` drops the unplayed audio and echoes every
pending mark at once. Each piece of audio is credited to the agent turn it belongs to, so the
caller can report what was heard.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

BYTES_PER_MS = 8  # 8 kHz mu-law: one byte per sample


@dataclass(frozen=True, slots=True)
class AgentTurn:
    """Agent audio between two caller turns, and what became of it."""

    audio: bytes  # every mu-law byte the server sent in this turn
    heard_ms: float  # how much of it played before a clear or the end of the call
    marks_heard: tuple[str, ...]  # echoed because playout reached them
    marks_unheard: tuple[str, ...]  # echoed because a clear dropped the audio before them
    interrupted: bool  # a clear dropped some of this turn's audio

    @property
    def audio_ms(self) -> float:
        return len(self.audio) / BYTES_PER_MS


class AgentTurnLog:
    __slots__ = ("audio", "played_bytes", "marks_heard", "marks_unheard", "interrupted")

    def __init__(self) -> None:
        self.audio = bytearray()
        self.played_bytes = 0
        self.marks_heard: list[str] = []
        self.marks_unheard: list[str] = []
        self.interrupted = False

    def freeze(self) -> AgentTurn:
        return AgentTurn(
            bytes(self.audio),
            self.played_bytes / BYTES_PER_MS,
            tuple(self.marks_heard),
            tuple(self.marks_unheard),
            self.interrupted,
        )


@dataclass(slots=True)
class _Queued:
    owner: AgentTurnLog
    audio_bytes: int = 0
    mark: str | None = None


class Playout:
    """Twilio's playout buffer: audio plays in order at 8 bytes/ms, marks echo as reached.

    Call ``advance(now)`` before any other method so playout is accounted up to ``now``.
    """

    def __init__(self, now_s: float) -> None:
        self._queue: deque[_Queued] = deque()
        self._clock_s = now_s  # playout has been accounted up to here
        self.drained_at_s = now_s  # when the buffer last ran empty

    @property
    def busy(self) -> bool:
        return bool(self._queue)

    def advance(self, now_s: float) -> list[str]:
        """Play up to ``now_s``; return the marks reached."""
        reached: list[str] = []
        budget = int((now_s - self._clock_s) * 1000 * BYTES_PER_MS)
        played = 0
        while self._queue:
            item = self._queue[0]
            if item.mark is not None:
                reached.append(item.mark)
                item.owner.marks_heard.append(item.mark)
            else:
                take = min(item.audio_bytes, budget - played)
                if take <= 0:
                    break
                played += take
                item.audio_bytes -= take
                item.owner.played_bytes += take
                if item.audio_bytes:
                    break
            self._queue.popleft()
        self._clock_s += played / (1000 * BYTES_PER_MS)
        if not self._queue:
            if played:
                self.drained_at_s = self._clock_s
            self._clock_s = now_s  # idle: playout restarts when audio next arrives
        return reached

    def push_audio(self, owner: AgentTurnLog, n_bytes: int) -> None:
        self._queue.append(_Queued(owner, audio_bytes=n_bytes))

    def push_mark(self, name: str, owner: AgentTurnLog | None) -> bool:
        """Queue a mark behind the audio it follows; True when nothing is playing, so it
        is echoed at once (and credited to ``owner``)."""
        if self._queue:
            self._queue.append(_Queued(self._queue[-1].owner, mark=name))
            return False
        if owner is not None:
            owner.marks_heard.append(name)
        return True

    def clear(self, now_s: float) -> list[str]:
        """Drop the unplayed audio; return every pending mark, now echoed as unheard."""
        dropped: list[str] = []
        if self._queue:
            self.drained_at_s = now_s
        for item in self._queue:
            if item.mark is not None:
                item.owner.marks_unheard.append(item.mark)
                dropped.append(item.mark)
            elif item.audio_bytes:
                item.owner.interrupted = True
        self._queue.clear()
        self._clock_s = now_s
        return dropped
