"""The agent's voice on one call: replies synthesized sentence by sentence, paced into the media
socket, each sentence followed by a mark, and the bookkeeping barge-in needs.

What was heard is known from marks: Twilio echoes a sentence's mark once its audio has played
(``agent.call.playback``). The speaker carries out the floor's commands (``agent.call.floor``) and
decides nothing itself: ``interrupt`` (the floor's ``Clear`` and ``Hold``) cuts everything not yet
heard — what Twilio holds and the sentences still being sent — into a ``HeldCut`` and stops sending;
``release`` gives the floor back after a real interruption (the reply was cancelled);
``resume`` plays the cut sentences again from the first unheard one, and ``unhold`` lets the
held reply go on, its current sentence from its start.
Audio sent before a ``clear`` is tagged with an *epoch* (barge-ins so far), so a sentence
interrupted mid-send is sent again whole, never from the middle.

Two ``say`` calls may overlap — an answer that is ready while a filler plays: the answer's
first sentence is synthesized at once and goes out right after the sentence being sent (one
sentence is delivered at a time, in the order they asked), never after the filler's mark.
It reports whether agent audio is on its way or playing (``on_speaking``) when that changes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from slotline.agent.call.calllog import CallRecord, Latency, Turn
from slotline.agent.call.media_socket import MediaSocket
from slotline.agent.call.playback import Chunk, HeldCut, Playback, ReplyPlayback
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
        self._sending: list[ReplyPlayback] = []  # replies whose audio is being sent
        self._turn_lock = asyncio.Lock()  # one sentence delivered at a time
        self.hold: HeldCut | None = None  # an interruption waiting for the turn's transcript
        self._floor = asyncio.Event()  # clear while an interruption holds the agent's audio
        self._floor.set()
        self._epoch = 0
        self._replaying = False
        self._reported = False  # the last ``speaking`` told ``on_speaking``
        self._turn_of: dict[int, Turn] = {}  # reply id -> its agent turn in the call log
        self._drained = asyncio.Event()  # set whenever no mark is pending (all audio played)
        self.last_was_filler = False

    @property
    def speaking(self) -> bool:
        """Audio is playing or on its way (not while an interruption holds the floor)."""
        if self._playback.playing or self._replaying:
            return True
        return bool(self._sending) and self._floor.is_set()

    def _changed(self) -> None:
        speaking = self.speaking
        if speaking != self._reported:
            self._reported = speaking
            self._on_speaking(speaking)

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
        reply = self._playback.new_reply()
        self._sending.append(reply)
        self._changed()
        self.last_was_filler = filler
        turn = Turn(role="agent", text=text, latency=latency, filler=filler)
        self._record.add_turn(turn)
        self._turn_of[reply.reply_id] = turn
        if len(self._turn_of) > _TURNS_TRACKED:  # only recent replies can still be cut
            del self._turn_of[next(iter(self._turn_of))]
        try:
            for sentence in split_sentences(text):
                if filler and len(self._sending) > 1:
                    break  # the answer is ready: the filler gives way after this sentence
                await self._say_sentence(reply, sentence, turn, on_first_audio)
                on_first_audio = None
        finally:
            self._sending.remove(reply)  # sent; its marks say when it has been heard
            self._changed()
            turn.interrupted = reply.cleared
            if reply.cleared:
                turn.heard_text = reply.heard_text
            if turn.cached_audio:
                self._metrics.cached_audio_turns.inc()

    async def _say_sentence(
        self,
        reply: ReplyPlayback,
        sentence: str,
        turn: Turn,
        on_first_audio: Callable[[float], object] | None,
    ) -> None:
        """Synthesize and send one sentence, then its mark. While another sentence is going
        out, the audio is synthesized ahead and sent once that sentence is done."""
        synth_at = asyncio.get_running_loop().time()
        audio = bytearray()
        sent, epoch = 0, self._epoch
        lock, owns = self._turn_lock, False
        try:
            async for piece in self._voice.synthesize(sentence):
                audio += piece
                if not owns:
                    if lock.locked():
                        continue  # another sentence is going out: keep synthesizing
                    await lock.acquire()
                    owns = True
                if on_first_audio is not None:
                    on_first_audio(synth_at)
                    on_first_audio = None
                sent, epoch = await self._deliver(audio, sent, epoch)
            if not owns:
                await lock.acquire()
                owns = True
                if on_first_audio is not None and audio:
                    on_first_audio(synth_at)
            sent, epoch = await self._deliver(audio, sent, epoch)
            turn.cached_audio |= self._voice.from_cache
            await self._socket.send_mark(self._playback.chunk_sent(reply, sentence, bytes(audio)))
        finally:
            if owns:
                lock.release()

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

    # ---- barge-in --------------------------------------------------------------------------

    def interrupt(self) -> None:
        """The caller barged in and ``clear`` is on its way: stop sending and hold everything
        not yet heard."""
        self._epoch += 1
        self._floor.clear()
        # the replies still being sent are cut too: their marks are not out yet
        self.cut(self._playback.cleared(), self._sending)
        self._drained.set()
        self._changed()

    def cut(self, chunks: list[Chunk], sending: list[ReplyPlayback] | None = None) -> None:
        """Add ``chunks`` (cleared, or never replayed) to the interruption being held."""
        if self.hold is None:
            self.hold = HeldCut()
        self.hold.add(chunks, sending or [])
        for reply in self.hold.replies:
            turn = self._turn_of.get(reply.reply_id)
            if turn is not None:
                turn.interrupted, turn.heard_text = True, reply.heard_text

    def take_hold(self) -> HeldCut | None:
        hold, self.hold = self.hold, None
        return hold

    def release(self, hold: HeldCut) -> ReplyPlayback | None:
        """A real interruption, its reply cancelled: give the floor back; the last reply it
        cut (None: none)."""
        self._floor.set()
        self._changed()
        return hold.replies[-1] if hold.replies else None

    async def resume(self, hold: HeldCut) -> bool:
        """A false interruption: play what it cut again (``unhold`` then lets the held reply
        go on). False when a new barge-in stopped the replay (the chunks not replayed join
        that interruption). Raises ``SocketClosed``."""
        Playback.resume(hold.replies)
        for reply in hold.replies:
            turn = self._turn_of.get(reply.reply_id)
            if turn is not None:
                turn.interrupted, turn.heard_text = False, None
                turn.resumed += 1
        self._replaying = True
        self._changed()
        try:
            return await self._replay(hold.cut)
        finally:
            self._replaying = False
            self._changed()

    def unhold(self) -> None:
        """The held reply may send again."""
        self._floor.set()
        self._changed()

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
