"""Twilio's side of the agent's audio, as the simulated caller models it (sans-I/O).

Audio the server sends is queued and plays in order at 8 bytes/ms (8 kHz mu-law); a server
``mark`` is echoed once playout reaches it; ``clear`` drops the unplayed audio and echoes every
pending mark at once. Each piece of audio is credited to the agent turn it belongs to, so the
caller can report what was heard.

When the buffer runs dry in the middle of an agent turn and more audio of that turn arrives
later, the caller hears silence (drain → next audio). After a server mark — which Slotline
sends at the end of each sentence — that silence is a pause between sentences (``pauses_ms``);
anywhere else the audio stopped mid-sentence, an underrun (``gaps_ms``): what jitter or a late
server sounds like. The wait before a turn's first audio is turn latency, neither of these.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

BYTES_PER_MS = 8  # 8 kHz mu-law: one byte per sample
# Shorter underruns are clock rounding (playout is accounted in whole bytes), not silence.
GAP_MIN_MS = 1.0


@dataclass(frozen=True, slots=True)
class AgentTurn:
    """Agent audio between two caller turns, and what became of it."""

    audio: bytes  # every mu-law byte the server sent in this turn (empty when not kept)
    heard_ms: float  # how much of it played before a clear or the end of the call
    marks_heard: tuple[str, ...]  # echoed because playout reached them
    marks_unheard: tuple[str, ...]  # echoed because a clear dropped the audio before them
    interrupted: bool  # a clear dropped some of this turn's audio
    gaps_ms: tuple[float, ...] = ()  # underruns (silence mid-sentence), in order
    pauses_ms: tuple[float, ...] = ()  # silences after a mark, between sentences
    audio_bytes: int | None = None  # how many bytes the server sent (None: ``len(audio)``)

    @property
    def audio_ms(self) -> float:
        size = len(self.audio) if self.audio_bytes is None else self.audio_bytes
        return size / BYTES_PER_MS


class AgentTurnLog:
    __slots__ = ("audio", "audio_bytes", "played_bytes", "marks_heard", "marks_unheard",
                 "interrupted", "gaps_ms", "pauses_ms")

    def __init__(self) -> None:
        self.audio = bytearray()
        self.audio_bytes = 0
        self.played_bytes = 0
        self.marks_heard: list[str] = []
        self.marks_unheard: list[str] = []
        self.interrupted = False
        self.gaps_ms: list[float] = []
        self.pauses_ms: list[float] = []

    def freeze(self) -> AgentTurn:
        return AgentTurn(
            bytes(self.audio),
            self.played_bytes / BYTES_PER_MS,
            tuple(self.marks_heard),
            tuple(self.marks_unheard),
            self.interrupted,
            tuple(self.gaps_ms),
            tuple(self.pauses_ms),
            self.audio_bytes,
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
        self._drained_owner: AgentTurnLog | None = None  # whose audio ran out then
        self._drained_at_mark = False  # ... right after a mark (a sentence's end)

    @property
    def busy(self) -> bool:
        return bool(self._queue)

    def advance(self, now_s: float) -> list[str]:
        """Play up to ``now_s``; return the marks reached."""
        reached: list[str] = []
        budget = int((now_s - self._clock_s) * 1000 * BYTES_PER_MS)
        played = 0
        last_owner: AgentTurnLog | None = None
        at_mark = False
        while self._queue:
            item = self._queue[0]
            at_mark = item.mark is not None
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
                last_owner = item.owner
                if item.audio_bytes:
                    break
            self._queue.popleft()
        self._clock_s += played / (1000 * BYTES_PER_MS)
        if not self._queue:
            if played:
                self.drained_at_s = self._clock_s
                self._drained_owner = last_owner
                self._drained_at_mark = at_mark
            self._clock_s = now_s  # idle: playout restarts when audio next arrives
        return reached

    def push_audio(self, owner: AgentTurnLog, n_bytes: int, now_s: float | None = None) -> None:
        """Queue ``n_bytes`` of ``owner``'s audio arriving at ``now_s`` (given: underruns
        inside ``owner``'s turn are recorded)."""
        if now_s is not None and not self._queue and owner is self._drained_owner:
            silence_ms = (now_s - self.drained_at_s) * 1000
            if silence_ms >= GAP_MIN_MS:
                heard = owner.pauses_ms if self._drained_at_mark else owner.gaps_ms
                heard.append(silence_ms)
        self._queue.append(_Queued(owner, audio_bytes=n_bytes))

    def push_mark(self, name: str, owner: AgentTurnLog | None) -> bool:
        """Queue a mark behind the audio it follows; True when nothing is playing, so it
        is echoed at once (and credited to ``owner``)."""
        if self._queue:
            self._queue.append(_Queued(self._queue[-1].owner, mark=name))
            return False
        if owner is not None:
            owner.marks_heard.append(name)
        self._drained_at_mark = True  # its sentence had all played
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
        self._drained_owner = None  # audio after a clear is a new start, not an underrun
        return dropped
