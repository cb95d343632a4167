"""The agent's voice on one call: replies synthesized sentence by sentence, paced into the media
socket, each sentence followed by a mark, and the bookkeeping barge-in needs.

What was heard is known from marks: Twilio echoes a sentence's mark once its audio has played
(``agent.call.playback``). A barge-in (``interrupt``) cuts everything not yet heard — what Twilio
holds and the sentence still being sent — into a ``Hold`` and stops sending (the *floor* is taken
from the agent). The session then decides, from the caller's words:
- ``release``: a real interruption; the reply is cancelled and the turns in the call log say
  what was heard;
- ``resume``: a false one; the cut sentences are played again from the first unheard one, and
  the held reply goes on, its current sentence from its start.
Audio sent before a ``clear`` is tagged with an *epoch* (barge-ins so far), so a sentence
interrupted mid-send is sent again whole, never from the middle.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from slotline.agent.call.calllog import CallRecord, Latency, Turn
from slotline.agent.call.media_socket import MediaSocket
from slotline.agent.call.playback import Chunk, Hold, Playback, ReplyPlayback
from slotline.agent.call.prompt_cache import CallVoice, split_sentences
from slotline.agent.server.metrics import Metrics

# Agent turns remembered for barge-in bookkeeping, newest kept: an interruption cuts the replies
# still playing, never one long heard, and a long call must not keep every turn alive here.
_TURNS_TRACKED = 64


class Speaker:
    def __init__(
        self,
        socket: MediaSocket,
        voice: CallVoice,
        record: CallRecord,
        metrics: Metrics,
        *,
        on_speaking: Callable[[bool], object],
    ) -> None:
        self._socket = socket
        self._on_speaking = on_speaking
        self._voice = voice
        self._record = record
        self._metrics = metrics
        self._playback = Playback()
        self._current: ReplyPlayback | None = None  # the reply whose audio is being sent
        self.hold: Hold | None = None  # an interruption waiting for the turn's transcript
        self._floor = asyncio.Event()  # clear while an interruption holds the agent's audio
        self._floor.set()
        self._epoch = 0
        self._replaying = False
        self._turn_of: dict[int, Turn] = {}  # reply id -> its agent turn in the call log
        self._drained = asyncio.Event()  # set whenever no mark is pending (all audio played)
        self.last_was_filler = False

    @property
    def speaking(self) -> bool:
        """Audio is playing or on its way (not while an interruption holds the floor)."""
        if self._playback.playing or self._replaying:
            return True
        return self._current is not None and self._floor.is_set()

    def _changed(self) -> None:
        self._on_speaking(self.speaking)

    # ---- speaking --------------------------------------------------------------------------

    async def say(
        self,
        text: str,
        *,
        filler: bool = False,
        latency: Latency | None = None,
        on_first_audio: Callable[[float], object] | None = None,
    ) -> None:
        """Speak ``text`` (its turn in the call log carries ``latency``);
        ``on_first_audio(synthesis_started_at)`` runs as its first audio leaves."""
        loop = asyncio.get_running_loop()
        reply = self._playback.new_reply()
        self._current = reply
        self._changed()
        self.last_was_filler = filler
        turn = Turn(role="agent", text=text, latency=latency, filler=filler)
        self._record.add_turn(turn)
        self._turn_of[reply.reply_id] = turn
        if len(self._turn_of) > _TURNS_TRACKED:  # only recent replies can still be cut
            del self._turn_of[next(iter(self._turn_of))]
        try:
            for sentence in split_sentences(text):
                synth_at = loop.time()
                audio = bytearray()
                sent, epoch = 0, self._epoch
                async for piece in self._voice.synthesize(sentence):
                    if not audio and on_first_audio is not None:
                        on_first_audio(synth_at)
                        on_first_audio = None
                    audio += piece
                    sent, epoch = await self._deliver(audio, sent, epoch)
                sent, epoch = await self._deliver(audio, sent, epoch)
                turn.cached_audio |= self._voice.from_cache
                await self._socket.send_mark(
                    self._playback.chunk_sent(reply, sentence, bytes(audio))
                )
        finally:
            self._current = None  # sent; its marks say when it has been heard
            turn.interrupted = reply.cleared
            if reply.cleared:
                turn.heard_text = reply.heard_text
            if turn.cached_audio:
                self._metrics.cached_audio_turns.inc()

    async def _deliver(self, audio: bytearray, sent: int, epoch: int) -> tuple[int, int]:
        """Send the sentence's ``audio[sent:]``. While an interruption holds the floor, wait;
        if audio of this sentence went out before a ``clear``, send it again from its start
        (the caller never heard it). Returns (bytes sent, the epoch they were sent in)."""
        while True:
            if not self._floor.is_set():
                await self._floor.wait()  # cancelled here if the interruption is confirmed
            if epoch != self._epoch:
                sent, epoch = 0, self._epoch

            def may_send(epoch: int = epoch) -> bool:
                return self._floor.is_set() and self._epoch == epoch

            sent = await self._socket.send_paced(audio, sent, may_send)
            if sent >= len(audio) and may_send():
                return sent, epoch

    def mark_echoed(self, name: str) -> None:
        self._playback.mark_echoed(name)
        if not self._playback.playing:
            self._drained.set()
        self._changed()

    def stream_ended(self) -> None:
        """No mark will come back any more."""
        self._drained.set()

    async def wait_played(self, timeout_s: float) -> None:
        """Until every sentence sent has been heard (its mark came back), at most ``timeout_s``."""
        if not self._playback.playing or self._socket.gone:
            return
        self._drained.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._drained.wait()

    def reply_done(self) -> None:
        self._current = None
        self._changed()

    # ---- barge-in --------------------------------------------------------------------------

    def interrupt(self) -> None:
        """The caller barged in and ``clear`` is on its way: stop sending and hold everything
        not yet heard."""
        self._epoch += 1
        self._floor.clear()
        # the reply still being sent is cut too: its marks are not out yet
        self.cut(self._playback.cleared(), self._current)
        self._drained.set()
        self._changed()

    def cut(self, chunks: list[Chunk], sending: ReplyPlayback | None = None) -> None:
        """Add ``chunks`` (cleared, or never replayed) to the interruption being held."""
        if self.hold is None:
            self.hold = Hold()
        self.hold.add(chunks, sending)
        for reply in self.hold.replies:
            turn = self._turn_of.get(reply.reply_id)
            if turn is not None:
                turn.interrupted, turn.heard_text = True, reply.heard_text

    def take_hold(self) -> Hold | None:
        hold, self.hold = self.hold, None
        return hold

    def release(self, hold: Hold) -> ReplyPlayback | None:
        """A real interruption, its reply cancelled: give the floor back; the last reply it
        cut (None: none)."""
        self._current = None
        self._floor.set()
        self._changed()
        return hold.replies[-1] if hold.replies else None

    async def resume(self, hold: Hold) -> bool:
        """A false interruption: play what it cut again and give the floor back. False when a
        new barge-in stopped the replay (the chunks not replayed join that interruption).
        Raises ``SocketClosed``."""
        Playback.resume(hold.replies)
        for reply in hold.replies:
            turn = self._turn_of.get(reply.reply_id)
            if turn is not None:
                turn.interrupted, turn.heard_text = False, None
                turn.resumed += 1
        self._replaying = True
        self._changed()
        try:
            replayed = await self._replay(hold.cut)
        finally:
            self._replaying = False
        if replayed:
            self._floor.set()
            self._changed()
        return replayed

    async def _replay(self, chunks: list[Chunk]) -> bool:
        def may_send() -> bool:
            return self.hold is None

        for index, chunk in enumerate(chunks):
            audio = chunk.audio
            if await self._socket.send_paced(audio, 0, may_send) < len(audio) or not may_send():
                self.cut(chunks[index:])
                return False
            await self._socket.send_mark(self._playback.resent(chunk))
        return True
